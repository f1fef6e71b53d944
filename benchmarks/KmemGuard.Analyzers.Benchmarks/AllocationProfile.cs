using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Linq;
using System.Threading;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// <c>allocations [files]</c>: what KmemGuard allocates, by type. The runtime samples allocation (an
/// event about every 100 KB, naming the type being allocated then); the same analysis runs with an
/// analyzer that does nothing and with KmemGuard, and the difference per type is KmemGuard's share.
/// Sampled, so small types are noise; a type with tens of samples is not. It names what to look at,
/// not where: Roslyn's own types (graphs, bound trees) are allocated on KmemGuard's behalf.
/// </summary>
internal static class AllocationProfile
{
    private const int Runs = 3;

    public static void Run(int files)
    {
        var compilation = new CorpusCompilation(CorpusGenerator.Generate(files, seedBugs: true));
        var empty = ImmutableArray.Create<DiagnosticAnalyzer>(new EmptyAnalyzer());
        Analyze(compilation, empty);
        Analyze(compilation, CorpusCompilation.Analyzers);
        Dictionary<string, double> baseline = Sample(compilation, empty);
        Dictionary<string, double> kmemguard = Sample(compilation, CorpusCompilation.Analyzers);
        double total = kmemguard.Values.Sum() - baseline.Values.Sum();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{files} files: KmemGuard allocates {total / 1e6:F1} MB per analysis by the samples (mean of {Runs} runs each); the types that grew most:"));
        Console.WriteLine();
        Console.WriteLine("| type | MB per analysis | share |");
        Console.WriteLine("|---|---|---|");
        foreach (var (type, bytes) in kmemguard.Keys.Union(baseline.Keys)
                     .Select(t => (t, kmemguard.GetValueOrDefault(t) - baseline.GetValueOrDefault(t)))
                     .OrderByDescending(p => p.Item2).Take(40))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| `{type}` | {bytes / 1e6:F1} | {bytes / total:P1} |"));
        }
    }

    private static void Analyze(CorpusCompilation compilation, ImmutableArray<DiagnosticAnalyzer> analyzers)
    {
        var options = new CompilationWithAnalyzersOptions(new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty),
            onAnalyzerException: null, concurrentAnalysis: false, logAnalyzerExecutionTime: false);
        compilation.Fresh().WithAnalyzers(analyzers, options).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
    }

    /// <summary>Sampled bytes by type, the mean over <see cref="Runs"/> analyses.</summary>
    private static Dictionary<string, double> Sample(CorpusCompilation compilation, ImmutableArray<DiagnosticAnalyzer> analyzers)
    {
        using var listener = new AllocationTicks();
        for (int i = 0; i < Runs; i++)
            Analyze(compilation, analyzers);
        // The runtime hands events to listeners asynchronously: give the last ones time to arrive.
        Thread.Sleep(2000);
        return listener.BytesByType.ToDictionary(p => p.Key, p => (double)p.Value / Runs, StringComparer.Ordinal);
    }

    private sealed class AllocationTicks : EventListener
    {
        private const EventKeywords GcKeyword = (EventKeywords)0x1;

        public ConcurrentDictionary<string, long> BytesByType { get; } = new(StringComparer.Ordinal);

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
                EnableEvents(source, EventLevel.Verbose, GcKeyword);
        }

        protected override void OnEventWritten(EventWrittenEventArgs data)
        {
            if (data.EventName is null || !data.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || data.Payload is null)
                return;
            int type = data.PayloadNames!.IndexOf("TypeName");
            int amount = data.PayloadNames.IndexOf("AllocationAmount64");
            if (type < 0 || amount < 0)
                return;
            BytesByType.AddOrUpdate((string)data.Payload[type]!, Convert.ToInt64(data.Payload[amount], CultureInfo.InvariantCulture), (_, known) => known + Convert.ToInt64(data.Payload[amount], CultureInfo.InvariantCulture));
        }
    }
}
