using System;
using System.Globalization;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Running;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project benchmarks/KmemGuard.Analyzers.Benchmarks -- quick</c> prints the
/// figures for docs/analyzer-performance.md (see <see cref="QuickRun"/>), <c>-- csc</c> those of a command-line
/// build (see <see cref="CscRun"/>), <c>-- telemetry</c> the analyzers' own execution time;
/// <c>-- diagnostics [files]</c> prints every diagnostic; <c>-- allocations [files]</c> what KmemGuard allocates, by type; <c>-- corpus DIR [files]</c> writes the corpus out;
/// anything else runs BenchmarkDotNet.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] is "quick" or "csc" or "telemetry")
            Quick(args[0], args.Skip(1).ToArray());
        else if (args.Length > 1 && args[0] == "diagnostics")
            PrintDiagnostics(int.Parse(args[1], CultureInfo.InvariantCulture));
        else if (args.Length > 0 && args[0] == "allocations")
            AllocationProfile.Run(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200);
        else if (args.Length > 1 && args[0] == "corpus")
            WriteCorpus(args[1], args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 200);
        else
            BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }

    /// <summary>
    /// <c>quick|csc|telemetry [--rounds N] [--warmups N] [files ...]</c>: 7 measured rounds after 3 warm-up
    /// rounds, 200 files, unless told otherwise; <c>csc</c> also takes <c>--server</c> and <c>--compare DLL</c>
    /// (see <see cref="CscRun"/>), <c>telemetry</c> <c>--compare DLL</c> (see <see cref="ComparedBuild"/>).
    /// </summary>
    private static void Quick(string mode, string[] args)
    {
        int rounds = 7, warmups = 3;
        bool server = false;
        string? compared = null;
        var sizes = new System.Collections.Generic.List<int>();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--warmups":
                    warmups = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--server" when mode == "csc":
                    server = true;
                    break;
                case "--compare" when mode is "csc" or "telemetry":
                    compared = Path.GetFullPath(args[++i]);
                    if (!File.Exists(compared))
                        throw new FileNotFoundException("No analyzer assembly to compare at " + compared);
                    // The compiler's analyzer loader finds an assembly by its name in its directory.
                    if (Path.GetFileName(compared) != Path.GetFileName(typeof(SleepInAtomicAnalyzer).Assembly.Location))
                        throw new ArgumentException("The compared build must keep its file name, KmemGuard.Analyzers.dll (copy it to a directory of its own): " + compared);
                    break;
                default:
                    sizes.Add(int.Parse(args[i], CultureInfo.InvariantCulture));
                    break;
            }
        }

        int[] files = sizes.DefaultIfEmpty(200).ToArray();
        if (mode == "csc")
            CscRun.Run(files, rounds, warmups, server, compared);
        else if (mode == "telemetry")
            QuickRun.Telemetry(files, rounds, warmups, compared);
        else
            QuickRun.Run(files, rounds, warmups);
    }

    /// <summary>Every KmemGuard diagnostic on the corpus, sorted, with its message, additional locations and properties: diff two builds' output to check that an optimisation changed nothing.</summary>
    private static void PrintDiagnostics(int files)
    {
        var compilation = new CorpusCompilation(CorpusGenerator.Generate(files, seedBugs: true)).Fresh();
        var diagnostics = compilation.WithAnalyzers(CorpusCompilation.Analyzers).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
        foreach (string line in diagnostics.Select(d => string.Join(" | ", new[] { d.Id, d.Location.GetLineSpan().ToString(), d.GetMessage(CultureInfo.InvariantCulture) }
                .Concat(d.AdditionalLocations.Select(l => l.GetLineSpan().ToString()))
                .Concat(d.Properties.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value))))
            .OrderBy(l => l, StringComparer.Ordinal))
        {
            Console.WriteLine(line);
        }
    }

    private static void WriteCorpus(string directory, int files)
    {
        Directory.CreateDirectory(directory);
        GeneratedCorpus corpus = CorpusGenerator.Generate(files, seedBugs: true);
        foreach (var (path, text) in corpus.Files)
            File.WriteAllText(Path.Combine(directory, path), text);
        Console.WriteLine($"{corpus.Files.Count} files, {corpus.Lines} lines in {directory}");
    }
}
