using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.Loader;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>
/// Issue 3's 10% bar measured so that load from other processes cancels out: the Runtime with
/// the check code and a Runtime built without it (-p:KmemGuardNoChecks=true) are loaded side by
/// side in two AssemblyLoadContexts, and rounds of the same pairs alternate between them. The
/// ratio is taken per round (no-check-code time / check-code time), so a burst of load hits both
/// halves of a round alike. BenchmarkDotNet's jobs run one after the other, minutes apart, which
/// on a shared machine moves that ratio by more than the 10% it is meant to show.
/// </summary>
public static class InterleavedChecksOff
{
    private const int PairsPerRound = 200_000;

    public static void Run(string noChecksDirectory, int rounds)
    {
        string benchmarks = typeof(InterleavedChecksOff).Assembly.Location;
        string withChecks = Path.Combine(Path.GetDirectoryName(benchmarks)!, "KmemGuard.Runtime.dll");
        string withoutChecks = Path.Combine(noChecksDirectory, "KmemGuard.Runtime.dll");
        if (!File.Exists(withoutChecks))
            throw new FileNotFoundException($"No Runtime built without the check code at {withoutChecks}: build it with " +
                $"dotnet build Runtime -c Release -p:KmemGuardNoChecks=true -o {noChecksDirectory}");
        var checkCode = new Side(benchmarks, withChecks, expectChecksCompiledIn: true);
        var noCheckCode = new Side(benchmarks, withoutChecks, expectChecksCompiledIn: false);

        foreach (string pair in PairLoops.Names)
        {
            Func<int, double> a = checkCode.Loop(pair), b = noCheckCode.Loop(pair);
            a(PairsPerRound);
            b(PairsPerRound);
            var ratios = new List<double>();
            for (int round = 0; round < rounds; round++)
            {
                // Alternate which side goes first, so that neither always follows the other.
                double withNs, withoutNs;
                if (round % 2 == 0) { withNs = a(PairsPerRound); withoutNs = b(PairsPerRound); }
                else { withoutNs = b(PairsPerRound); withNs = a(PairsPerRound); }
                ratios.Add(withoutNs / withNs);
            }
            ratios.Sort();
            Console.WriteLine($"{pair,-24} no-check-code / check-code: median {ratios[rounds / 2]:F3}, quartiles {ratios[rounds / 4]:F3} to {ratios[3 * rounds / 4]:F3} over {rounds} rounds of {PairsPerRound} pairs (bar: >= {1 / 1.10:F3})");
        }
    }

    /// <summary>The benchmarks assembly loaded once more, bound to one build of the Runtime.</summary>
    private sealed class Side : AssemblyLoadContext
    {
        private readonly string _benchmarks, _runtime;
        private readonly Type _loops;

        public Side(string benchmarks, string runtime, bool expectChecksCompiledIn) : base(runtime)
        {
            _benchmarks = benchmarks;
            _runtime = runtime;
            Assembly loaded = LoadFromAssemblyPath(benchmarks);
            _loops = loaded.GetType(typeof(PairLoops).FullName!, throwOnError: true)!;
            Assembly kernel = LoadFromAssemblyName(new AssemblyName("KmemGuard.Runtime"));
            bool compiledIn = (bool)kernel.GetType("KmemGuard.Machine", throwOnError: true)!
                .GetField("ChecksCompiledIn", BindingFlags.NonPublic | BindingFlags.Static)!.GetRawConstantValue()!;
            if (compiledIn != expectChecksCompiledIn)
                throw new InvalidOperationException($"{runtime}: ChecksCompiledIn is {compiledIn}, expected {expectChecksCompiledIn}.");
        }

        public Func<int, double> Loop(string name) => _loops.GetMethod(name)!.CreateDelegate<Func<int, double>>();

        protected override Assembly? Load(AssemblyName name) => name.Name switch
        {
            "KmemGuard.Runtime" => LoadFromAssemblyPath(_runtime),
            "KmemGuard.Benchmarks" => LoadFromAssemblyPath(_benchmarks),
            _ => null,
        };
    }
}

/// <summary>The measured loops, one copy per load context: each returns nanoseconds per pair.</summary>
public static class PairLoops
{
    public static readonly string[] Names = { nameof(kmalloc_kfree_64), nameof(kmem_cache_alloc_free_64), nameof(alloc_pages_order0) };

    private static Machine? s_machine;
    private static kmem_cache_t? s_cache;

    private static Machine Enter()
    {
        s_machine ??= MachineBenchmark.BootBenchmarkMachine(Checks.None);
        s_machine.MakeCurrent();
        return s_machine;
    }

    public static double kmalloc_kfree_64(int pairs)
    {
        Enter();
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < pairs; i++) kfree(kmalloc(64, GFP_KERNEL));
        return PerPair(start, pairs);
    }

    public static double kmem_cache_alloc_free_64(int pairs)
    {
        Enter();
        kmem_cache_t cache = s_cache ??= kmem_cache_create("bench64", 64, 0, 0, null)!;
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < pairs; i++) kmem_cache_free(cache, kmem_cache_alloc(cache, GFP_KERNEL));
        return PerPair(start, pairs);
    }

    public static double alloc_pages_order0(int pairs)
    {
        Enter();
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < pairs; i++) __free_pages(alloc_pages(GFP_KERNEL, 0)!, 0);
        return PerPair(start, pairs);
    }

    private static double PerPair(long start, int pairs) => Stopwatch.GetElapsedTime(start).TotalNanoseconds / pairs;
}
