using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using KmemGuard.Analyzers.Corpus;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// The compile time a command-line build pays: the SDK's csc compiles the corpus written to disk, with
/// and without <c>/analyzer:KmemGuard.Analyzers.dll</c>, on one thread (<c>/parallel-</c>), the two
/// cases alternating. In a build the analyzers use the compiler's own binding and events, so this is
/// the figure the 10 % goal is about; the in-process <see cref="QuickRun"/> drives the analyzers
/// through CompilationWithAnalyzers, which compiles once more. CPU time is the child processes' user +
/// system time (getrusage), including process start and the JIT of the analyzers.
/// </summary>
internal static class CscRun
{
    private const int RusageChildren = -1;

    public static void Run(int[] sizes, int rounds, int warmups)
    {
        string csc = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(RuntimeEnvironment.GetRuntimeDirectory().TrimEnd('/'))!)!,
            "..", "sdk", SdkVersion(), "Roslyn", "bincore", "csc.dll");
        csc = Path.GetFullPath(csc);
        string analyzer = typeof(SleepInAtomicAnalyzer).Assembly.Location;
        Console.WriteLine($"{csc}, {warmups} warm-up and {rounds} measured rounds, /parallel-");
        var rows = new List<string>();
        foreach (int files in sizes)
        {
            string directory = Path.Combine(Path.GetTempPath(), "kmemguard-corpus-" + files);
            Directory.CreateDirectory(directory);
            GeneratedCorpus corpus = CorpusGenerator.Generate(files, seedBugs: true);
            foreach (var (path, text) in corpus.Files)
                File.WriteAllText(Path.Combine(directory, path), text);
            string plain = ResponseFile(directory, corpus, null);
            string analyzed = ResponseFile(directory, corpus, analyzer);
            var cases = new[] { ("compiler", plain), ("+ KmemGuard", analyzed) };
            var samples = cases.ToDictionary(c => c.Item1, _ => new List<(double Wall, double Cpu)>());
            string loadBefore = QuickRun.LoadAverage();
            for (int round = 0; round < warmups + rounds; round++)
            {
                for (int i = 0; i < cases.Length; i++)
                {
                    var (name, rsp) = cases[(round + i) % cases.Length];
                    var sample = Compile(csc, rsp);
                    if (round >= warmups)
                        samples[name].Add(sample);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"csc {files} files, round {round + 1 - warmups}, {name}: {sample.Cpu:F0} ms CPU, {sample.Wall:F0} ms wall"));
                }
            }

            var c = samples["compiler"];
            var k = samples["+ KmemGuard"];
            double[] overhead = Enumerable.Range(0, c.Count).Select(r => (k[r].Cpu - c[r].Cpu) / c[r].Cpu).ToArray();
            double[] own = Enumerable.Range(0, c.Count).Select(r => k[r].Cpu - c[r].Cpu).ToArray();
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {files} | {corpus.Lines:N0} | {loadBefore} → {QuickRun.LoadAverage()} | {QuickRun.Summary(c.Select(s => s.Cpu).ToArray())} | {QuickRun.Summary(k.Select(s => s.Cpu).ToArray())} "
                + $"| {QuickRun.Spread(own, "N0")} | {QuickRun.Spread(overhead, "P1")} | {QuickRun.Verdict(overhead)} |"));
        }

        Console.WriteLine();
        Console.WriteLine("| files | lines | load (1 min, start → end) | csc CPU (ms): median (min–max) | csc + KmemGuard CPU (ms) | analyzers' time (ms) | KmemGuard over compiler | ≤ 10 % |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        rows.ForEach(Console.WriteLine);
    }

    private static string SdkVersion()
    {
        var info = new ProcessStartInfo("dotnet", "--version") { RedirectStandardOutput = true };
        using Process process = Process.Start(info)!;
        string version = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return version;
    }

    private static string ResponseFile(string directory, GeneratedCorpus corpus, string? analyzer)
    {
        var lines = new List<string> { "/noconfig", "/nostdlib+", "/nologo", "/target:library", "/nullable:enable", "/langversion:latest", "/parallel-", "/deterministic+",
            "/out:" + Path.Combine(directory, analyzer is null ? "plain.dll" : "analyzed.dll") };
        lines.AddRange(CorpusCompilation.ReferencePaths().Select(r => "/reference:\"" + r + "\""));
        if (analyzer is not null)
            lines.Add("/analyzer:\"" + analyzer + "\"");
        lines.AddRange(corpus.Files.Select(f => "\"" + Path.Combine(directory, f.Path) + "\""));
        string rsp = Path.Combine(directory, analyzer is null ? "plain.rsp" : "analyzed.rsp");
        File.WriteAllLines(rsp, lines);
        return rsp;
    }

    private static (double Wall, double Cpu) Compile(string csc, string rsp)
    {
        double cpuBefore = ChildrenCpuMilliseconds();
        var watch = Stopwatch.StartNew();
        var info = new ProcessStartInfo("dotnet", $"\"{csc}\" @\"{rsp}\"") { RedirectStandardOutput = true };
        using Process process = Process.Start(info)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        double wall = watch.Elapsed.TotalMilliseconds;
        if (process.ExitCode != 0)
            throw new InvalidOperationException("csc failed: " + output);
        return (wall, ChildrenCpuMilliseconds() - cpuBefore);
    }

    private static double ChildrenCpuMilliseconds()
    {
        if (getrusage(RusageChildren, out Rusage usage) != 0)
            throw new InvalidOperationException("getrusage failed");
        return (usage.UserSeconds + usage.SystemSeconds) * 1000.0 + (usage.UserMicroseconds + usage.SystemMicroseconds) / 1000.0;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int getrusage(int who, out Rusage usage);

    /// <summary>struct rusage on 64-bit Linux: two timevals, then 14 longs this does not read.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 144)]
    private struct Rusage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
    }
}
