using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis;
using Xunit;

namespace KmemGuard.Analyzers.Tests;

/// <summary>Analyzer exceptions are bugs (AD0001), and valid driver code must stay quiet.</summary>
public class RobustnessTests
{
    [Fact]
    public async Task GeneratedValidProgramsYieldNoDiagnostics()
    {
        GeneratedCorpus corpus = CorpusGenerator.Generate(files: 12, seedBugs: false);
        Compilation compilation = Compilations.Create(corpus.Files, withPrelude: false);
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.Empty(diagnostics.Where(d => d.Id.StartsWith("KMG", StringComparison.Ordinal) || d.Id == "AD0001"));
    }

    [Fact]
    public async Task GeneratedProgramsWithSeededBugsYieldExactlyThoseBugs()
    {
        GeneratedCorpus corpus = CorpusGenerator.Generate(files: 16, seedBugs: true);
        Compilation compilation = Compilations.Create(corpus.Files, withPrelude: false);

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.DoesNotContain(diagnostics, d => d.Id == "AD0001");
        var counts = diagnostics.Where(d => d.Id.StartsWith("KMG", StringComparison.Ordinal))
            .GroupBy(d => d.Id).ToDictionary(g => g.Key, g => g.Count());
        foreach (var pair in corpus.ExpectedDiagnostics)
            Assert.Equal((pair.Key, pair.Value), (pair.Key, counts.TryGetValue(pair.Key, out int n) ? n : 0));
    }

    /// <summary>Every folder of C# in the repository, the Runtime compiled from source (so its own annotations drive the analyzers).</summary>
    [Theory]
    [MemberData(nameof(SourceFolders))]
    public async Task NoAnalyzerExceptionOnRepositorySources(string folder)
    {
        var files = Directory.EnumerateFiles(Path.Combine(RuleDocumentationTests.RepositoryRoot, folder), "*.cs", SearchOption.AllDirectories)
            .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                     && !p.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(p => (p, File.ReadAllText(p)))
            .ToList();
        Compilation compilation = Compilations.Create(files, withPrelude: false, referenceRuntime: folder != "Runtime");

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.Empty(diagnostics.Where(d => d.Id == "AD0001").Select(d => d.GetMessage()));
    }

    public static IEnumerable<object[]> SourceFolders() =>
        new[] { "Runtime", "Analyzers", "CodeFixes", "tests", "benchmarks", "samples" }
            .Where(f => Directory.Exists(Path.Combine(RuleDocumentationTests.RepositoryRoot, f)))
            .Select(f => new object[] { f });
}
