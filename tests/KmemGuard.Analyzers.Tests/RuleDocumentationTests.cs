using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace KmemGuard.Analyzers.Tests;

public class RuleDocumentationTests
{
    public static IEnumerable<object[]> AllDescriptors() =>
        Compilations.AllAnalyzers.SelectMany(a => a.SupportedDiagnostics).Select(d => new object[] { d.Id });

    private static DiagnosticDescriptor Descriptor(string id) =>
        Compilations.AllAnalyzers.SelectMany(a => a.SupportedDiagnostics).Single(d => d.Id == id);

    [Fact]
    public void EachRuleHasOneAnalyzerAndAllIdsAreDistinct()
    {
        var ids = Compilations.AllAnalyzers.SelectMany(a => a.SupportedDiagnostics).Select(d => d.Id).ToList();
        Assert.Equal(new[] { "KMG0001", "KMG0002", "KMG0003", "KMG0004" }, ids.OrderBy(i => i, StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(AllDescriptors))]
    public void DescriptorHasItsPageReadmeRowHelpLinkAndReleaseEntry(string id)
    {
        DiagnosticDescriptor descriptor = Descriptor(id);
        string page = Path.Combine(RepositoryRoot, "docs", "rules", id + ".md");
        Assert.True(File.Exists(page), $"missing {page}");
        string text = File.ReadAllText(page);
        Assert.StartsWith($"# {id}: {descriptor.Title}", text, StringComparison.Ordinal);
        foreach (string section in new[] { "## What it flags", "## Why", "## Bad", "## Good", "## The fix", "## Annotating your own API", "## Configuring" })
            Assert.Contains(section, text, StringComparison.Ordinal);

        string readme = File.ReadAllText(Path.Combine(RepositoryRoot, "docs", "rules", "README.md"));
        Assert.Contains($"| [{id}]({id}.md) | {descriptor.Title} |", readme, StringComparison.Ordinal);

        Assert.EndsWith($"docs/rules/{id}.md", descriptor.HelpLinkUri, StringComparison.Ordinal);

        string unshipped = File.ReadAllText(Path.Combine(RepositoryRoot, "Analyzers", "AnalyzerReleases.Unshipped.md"));
        string shipped = File.ReadAllText(Path.Combine(RepositoryRoot, "Analyzers", "AnalyzerReleases.Shipped.md"));
        Assert.Contains($"{id} | {descriptor.Category} | {descriptor.DefaultSeverity}", unshipped + shipped, StringComparison.Ordinal);
    }

    /// <summary>The analyzer mirrors the annotation enums by value; they must not drift.</summary>
    [Fact]
    public void MirroredAnnotationEnumsMatchTheRuntime()
    {
        AssertSameValues(typeof(MemoryFamily), typeof(Flow.Family));
        AssertSameValues(typeof(SectionKind), typeof(Flow.Section), mirrorMayHaveMore: true);
        AssertSameValues(typeof(CallbackContext), typeof(Flow.CallbackContextKind));
    }

    private static void AssertSameValues(Type runtime, Type mirror, bool mirrorMayHaveMore = false)
    {
        foreach (string name in Enum.GetNames(runtime))
            Assert.Equal(Convert.ToInt32(Enum.Parse(runtime, name)), Convert.ToInt32(Enum.Parse(mirror, name)));
        if (!mirrorMayHaveMore)
            Assert.Equal(Enum.GetNames(runtime).Length, Enum.GetNames(mirror).Length);
    }

    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "KmemGuard.sln")))
                    return dir.FullName;
            }

            throw new InvalidOperationException("KmemGuard.sln not found above " + AppContext.BaseDirectory);
        }
    }
}
