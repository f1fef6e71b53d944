using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Tests;

/// <summary>Builds compilations directly, for tests that drive the analyzers as the IDE and the build do.</summary>
internal static class Compilations
{
    private static readonly ImmutableArray<MetadataReference> References = LoadReferences();

    public static ImmutableArray<DiagnosticAnalyzer> AllAnalyzers { get; } = ImmutableArray.Create<DiagnosticAnalyzer>(
        new SleepInAtomicAnalyzer(), new MismatchedFreeAnalyzer(), new PreemptibleCpuAccessAnalyzer(), new SectionImbalanceAnalyzer());

    public static CSharpCompilation Create(IEnumerable<(string Path, string Text)> sources, bool withPrelude = true, bool referenceRuntime = true)
    {
        var trees = sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, new CSharpParseOptions(LanguageVersion.Latest), s.Path)).ToList();
        if (withPrelude)
            trees.Add(CSharpSyntaxTree.ParseText(Prelude.Source, new CSharpParseOptions(LanguageVersion.Latest), "Prelude.cs"));
        return CSharpCompilation.Create("Driver", trees, referenceRuntime ? References : References.Remove(Verifier.Runtime),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
    }

    public static Task<ImmutableArray<Diagnostic>> AnalyzeAsync(Compilation compilation) =>
        compilation.WithAnalyzers(AllAnalyzers, new CompilationWithAnalyzersOptions(
            new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty), onAnalyzerException: null,
            concurrentAnalysis: true, logAnalyzerExecutionTime: false, reportSuppressedDiagnostics: false))
            .GetAllDiagnosticsAsync(CancellationToken.None);

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        string framework = Path.Combine("/usr/share/dotnet/packs/Microsoft.NETCore.App.Ref/10.0.12/ref/net10.0");
        if (!Directory.Exists(framework))
            framework = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        // The few framework assemblies driver code uses: loading all 170 costs seconds per test run.
        string[] used = { "System.Runtime.dll", "System.Collections.dll", "System.Linq.dll", "System.Console.dll", "System.Runtime.InteropServices.dll", "System.Threading.dll" };
        return used.Select(name => Path.Combine(framework, name)).Where(File.Exists)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .Append(Verifier.Runtime)
            .ToImmutableArray();
    }
}
