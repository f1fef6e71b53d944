using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;
using KmemGuard.Analyzers.Corpus;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// The compile time a real build pays: the SDK's csc compiles the corpus written to disk, on one
/// thread (<c>/parallel-</c>), in four cases that alternate round by round: no analyzers; KmemGuard
/// alone; the analyzers and generators every SDK project gets by default (the .NET analyzers with the
/// default analysis level, and the targeting pack's source generators); and those plus KmemGuard.
/// The last against the third is what adding KmemGuard to a project costs.
/// <para>
/// Cold (the default): a fresh csc process per compile, as in a CI build with
/// <c>UseSharedCompilation=false</c>: process start and the JIT of compiler and analyzers are
/// included. CPU time is the child's user + system time (getrusage).
/// </para>
/// <para>
/// <c>--server</c>: a compiler server (VBCSCompiler) kept warm across compiles, as <c>dotnet build</c>
/// uses by default; the warm-up rounds bring its code to steady state. CPU time is the server
/// process's own (from /proc), without the small client process.
/// </para>
/// <para>
/// The cases with analyzers also pass <c>/reportanalyzer</c>: the analyzer driver then reports the time
/// spent in KmemGuard's callbacks, the least noisy measure of its own cost in a real build (the
/// difference of two builds' CPU times carries the noise of both).
/// </para>
/// <para><c>--compare DLL</c> adds a fifth case, the SDK analyzers plus another KmemGuard.Analyzers
/// build, so that two builds are measured in the same rounds. With <c>--server</c> that case has a
/// server of its own: a server that is handed a second assembly of the same name shuts down.</para>
/// </summary>
internal static class CscRun
{
    private const int RusageChildren = -1;
    private const int ScClockTicks = 2;
    private const string Compiler = "compiler";
    private const string KmemGuardAlone = "+ KmemGuard";
    private const string Sdk = "+ SDK analyzers";
    private const string SdkAndKmemGuard = "+ SDK analyzers + KmemGuard";
    private const string SdkAndCompared = "+ SDK analyzers + compared build";

    public static void Run(int[] sizes, int rounds, int warmups, bool server, string? compared)
    {
        string roslyn = Path.Combine(DotnetRoot(), "sdk", SdkVersion(), "Roslyn", "bincore");
        string csc = Path.Combine(roslyn, "csc.dll");
        string analyzer = typeof(SleepInAtomicAnalyzer).Assembly.Location;
        // Every case with analyzers reports their times, so that the reporting's own cost is in all of them.
        IReadOnlyList<string> sdkAnalyzers = SdkAnalyzerArguments().Append("/reportanalyzer").ToArray();
        Console.WriteLine($"{csc}, {(server ? "a warm compiler server" : "a cold process per compile")}, {warmups} warm-up and {rounds} measured rounds, /parallel-");
        Console.WriteLine($"KmemGuard: {analyzer}" + (compared is null ? "" : $"; compared build: {compared}"));
        using CompilerServer? compilerServer = server ? CompilerServer.Start(roslyn, "kmemguard") : null;
        using CompilerServer? comparedServer = server && compared is not null ? CompilerServer.Start(roslyn, "compared") : null;
        var rows = new List<string>();
        var ownRows = new List<string>();
        foreach (int files in sizes)
        {
            string directory = Path.Combine(Path.GetTempPath(), "kmemguard-corpus-" + files);
            Directory.CreateDirectory(directory);
            GeneratedCorpus corpus = CorpusGenerator.Generate(files, seedBugs: true);
            foreach (var (path, text) in corpus.Files)
                File.WriteAllText(Path.Combine(directory, path), text);
            var cases = new List<(string Name, string Rsp, CompilerServer? Server)>
            {
                (Compiler, ResponseFile(directory, corpus, "plain", Array.Empty<string>()), compilerServer),
                (KmemGuardAlone, ResponseFile(directory, corpus, "kmemguard", new[] { "/analyzer:\"" + analyzer + "\"", "/reportanalyzer" }), compilerServer),
                (Sdk, ResponseFile(directory, corpus, "sdk", sdkAnalyzers), compilerServer),
                (SdkAndKmemGuard, ResponseFile(directory, corpus, "sdk-kmemguard", sdkAnalyzers.Append("/analyzer:\"" + analyzer + "\"").ToArray()), compilerServer),
            };
            if (compared is not null)
                cases.Add((SdkAndCompared, ResponseFile(directory, corpus, "sdk-compared", sdkAnalyzers.Append("/analyzer:\"" + compared + "\"").ToArray()), comparedServer));
            var samples = cases.ToDictionary(c => c.Name, _ => new List<Sample>());
            string loadBefore = QuickRun.LoadAverage();
            for (int round = 0; round < warmups + rounds; round++)
            {
                for (int i = 0; i < cases.Count; i++)
                {
                    var (name, rsp, caseServer) = cases[(round + i) % cases.Count];
                    var sample = caseServer is null ? CompileCold(csc, rsp) : caseServer.Compile(csc, rsp);
                    if (round >= warmups)
                        samples[name].Add(sample);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"csc {files} files, round {round + 1 - warmups}, {name}: {sample.Cpu:F0} ms CPU, {sample.Wall:F0} ms wall, KmemGuard's callbacks {sample.KmemGuard:F0} ms"));
                }
            }

            string load = loadBefore + " → " + QuickRun.LoadAverage();
            double[] Cpu(string name) => samples[name].Select(s => s.Cpu).ToArray();
            double[] Over(string measured, string baseline) =>
                Enumerable.Range(0, rounds).Select(r => (samples[measured][r].Cpu - samples[baseline][r].Cpu) / samples[baseline][r].Cpu).ToArray();
            string Row(string measured, string baseline)
            {
                double[] overhead = Over(measured, baseline);
                double[] added = Enumerable.Range(0, rounds).Select(r => samples[measured][r].Cpu - samples[baseline][r].Cpu).ToArray();
                return string.Create(CultureInfo.InvariantCulture,
                    $"| {files} | {load} | {measured} over {baseline} | {QuickRun.Summary(Cpu(baseline))} | {QuickRun.Summary(Cpu(measured))} | {QuickRun.Spread(added, "N0")} | {QuickRun.Spread(overhead, "P1")} | {QuickRun.Verdict(overhead)} | {QuickRun.MedianVerdict(overhead, QuickRun.Goal, "P1")} |");
            }

            rows.Add(Row(SdkAndKmemGuard, Sdk));
            if (compared is not null)
                rows.Add(Row(SdkAndCompared, Sdk));
            rows.Add(Row(KmemGuardAlone, Compiler));
            rows.Add(Row(Sdk, Compiler));

            // KmemGuard's callbacks in a build with the SDK analyzers, over the CPU time of the same round's build without KmemGuard.
            string OwnRow(string measured)
            {
                double[] own = samples[measured].Select(s => s.KmemGuard).ToArray();
                double[] share = Enumerable.Range(0, rounds).Select(r => samples[measured][r].KmemGuard / samples[Sdk][r].Cpu).ToArray();
                return string.Create(CultureInfo.InvariantCulture,
                    $"| {files} | {load} | {measured} | {QuickRun.Spread(own, "N0")} | {QuickRun.Summary(Cpu(Sdk))} | {QuickRun.Spread(share, "P1")} | {QuickRun.Verdict(share)} | {QuickRun.MedianVerdict(share, QuickRun.Goal, "P1")} |");
            }

            ownRows.Add(OwnRow(SdkAndKmemGuard));
            if (compared is not null)
                ownRows.Add(OwnRow(SdkAndCompared));
        }

        Console.WriteLine();
        Console.WriteLine("| files | load (1 min, start → end) | case | baseline CPU (ms): median (min–max) | case CPU (ms) | added (ms): median [IQR] | overhead: median [IQR] | ≤ 10 % (IQR) | median ≤ 10 % (its 95 % interval) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        rows.ForEach(Console.WriteLine);
        Console.WriteLine();
        Console.WriteLine("| files | load (1 min, start → end) | case | KmemGuard's callbacks (ms, /reportanalyzer): median [IQR] | SDK-analyzer build CPU (ms) | callbacks over that build: median [IQR] | ≤ 10 % (IQR) | median ≤ 10 % (its 95 % interval) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        ownRows.ForEach(Console.WriteLine);
    }

    /// <summary>One compile: wall and CPU time, and the time the driver reports for KmemGuard's callbacks (0 in the cases without it).</summary>
    private readonly record struct Sample(double Wall, double Cpu, double KmemGuard);

    /// <summary>The "KmemGuard.Analyzers, Version=..." line of /reportanalyzer's table: seconds, percentage, assembly.</summary>
    private static double KmemGuardMilliseconds(string output)
    {
        Match line = Regex.Match(output, @"^\s*<?(?<seconds>[0-9.]+)\s+\S+\s+KmemGuard\.Analyzers, Version=", RegexOptions.Multiline);
        return line.Success ? double.Parse(line.Groups["seconds"].Value, CultureInfo.InvariantCulture) * 1000.0 : 0;
    }

    private static string DotnetRoot() =>
        Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    private static string SdkVersion()
    {
        var info = new ProcessStartInfo("dotnet", "--version") { RedirectStandardOutput = true };
        using Process process = Process.Start(info)!;
        string version = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return version;
    }

    /// <summary>
    /// What <c>dotnet build</c> passes to csc for a net10.0 project with default settings: the SDK's
    /// .NET analyzers with the default analysis level's configuration, and the source generators of
    /// the targeting pack (seen in a <c>-v:detailed</c> build of <c>dotnet new classlib</c>).
    /// </summary>
    private static IReadOnlyList<string> SdkAnalyzerArguments()
    {
        string root = DotnetRoot();
        string sdkAnalyzers = Path.Combine(root, "sdk", SdkVersion(), "Sdks", "Microsoft.NET.Sdk", "analyzers");
        string runtimeVersion = RuntimeInformation.FrameworkDescription.Split(' ').Last();
        string packAnalyzers = Path.Combine(root, "packs", "Microsoft.NETCore.App.Ref", runtimeVersion, "analyzers", "dotnet", "cs");
        string config = Path.Combine(sdkAnalyzers, "build", "config", $"analysislevel_{Environment.Version.Major}_default.globalconfig");
        var paths = new[]
        {
            Path.Combine(sdkAnalyzers, "Microsoft.CodeAnalysis.NetAnalyzers.dll"),
            Path.Combine(sdkAnalyzers, "Microsoft.CodeAnalysis.CSharp.NetAnalyzers.dll"),
            config,
        };
        string? missing = paths.FirstOrDefault(p => !File.Exists(p)) ?? (Directory.Exists(packAnalyzers) ? null : packAnalyzers);
        if (missing is not null)
            throw new InvalidOperationException("The SDK's default analyzers were not found where expected: " + missing);
        return Directory.GetFiles(packAnalyzers, "*.dll").OrderBy(p => p, StringComparer.Ordinal)
            .Concat(paths.Take(2))
            .Select(p => "/analyzer:\"" + p + "\"")
            .Append("/analyzerconfig:\"" + config + "\"")
            .ToArray();
    }

    private static string ResponseFile(string directory, GeneratedCorpus corpus, string name, IReadOnlyList<string> analyzerArguments)
    {
        var lines = new List<string> { "/noconfig", "/nostdlib+", "/nologo", "/target:library", "/nullable:enable", "/langversion:latest", "/parallel-", "/deterministic+",
            "/out:" + Path.Combine(directory, name + ".dll") };
        lines.AddRange(CorpusCompilation.ReferencePaths().Select(r => "/reference:\"" + r + "\""));
        lines.AddRange(analyzerArguments);
        lines.AddRange(corpus.Files.Select(f => "\"" + Path.Combine(directory, f.Path) + "\""));
        string rsp = Path.Combine(directory, name + ".rsp");
        File.WriteAllLines(rsp, lines);
        return rsp;
    }

    private static Sample CompileCold(string csc, string rsp)
    {
        double cpuBefore = ChildrenCpuMilliseconds();
        var watch = Stopwatch.StartNew();
        string output = RunClient(csc, rsp, null);
        return new Sample(watch.Elapsed.TotalMilliseconds, ChildrenCpuMilliseconds() - cpuBefore, KmemGuardMilliseconds(output));
    }

    private static string RunClient(string csc, string rsp, string? pipe)
    {
        string shared = pipe is null ? "" : $"/shared:{pipe} ";
        var info = new ProcessStartInfo("dotnet", $"\"{csc}\" {shared}@\"{rsp}\"") { RedirectStandardOutput = true };
        using Process process = Process.Start(info)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException("csc failed: " + output);
        return output;
    }

    private static double ChildrenCpuMilliseconds()
    {
        if (getrusage(RusageChildren, out Rusage usage) != 0)
            throw new InvalidOperationException("getrusage failed");
        return (usage.UserSeconds + usage.SystemSeconds) * 1000.0 + (usage.UserMicroseconds + usage.SystemMicroseconds) / 1000.0;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int getrusage(int who, out Rusage usage);

    [DllImport("libc", SetLastError = true)]
    private static extern long sysconf(int name);

    /// <summary>struct rusage on 64-bit Linux: two timevals, then 14 longs this does not read.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 144)]
    private struct Rusage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
    }

    /// <summary>A VBCSCompiler process of our own, on a pipe name nobody else uses.</summary>
    private sealed class CompilerServer : IDisposable
    {
        private readonly Process process;
        private readonly string pipe;
        private readonly double millisecondsPerTick = 1000.0 / sysconf(ScClockTicks);

        private CompilerServer(Process process, string pipe)
        {
            this.process = process;
            this.pipe = pipe;
        }

        public static CompilerServer Start(string roslyn, string name)
        {
            string pipe = "kmemguard-bench-" + name + "-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            var info = new ProcessStartInfo("dotnet", $"\"{Path.Combine(roslyn, "VBCSCompiler.dll")}\" -pipename:{pipe}");
            var server = new CompilerServer(Process.Start(info)!, pipe);
            // A client that finds no server starts one of its own, and ours would then not be the one
            // measured: wait until ours listens (on Unix the server's pipe is a socket file of this name).
            string socket = Path.Combine(Path.GetTempPath(), pipe);
            var waited = Stopwatch.StartNew();
            while (!File.Exists(socket))
            {
                if (server.process.HasExited || waited.Elapsed > TimeSpan.FromSeconds(60))
                    throw new InvalidOperationException("The compiler server did not start listening on " + socket);
                Thread.Sleep(50);
            }

            return server;
        }

        public Sample Compile(string csc, string rsp)
        {
            double before = CpuMilliseconds();
            var watch = Stopwatch.StartNew();
            string output = RunClient(csc, rsp, pipe);
            double wall = watch.Elapsed.TotalMilliseconds;
            double cpu = CpuMilliseconds() - before;
            // A client that cannot reach the server compiles in its own process: that compile was not measured.
            if (process.HasExited || cpu == 0)
                throw new InvalidOperationException("The compile did not run in the compiler server");
            return new Sample(wall, cpu, KmemGuardMilliseconds(output));
        }

        /// <summary>utime + stime of the server process: fields 14 and 15 of /proc/PID/stat, after the parenthesized name.</summary>
        private double CpuMilliseconds()
        {
            string stat = File.ReadAllText($"/proc/{process.Id}/stat");
            string[] fields = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ');
            // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) * millisecondsPerTick;
        }

        public void Dispose()
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
            process.Dispose();
        }
    }
}
