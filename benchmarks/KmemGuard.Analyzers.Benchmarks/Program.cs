using System;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Running;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project benchmarks/KmemGuard.Analyzers.Benchmarks -- quick</c> prints the
/// figures for docs/analyzer-performance.md (median of 5 runs); <c>-- corpus DIR [files]</c> writes the
/// corpus out; anything else runs BenchmarkDotNet.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "quick")
            Quick(args.Skip(1).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).DefaultIfEmpty(200).ToArray());
        else if (args.Length > 1 && args[0] == "telemetry")
            Telemetry(int.Parse(args[1], CultureInfo.InvariantCulture));
        else if (args.Length > 1 && args[0] == "corpus")
            WriteCorpus(args[1], args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 200);
        else
            BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }

    private static void WriteCorpus(string directory, int files)
    {
        Directory.CreateDirectory(directory);
        GeneratedCorpus corpus = CorpusGenerator.Generate(files, seedBugs: true);
        foreach (var (path, text) in corpus.Files)
            File.WriteAllText(Path.Combine(directory, path), text);
        Console.WriteLine($"{corpus.Files.Count} files, {corpus.Lines} lines in {directory}");
    }

    /// <summary>The analyzer driver's own measure of the time spent in each analyzer (the first to ask pays for the shared analysis).</summary>
    private static void Telemetry(int files)
    {
        var compilation = new CorpusCompilation(CorpusGenerator.Generate(files, seedBugs: true)).Fresh();
        var options = new CompilationWithAnalyzersOptions(new AnalyzerOptions(ImmutableArray<Microsoft.CodeAnalysis.AdditionalText>.Empty),
            null, concurrentAnalysis: true, logAnalyzerExecutionTime: true);
        var withAnalyzers = compilation.WithAnalyzers(CorpusCompilation.Analyzers, options);
        var watch = Stopwatch.StartNew();
        var diagnostics = withAnalyzers.GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
        Console.WriteLine($"{files} files: {diagnostics.Length} diagnostics in {watch.ElapsedMilliseconds} ms");
        foreach (var analyzer in CorpusCompilation.Analyzers)
        {
            var info = withAnalyzers.GetAnalyzerTelemetryInfoAsync(analyzer, default).GetAwaiter().GetResult();
            Console.WriteLine($"  {analyzer.GetType().Name}: {info.ExecutionTime.TotalMilliseconds:F0} ms");
        }
    }

    private static void Quick(int[] sizes)
    {
        Console.WriteLine("| files | lines | compiler (ms) | + empty analyzer (ms) | + KmemGuard (ms) | KmemGuard over compiler | KmemGuard over empty analyzer |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (int files in sizes)
        {
            GeneratedCorpus corpus = CorpusGenerator.Generate(files, seedBugs: true);
            var compilation = new CorpusCompilation(corpus);
            int errors = compilation.Fresh().GetDiagnostics().Count(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
            if (errors > 0)
                throw new InvalidOperationException($"the corpus has {errors} compile errors");
            double compiler = Median(() => compilation.Compile());
            double empty = Median(() => compilation.CompileWithAnalyzersAsync(ImmutableArray.Create<DiagnosticAnalyzer>(new EmptyAnalyzer())).GetAwaiter().GetResult());
            double kmem = Median(() => compilation.CompileWithAnalyzersAsync(CorpusCompilation.Analyzers).GetAwaiter().GetResult());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {files} | {corpus.Lines} | {compiler:F0} | {empty:F0} | {kmem:F0} | {(kmem - compiler) / compiler:P0} | {(kmem - empty) / compiler:P0} |"));
        }
    }

    private static double Median(Func<int> run)
    {
        run(); // warm-up: JIT and metadata
        var times = Enumerable.Range(0, 5).Select(_ =>
        {
            var watch = Stopwatch.StartNew();
            run();
            return watch.Elapsed.TotalMilliseconds;
        }).OrderBy(t => t).ToArray();
        return times[times.Length / 2];
    }
}
