using System.Collections.Immutable;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>Compile time of the generated corpus with and without the KmemGuard analyzers.</summary>
[SimpleJob(RunStrategy.Monitoring, warmupCount: 1, iterationCount: 5)]
[MemoryDiagnoser]
public class CompileBenchmarks
{
    private CorpusCompilation corpus = null!;

    [Params(200, 400)]
    public int Files { get; set; }

    [GlobalSetup]
    public void Setup() => corpus = new CorpusCompilation(CorpusGenerator.Generate(Files, seedBugs: true));

    [Benchmark(Baseline = true)]
    public int Compiler() => corpus.Compile();

    /// <summary>The analyzer driver with an analyzer that does nothing per method: the cost any analyzer pays.</summary>
    [Benchmark]
    public Task<int> CompilerWithEmptyAnalyzer() => corpus.CompileWithAnalyzersAsync(ImmutableArray.Create<DiagnosticAnalyzer>(new EmptyAnalyzer()));

    [Benchmark]
    public Task<int> CompilerWithKmemGuard() => corpus.CompileWithAnalyzersAsync(CorpusCompilation.Analyzers);
}

/// <summary>Instantiated directly, never loaded by a compiler: hence no [DiagnosticAnalyzer].</summary>
internal sealed class EmptyAnalyzer : DiagnosticAnalyzer
{
    private static readonly DiagnosticDescriptor Never = new("EMPTY0001", "never", "never", "none", DiagnosticSeverity.Hidden, true);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Never);

    public override void Initialize(AnalysisContext context)
    {
        context.EnableConcurrentExecution();
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.RegisterOperationBlockAction(_ => { });
    }
}
