using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// The figures of docs/analyzer-performance.md. Per corpus size, the three cases (compiler, + empty
/// analyzer, + KmemGuard) run round-robin, each round in a rotated order, after warm-up rounds that
/// are thrown away; every run starts after a full GC. Each run records its wall time and the process's
/// CPU time (user + system). The compilation and the analyzer driver run on one thread, so CPU time is
/// what the work costs, and wall time is close to it unless other processes take the core. The bytes
/// allocated are a second measure that the load does not change (this machine has no instruction counters).
/// A difference is printed with the interquartile range of its per-round values, and marked
/// unreliable when that range is wider than the difference itself.
/// </summary>
internal static class QuickRun
{
    public const double Goal = 0.10;
    private const double ScalingGoal = 2.2;

    private sealed record Case(string Name, Func<int> Run);

    /// <summary>A run's wall and CPU time (ms) and the bytes it allocated (all threads): allocation does not depend on the machine's load.</summary>
    private sealed record Sample(double Wall, double Cpu, long Allocated);

    private sealed record SizeResult(int Files, int Lines, Dictionary<string, List<Sample>> Samples, string Load);

    public static void Run(int[] sizes, int rounds, int warmups)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Environment.ProcessorCount} cores, server GC {System.Runtime.GCSettings.IsServerGC}, GC latency {System.Runtime.GCSettings.LatencyMode}, "
            + $"tiered compilation {AppContext.GetData("System.Runtime.TieredCompilation") ?? "default"}, tiered PGO {AppContext.GetData("System.Runtime.TieredPGO") ?? "default"} "
            + $"(DOTNET_ variables override them), {warmups} warm-up and {rounds} measured rounds"));
        var results = sizes.Select(files => Measure(files, rounds, warmups)).ToList();

        Console.WriteLine();
        Console.WriteLine("| files | lines | load (1 min, start → end) | case | CPU median (ms) | CPU min–max | wall median (ms) | wall min–max | allocated median (MB) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (SizeResult result in results)
        {
            foreach (var (name, samples) in result.Samples)
            {
                double[] cpu = samples.Select(s => s.Cpu).ToArray();
                double[] wall = samples.Select(s => s.Wall).ToArray();
                double[] megabytes = samples.Select(s => s.Allocated / 1e6).ToArray();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {result.Files} | {result.Lines:N0} | {result.Load} | {name} | {Quantile(cpu, 0.5):N0} | {cpu.Min():N0}–{cpu.Max():N0} | {Quantile(wall, 0.5):N0} | {wall.Min():N0}–{wall.Max():N0} | {Quantile(megabytes, 0.5):N0} |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine("Overheads per round (CPU time; median [interquartile range] over the rounds):");
        Console.WriteLine();
        Console.WriteLine("| files | KmemGuard over compiler | KmemGuard over empty analyzer, per compiler time | empty analyzer over compiler | ≤ 10 % over compiler |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (SizeResult result in results)
        {
            double[] overCompiler = PerRound(result, (c, _, k) => (k - c) / c);
            double[] overEmpty = PerRound(result, (c, e, k) => (k - e) / c);
            double[] empty = PerRound(result, (c, e, _) => (e - c) / c);
            Console.WriteLine($"| {result.Files} | {Spread(overCompiler, "P1")} | {Spread(overEmpty, "P1")} | {Spread(empty, "P1")} | {Verdict(overCompiler)} |");
        }

        PrintScaling(results);
    }

    /// <summary>
    /// The time spent in the KmemGuard analyzers' callbacks (the first analyzer to ask for a body pays
    /// for the shared analysis), summed over the four, after warm-up rounds, three ways: the analyzer
    /// driver's own measure (<c>logAnalyzerExecutionTime</c>, wall clock), the CPU time of the thread
    /// in the callbacks and the bytes it allocated there (<see cref="CallbackMeter"/>). They leave out
    /// the compiler and the driver, and with them most of the noise of the other measures; the CPU
    /// time leaves out waiting for a core too, and the allocation does not depend on the load at all.
    /// </summary>
    public static void Telemetry(int[] sizes, int rounds, int warmups, string? compared)
    {
        // Sizes (and builds) interleaved round by round, like the cases of the other modes: the machine's
        // speed drifts (other virtual machines share the host, and that shows in no counter here), and a
        // ratio of two runs measured minutes apart measures the drift as much as the analyzers.
        var builds = new List<(string Name, ImmutableArray<DiagnosticAnalyzer> Analyzers)> { ("KmemGuard", CorpusCompilation.Analyzers) };
        if (compared is not null)
            builds.Add(("compared build", ComparedBuild.Load(compared)));
        var compilations = sizes.Select(files => new CorpusCompilation(CorpusGenerator.Generate(files, seedBugs: true))).ToArray();
        var runs = builds.SelectMany(build => sizes.Select((files, i) => (Build: build, Compilation: compilations[i],
            Result: new TelemetryResult(build.Name, files, new List<double>(), new List<double>(), new List<double>(), new List<double>())))).ToArray();
        string loadBefore = LoadAverage();
        for (int round = 0; round < warmups + rounds; round++)
        {
            for (int i = 0; i < runs.Length; i++)
            {
                var run = runs[(round + i) % runs.Length];
                MeterRound(run.Compilation, run.Build.Analyzers, round >= warmups ? run.Result : null,
                    $"{run.Build.Name}, {run.Result.Files} files, round {round + 1 - warmups}{(round < warmups ? " (warm-up)" : "")}");
            }
        }

        TelemetryResult[] results = runs.Select(r => r.Result).ToArray();
        Console.WriteLine($"load (1 min) {loadBefore} → {LoadAverage()}, {warmups} warm-up and {rounds} measured rounds, interleaved"
            + (compared is null ? "" : "; compared build: " + compared));
        Console.WriteLine();
        Console.WriteLine("| build | files | driver's measure (ms, wall): median [IQR] | thread CPU (ms) | thread CPU outside GC pauses (ms) | allocated (MB) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (TelemetryResult r in results)
            Console.WriteLine($"| {r.Build} | {r.Files} | {Spread(r.Driver.ToArray(), "N0")} | {Spread(r.Cpu.ToArray(), "N0")} | {Spread(r.CpuOutsideGc.ToArray(), "N0")} | {Spread(r.Megabytes.ToArray(), "N1")} |");
        Console.WriteLine();
        Console.WriteLine("Doubling, per round (the larger size's value over the smaller's in the same round): median [IQR], ≤ ×2.2");
        Console.WriteLine();
        Console.WriteLine("| build | files | driver's measure | thread CPU | outside GC pauses | allocated |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (TelemetryResult small in results)
        {
            foreach (TelemetryResult large in results.Where(r => r.Build == small.Build && r.Files == 2 * small.Files))
            {
                Console.WriteLine($"| {small.Build} | {small.Files} → {large.Files} | {PairedRatio(small.Driver, large.Driver, ScalingGoal)} | {PairedRatio(small.Cpu, large.Cpu, ScalingGoal)} | "
                    + $"{PairedRatio(small.CpuOutsideGc, large.CpuOutsideGc, ScalingGoal)} | {PairedRatio(small.Megabytes, large.Megabytes, ScalingGoal)} |");
            }
        }

        if (compared is null)
            return;
        Console.WriteLine();
        Console.WriteLine("This build over the compared build, per round: median [IQR], ≤ ×1.0 (this build no slower)");
        Console.WriteLine();
        Console.WriteLine("| files | driver's measure | thread CPU | outside GC pauses | allocated |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (TelemetryResult other in results.Where(r => r.Build != "KmemGuard"))
        {
            TelemetryResult mine = results.First(r => r.Build == "KmemGuard" && r.Files == other.Files);
            Console.WriteLine($"| {mine.Files} | {PairedRatio(other.Driver, mine.Driver, 1.0)} | {PairedRatio(other.Cpu, mine.Cpu, 1.0)} | "
                + $"{PairedRatio(other.CpuOutsideGc, mine.CpuOutsideGc, 1.0)} | {PairedRatio(other.Megabytes, mine.Megabytes, 1.0)} |");
        }
    }

    /// <summary>One analysis of a fresh compilation with the metered analyzers, recorded in <paramref name="result"/> unless it is a warm-up.</summary>
    private static void MeterRound(CorpusCompilation compilation, ImmutableArray<DiagnosticAnalyzer> metered, TelemetryResult? result, string label)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var options = new CompilationWithAnalyzersOptions(new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty),
            onAnalyzerException: null, concurrentAnalysis: false, logAnalyzerExecutionTime: true);
        var meter = new CallbackMeter();
        TimeSpan pausesBefore = GC.GetTotalPauseDuration();
        var analyzers = meter.Wrap(metered);
        var withAnalyzers = compilation.Fresh().WithAnalyzers(analyzers, options);
        withAnalyzers.GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
        TimeSpan pausesAll = GC.GetTotalPauseDuration() - pausesBefore;
        double driver = analyzers.Sum(a => withAnalyzers.GetAnalyzerTelemetryInfoAsync(a, default).GetAwaiter().GetResult().ExecutionTime.TotalMilliseconds);
        if (result is not null)
        {
            result.Driver.Add(driver);
            result.Cpu.Add(meter.Cpu.TotalMilliseconds);
            result.CpuOutsideGc.Add((meter.Cpu - meter.GcPause).TotalMilliseconds);
            result.Megabytes.Add(meter.AllocatedBytes / 1e6);
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{label}: driver's measure {driver:F0} ms, thread CPU {meter.Cpu.TotalMilliseconds:F0} ms, {meter.AllocatedBytes / 1e6:F1} MB in {meter.Callbacks} callbacks, "
            + $"GC pauses in them {meter.GcPause.TotalMilliseconds:F0} ms ({meter.Gen2Collections} full) of {pausesAll.TotalMilliseconds:F0} ms in the run"));
    }

    private sealed record TelemetryResult(string Build, int Files, List<double> Driver, List<double> Cpu, List<double> CpuOutsideGc, List<double> Megabytes);

    /// <summary>The per-round ratios large / small: median [IQR], met when the third quartile is within the goal, not met when the first is above it; and where the median is (<see cref="MedianVerdict"/>).</summary>
    private static string PairedRatio(List<double> small, List<double> large, double goal)
    {
        double[] ratios = small.Zip(large, (a, b) => b / a).ToArray();
        double q1 = Quantile(ratios, 0.25), q3 = Quantile(ratios, 0.75);
        string verdict = SpreadVerdict(q1, q3, goal);
        return string.Create(CultureInfo.InvariantCulture, $"×{Quantile(ratios, 0.5):F2} [{q1:F2}–{q3:F2}] {verdict}; median {MedianVerdict(ratios, goal, "F2")}");
    }

    /// <summary>The ratio of the medians, with the range that pairs the quartiles and the verdict on ×2.2 from that range.</summary>
    private static string Ratio(List<double> small, List<double> large)
    {
        double[] a = small.ToArray(), b = large.ToArray();
        double low = Quantile(b, 0.25) / Quantile(a, 0.75);
        double high = Quantile(b, 0.75) / Quantile(a, 0.25);
        string verdict = SpreadVerdict(low, high, ScalingGoal);
        return string.Create(CultureInfo.InvariantCulture, $"×{Quantile(b, 0.5) / Quantile(a, 0.5):F2} [{low:F2}–{high:F2}] {verdict}");
    }

    /// <summary>The analyzers' own time (KmemGuard run minus compiler run of the same round), from each size to the next that doubles it.</summary>
    private static void PrintScaling(List<SizeResult> results)
    {
        var pairs = results.SelectMany(small => results.Where(large => large.Files == 2 * small.Files).Select(large => (small, large))).ToList();
        if (pairs.Count == 0)
            return;
        Console.WriteLine();
        Console.WriteLine("Scaling of the analyzers' time (KmemGuard minus compiler, CPU, per round; the ratio's range pairs the quartiles):");
        Console.WriteLine();
        Console.WriteLine("| files | analyzers' time (ms) | doubled: analyzers' time (ms) | ratio, ≤ ×2.2 |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var (small, large) in pairs)
        {
            double[] a = PerRound(small, (c, _, k) => k - c);
            double[] b = PerRound(large, (c, _, k) => k - c);
            Console.WriteLine($"| {small.Files} → {large.Files} | {Spread(a, "N0")} | {Spread(b, "N0")} | {Ratio(a.ToList(), b.ToList())} |");
        }
    }

    private static SizeResult Measure(int files, int rounds, int warmups)
    {
        GeneratedCorpus corpus = CorpusGenerator.Generate(files, seedBugs: true);
        var compilation = new CorpusCompilation(corpus);
        int errors = compilation.Fresh().GetDiagnostics().Count(d => d.Severity == DiagnosticSeverity.Error);
        if (errors > 0)
            throw new InvalidOperationException($"the corpus has {errors} compile errors");
        Case[] cases =
        {
            new("compiler", compilation.Compile),
            new("+ empty analyzer", () => compilation.CompileWithAnalyzersAsync(ImmutableArray.Create<DiagnosticAnalyzer>(new EmptyAnalyzer())).GetAwaiter().GetResult()),
            new("+ KmemGuard", () => compilation.CompileWithAnalyzersAsync(CorpusCompilation.Analyzers).GetAwaiter().GetResult()),
        };
        var samples = cases.ToDictionary(c => c.Name, _ => new List<Sample>());
        string loadBefore = LoadAverage();
        for (int round = 0; round < warmups + rounds; round++)
        {
            for (int i = 0; i < cases.Length; i++)
            {
                Case next = cases[(round + i) % cases.Length];
                Sample sample = Time(next.Run);
                if (round >= warmups)
                    samples[next.Name].Add(sample);
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{files} files, round {round + 1 - warmups}{(round < warmups ? " (warm-up)" : "")}, {next.Name}: {sample.Cpu:F0} ms CPU, {sample.Wall:F0} ms wall, {sample.Allocated / 1e6:F0} MB"));
            }
        }

        return new SizeResult(files, corpus.Lines, samples, $"{loadBefore} → {LoadAverage()}");
    }

    private static Sample Time(Func<int> run)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using Process self = Process.GetCurrentProcess();
        TimeSpan cpuBefore = self.TotalProcessorTime;
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var watch = Stopwatch.StartNew();
        run();
        double wall = watch.Elapsed.TotalMilliseconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        self.Refresh();
        return new Sample(wall, (self.TotalProcessorTime - cpuBefore).TotalMilliseconds, allocated);
    }

    /// <summary>
    /// Where the median of per-round values lies against a goal, with its distribution-free 95 % interval:
    /// "within" when the whole interval is at or below the goal, "above" when it is all above. The
    /// interquartile verdict (<see cref="Verdict"/>) asks that three rounds in four be within the goal,
    /// which is the spread of single rounds on a noisy machine; this one asks where the typical round is.
    /// </summary>
    public static string MedianVerdict(double[] values, double goal, string format)
    {
        var (low, high) = MedianInterval(values);
        string verdict = high <= goal ? "within" : low > goal ? "above" : "not shown";
        return $"{verdict} [{low.ToString(format, CultureInfo.InvariantCulture)}–{high.ToString(format, CultureInfo.InvariantCulture)}]";
    }

    /// <summary>
    /// The 95 % confidence interval of the median from order statistics: ranks k and n + 1 − k, with k the
    /// largest rank for which P(Binomial(n, ½) &lt; k) ≤ 2.5 %. Fewer than six values have none: their range.
    /// </summary>
    public static (double Low, double High) MedianInterval(double[] values)
    {
        double[] sorted = values.OrderBy(v => v).ToArray();
        int n = sorted.Length, k = 0;
        double probability = Math.Pow(0.5, n), cumulative = 0;
        for (int j = 0; j < n; j++)
        {
            cumulative += probability;
            if (cumulative > 0.025)
                break;
            k = j + 1;
            probability = probability * (n - j) / (j + 1);
        }

        return k == 0 ? (sorted[0], sorted[n - 1]) : (sorted[k - 1], sorted[n - k]);
    }

    /// <summary>Whether per-round overheads are within the 10 % goal: met only when the third quartile is.</summary>
    public static string Verdict(double[] overheads) => SpreadVerdict(Quantile(overheads, 0.25), Quantile(overheads, 0.75), Goal);

    /// <summary>Met when the whole range is within the goal, not met when all of it is above, else not shown.</summary>
    private static string SpreadVerdict(double low, double high, double goal) =>
        high <= goal ? "met" : low > goal ? "not met" : "not shown (spread)";

    /// <summary>Median (min–max).</summary>
    public static string Summary(double[] values) =>
        string.Create(CultureInfo.InvariantCulture, $"{Quantile(values, 0.5):N0} ({values.Min():N0}–{values.Max():N0})");

    /// <summary>The per-round values of f(compiler, empty analyzer, KmemGuard), in CPU time.</summary>
    private static double[] PerRound(SizeResult result, Func<double, double, double, double> f)
    {
        var (c, e, k) = (result.Samples["compiler"], result.Samples["+ empty analyzer"], result.Samples["+ KmemGuard"]);
        return Enumerable.Range(0, c.Count).Select(i => f(c[i].Cpu, e[i].Cpu, k[i].Cpu)).ToArray();
    }

    /// <summary>Median [first quartile–third quartile], and "unreliable" when that range is wider than the median's distance from zero.</summary>
    public static string Spread(double[] values, string format)
    {
        double median = Quantile(values, 0.5);
        double q1 = Quantile(values, 0.25);
        double q3 = Quantile(values, 0.75);
        string text = string.Create(CultureInfo.InvariantCulture, $"{median.ToString(format, CultureInfo.InvariantCulture)} [{q1.ToString(format, CultureInfo.InvariantCulture)}–{q3.ToString(format, CultureInfo.InvariantCulture)}]");
        return q3 - q1 > Math.Abs(median) ? text + " unreliable" : text;
    }

    private static double Quantile(double[] values, double q)
    {
        double[] sorted = values.OrderBy(v => v).ToArray();
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
    }

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
}
