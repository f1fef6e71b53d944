using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;

namespace KmemGuard.Analyzers.Tests;

internal static class Verifier
{
    public static readonly ReferenceAssemblies Net100 = new(
        "net10.0", new PackageIdentity("Microsoft.NETCore.App.Ref", "10.0.12"), Path.Combine("ref", "net10.0"));

    /// <summary>
    /// The generated-code and suppression re-runs triple each test's cost; GeneratedCodeTests covers them once.
    /// </summary>
    public const TestBehaviors Speed = TestBehaviors.SkipGeneratedCodeCheck | TestBehaviors.SkipSuppressionCheck;

    public static MetadataReference Runtime { get; } = MetadataReference.CreateFromFile(typeof(KmemGuard.KPtr).Assembly.Location);

    /// <summary>An expected diagnostic whose message is checked only where the test says WithMessage.</summary>
    public static DiagnosticResult Kmg(string id) => new(id, DiagnosticSeverity.Warning);

    /// <summary>For tests about something else than where the diagnostic's additional locations point.</summary>
    public static DiagnosticResult IgnoreExtra(DiagnosticResult result) => result.WithOptions(DiagnosticOptions.IgnoreAdditionalLocations);

    /// <summary>Analyzes <paramref name="body"/> (written after <see cref="Prelude.Usings"/>) together with the stand-in API.</summary>
    public static Task AnalyzeAsync<TAnalyzer>(string body, params DiagnosticResult[] expected)
        where TAnalyzer : DiagnosticAnalyzer, new() => AnalyzeSourcesAsync<TAnalyzer>(new[] { Prelude.Usings + body }, expected);

    /// <summary>Analyzes driver code written against the real Runtime API (<c>using static KmemGuard.Kernel</c>), without stand-ins.</summary>
    public static Task AnalyzeKernelAsync<TAnalyzer>(string body, params DiagnosticResult[] expected)
        where TAnalyzer : DiagnosticAnalyzer, new() =>
        AnalyzeSourcesAsync<TAnalyzer>(new[] { KernelUsings + body }, expected, withPrelude: false);

    public const string KernelUsings = """
        using System;
        using KmemGuard;
        using static KmemGuard.Kernel;

        namespace Driver;

        """;

    public static Task AnalyzeSourcesAsync<TAnalyzer>(string[] sources, params DiagnosticResult[] expected)
        where TAnalyzer : DiagnosticAnalyzer, new() => AnalyzeSourcesAsync<TAnalyzer>(sources, expected, withPrelude: true);

    private static Task AnalyzeSourcesAsync<TAnalyzer>(string[] sources, DiagnosticResult[] expected, bool withPrelude)
        where TAnalyzer : DiagnosticAnalyzer, new()
    {
        var test = new CSharpAnalyzerTest<TAnalyzer, DefaultVerifier> { ReferenceAssemblies = Net100, TestBehaviors = Speed };
        for (int i = 0; i < sources.Length; i++)
            test.TestState.Sources.Add(($"Driver{i}.cs", sources[i]));
        if (withPrelude)
            test.TestState.Sources.Add(("Prelude.cs", Prelude.Source));
        test.TestState.AdditionalReferences.Add(Runtime);
        test.ExpectedDiagnostics.AddRange(expected);
        return test.RunAsync(CancellationToken.None);
    }

    public static Task FixAsync<TAnalyzer, TFix>(string body, string fixedBody, params DiagnosticResult[] expected)
        where TAnalyzer : DiagnosticAnalyzer, new()
        where TFix : CodeFixProvider, new() => FixAsync<TAnalyzer, TFix>(body, fixedBody, null, expected);

    public static Task FixAsync<TAnalyzer, TFix>(string body, string fixedBody, string? equivalenceKey, params DiagnosticResult[] expected)
        where TAnalyzer : DiagnosticAnalyzer, new()
        where TFix : CodeFixProvider, new() =>
        FixSourcesAsync<TAnalyzer, TFix>(new[] { body }, new[] { fixedBody }, equivalenceKey, expected);

    /// <summary>A fix test over several files (Driver0.cs, Driver1.cs, ...), each after the prelude's usings.</summary>
    public static Task FixSourcesAsync<TAnalyzer, TFix>(string[] bodies, string[] fixedBodies, string? equivalenceKey, params DiagnosticResult[] expected)
        where TAnalyzer : DiagnosticAnalyzer, new()
        where TFix : CodeFixProvider, new()
    {
        var test = new CSharpCodeFixTest<TAnalyzer, TFix, DefaultVerifier>
        {
            ReferenceAssemblies = Net100,
            CodeActionEquivalenceKey = equivalenceKey,
            TestBehaviors = Speed,
            // Fix All in document runs for every fix test; project and solution scopes in CodeFixTests.FixAllAcrossDocuments.
            CodeFixTestBehaviors = CodeFixTestBehaviors.SkipFixAllInProjectCheck | CodeFixTestBehaviors.SkipFixAllInSolutionCheck,
        };
        foreach (var (state, sources) in new[] { (test.TestState, bodies), (test.FixedState, fixedBodies) })
        {
            for (int i = 0; i < sources.Length; i++)
                state.Sources.Add(($"Driver{i}.cs", Prelude.Usings + sources[i]));
            state.Sources.Add(("Prelude.cs", Prelude.Source));
            state.AdditionalReferences.Add(Runtime);
        }

        test.ExpectedDiagnostics.AddRange(expected);
        return test.RunAsync(CancellationToken.None);
    }
}
