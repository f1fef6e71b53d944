using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Xunit;

namespace KmemGuard.Analyzers.Tests;

/// <summary>The IDE analyzes one document (or one span) at a time: interprocedural findings must show there too.</summary>
public class LiveAnalysisTests
{
    private const string Caller = Prelude.Usings + """
        class Dev
        {
            spinlock_t lk = new();
            void rx()
            {
                spin_lock(lk);
                Helpers.refill(this);
                spin_unlock(lk);
            }
        }
        """;

    private const string Callee = Prelude.Usings + """
        static class Helpers
        {
            public static void refill(Dev d) => more(d);
            static void more(Dev d) { var p = kmalloc(64, GFP_KERNEL); }
        }
        """;

    [Fact]
    public async Task InterproceduralSleepShowsInPerDocumentAnalysis()
    {
        var (sleep, callerTree) = await SingleDiagnosticOfCallerAsync(new SleepInAtomicAnalyzer(), Caller, Callee);

        Assert.Equal("KMG0001", sleep.Id);
        Assert.Equal("Helpers.refill(this)", callerTree.GetText().ToString(sleep.Location.SourceSpan));
        Assert.Contains("reached via rx() → refill() → more() → kmalloc", sleep.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("Callee.cs", sleep.AdditionalLocations.Last().SourceTree!.FilePath);
    }

    [Fact]
    public async Task HelperNeedingPreemptionOffShowsAtTheCallerInPerDocumentAnalysis()
    {
        const string caller = Prelude.Usings + """
            class Dev
            {
                int[] counts = new int[4];
                void rx() => counts[CpuHelpers.slot()]++;
            }
            """;
        const string callee = Prelude.Usings + """
            static class CpuHelpers
            {
                public static int slot() => next() * 2;
                static int next() => smp_processor_id();
            }
            """;
        var (access, callerTree) = await SingleDiagnosticOfCallerAsync(new PreemptibleCpuAccessAnalyzer(), caller, callee);

        Assert.Equal("KMG0003", access.Id);
        Assert.Equal("CpuHelpers.slot()", callerTree.GetText().ToString(access.Location.SourceSpan));
        Assert.Contains("reached via rx() → slot() → next() → smp_processor_id", access.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("Callee.cs", access.AdditionalLocations.Single().SourceTree!.FilePath);
    }

    /// <summary>Analyzes only the caller's method, as the IDE does for the span being edited, and expects one diagnostic.</summary>
    private static async Task<(Diagnostic Diagnostic, SyntaxTree CallerTree)> SingleDiagnosticOfCallerAsync(DiagnosticAnalyzer analyzer, string caller, string callee)
    {
        Compilation compilation = Compilations.Create(new[] { ("Caller.cs", caller), ("Callee.cs", callee) });
        var withAnalyzers = compilation.WithAnalyzers(System.Collections.Immutable.ImmutableArray.Create(analyzer));
        SyntaxTree callerTree = compilation.SyntaxTrees.First(t => t.FilePath == "Caller.cs");
        SemanticModel model = compilation.GetSemanticModel(callerTree);
        var span = callerTree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.MethodDeclarationSyntax>().Single().Span;

        var diagnostics = await withAnalyzers.GetAnalyzerSemanticDiagnosticsAsync(model, span, CancellationToken.None);

        return (Assert.Single(diagnostics), callerTree);
    }

    [Fact]
    public async Task NothingRunsWithoutTheRuntime()
    {
        const string plain = """
            class C
            {
                static void spin_lock(object o) { }
                static void msleep(int n) { }
                void f() { spin_lock(this); msleep(1); }
            }
            """;
        var trees = new[] { Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(plain) };
        var compilation = Microsoft.CodeAnalysis.CSharp.CSharpCompilation.Create("Plain", trees,
            new[] { MetadataReference.CreateFromFile(typeof(object).Assembly.Location) });
        Assert.Null(KmemGuardContext.For(compilation));
        Assert.Empty(await compilation.WithAnalyzers(Compilations.AllAnalyzers).GetAnalyzerDiagnosticsAsync());
    }
}
