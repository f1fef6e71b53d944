using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>Compiles a generated corpus the way a build does, with or without the analyzers.</summary>
internal sealed class CorpusCompilation
{
    private readonly ImmutableArray<SyntaxTree> trees;
    private readonly ImmutableArray<MetadataReference> references;

    public CorpusCompilation(GeneratedCorpus corpus)
    {
        var options = new CSharpParseOptions(LanguageVersion.Latest);
        trees = corpus.Files.Select(f => CSharpSyntaxTree.ParseText(f.Text, options, f.Path)).ToImmutableArray();
        references = ReferencePaths().Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
    }

    /// <summary>The running framework's System assemblies and KmemGuard.Runtime (for the annotations).</summary>
    public static IEnumerable<string> ReferencePaths()
    {
        string framework = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        return Directory.GetFiles(framework, "System.*.dll")
            .Where(p => !p.Contains("Native", System.StringComparison.Ordinal))
            .Append(typeof(KmemGuard.KPtr).Assembly.Location);
    }

    public static ImmutableArray<DiagnosticAnalyzer> Analyzers { get; } = ImmutableArray.Create<DiagnosticAnalyzer>(
        new SleepInAtomicAnalyzer(), new MismatchedFreeAnalyzer(), new PreemptibleCpuAccessAnalyzer(), new SectionImbalanceAnalyzer());

    /// <summary>
    /// A fresh compilation: nothing bound yet, as at the start of a build. On one thread
    /// (<c>concurrentBuild: false</c>), so that wall time is about the CPU time of one thread and other
    /// processes on the machine disturb it less.
    /// </summary>
    public CSharpCompilation Fresh() => CSharpCompilation.Create("Corpus", trees, references,
        new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, concurrentBuild: false));

    /// <summary>The compiler alone: bind, check and emit.</summary>
    public int Compile()
    {
        using var stream = new MemoryStream();
        var result = Fresh().Emit(stream);
        return result.Diagnostics.Length;
    }

    /// <summary>
    /// The compiler with the analyzers attached: compiler diagnostics and analyzer diagnostics from one
    /// analysis (the driver on one thread, like the compilation), then emit.
    /// </summary>
    public async Task<int> CompileWithAnalyzersAsync(ImmutableArray<DiagnosticAnalyzer> analyzers)
    {
        CSharpCompilation compilation = Fresh();
        var options = new CompilationWithAnalyzersOptions(new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty),
            onAnalyzerException: null, concurrentAnalysis: false, logAnalyzerExecutionTime: false);
        var diagnostics = await compilation.WithAnalyzers(analyzers, options).GetAllDiagnosticsAsync(CancellationToken.None);
        using var stream = new MemoryStream();
        compilation.Emit(stream);
        return diagnostics.Length;
    }
}
