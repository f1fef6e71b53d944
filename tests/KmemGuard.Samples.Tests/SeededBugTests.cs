using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Scull.Buggy;
using Xunit;

namespace KmemGuard.Samples.Tests;

public class SeededBugTests
{
    public static TheoryData<string> BugNames => new(SeededBugs.All.Select(b => b.Name));

    [Theory]
    [MemberData(nameof(BugNames))]
    public void Each_seeded_bug_gives_exactly_its_report(string name)
    {
        SeededBug bug = SeededBugs.All.Single(b => b.Name == name);
        var reports = SeededBugRunner.Run(bug);
        Assert.True(reports.Count == 1 && reports[0].Kind == bug.Kind,
            $"expected one {bug.Kind} report, got {reports.Count}:\n" + string.Join("\n----\n", reports.Select(r => $"[{r.Kind}] {r.Text}")));
        Assert.False(string.IsNullOrWhiteSpace(reports[0].Title));
    }

    [Fact]
    public void Every_seeded_bug_is_marked_in_the_source_and_every_marker_is_in_the_catalog()
    {
        string root = RepoRoot.Find();
        string buggy = Path.Combine(root, "samples", "Scull.Buggy");
        var marker = new Regex(@"// SEEDED BUG \((?:(KMG\d{4}); )?runtime: (\w+)\)|// SEEDED BUG \((KMG\d{4})\)");
        var marks = Directory.GetFiles(buggy, "*.cs")
            .SelectMany(File.ReadLines)
            .Select(l => marker.Match(l))
            .Where(mt => mt.Success)
            .Select(mt => (Rule: mt.Groups[1].Success ? mt.Groups[1].Value : mt.Groups[3].Success ? mt.Groups[3].Value : null,
                           Kind: mt.Groups[2].Success ? mt.Groups[2].Value : null))
            .ToList();

        var catalog = SeededBugs.All.Select(b => (b.Rule, Kind: (string?)b.Kind.ToString())).ToList();
        Assert.Equal(catalog.OrderBy(c => c.Kind).ThenBy(c => c.Rule), marks.OrderBy(c => c.Kind).ThenBy(c => c.Rule));
        Assert.Equal(new[] { "KMG0001", "KMG0002", "KMG0003", "KMG0004" }, catalog.Where(c => c.Rule != null).Select(c => c.Rule!).OrderBy(r => r));

        // The correct samples carry no marker at all.
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(root, "samples", "Scull"), "*.cs", SearchOption.AllDirectories),
            f => File.ReadAllText(f).Contains("SEEDED BUG", StringComparison.Ordinal));
    }

    [Fact]
    public void The_catalog_covers_every_kind_a_driver_can_provoke()
    {
        var covered = SeededBugs.All.Select(b => b.Kind).ToHashSet();
        var expected = new[]
        {
            BugKind.SlabOutOfBounds, BugKind.SlabUseAfterFree, BugKind.UseAfterFree, BugKind.VmallocOutOfBounds,
            BugKind.NullPtrDeref, BugKind.WildAccess, BugKind.DoubleFree, BugKind.InvalidFree, BugKind.MismatchedFree,
            BugKind.SleepInAtomic, BugKind.PreemptibleCpuAccess, BugKind.UnbalancedPreempt, BugKind.Leak,
            BugKind.RedzoneOverwritten, BugKind.PoisonOverwritten, BugKind.CacheNotEmpty, BugKind.BootmemAfterBoot,
            BugKind.InvalidFlags, BugKind.UsercopyExposure, BugKind.OutOfBounds, BugKind.BadPageState,
        };
        Assert.Equal(expected.OrderBy(k => k), expected.Intersect(covered).OrderBy(k => k));
    }
}

internal static class RepoRoot
{
    /// <summary>The folder that holds KmemGuard.sln, found upwards from the test binaries.</summary>
    public static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "KmemGuard.sln"))) return dir.FullName;
        throw new InvalidOperationException("KmemGuard.sln not found above " + AppContext.BaseDirectory);
    }
}
