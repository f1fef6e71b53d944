using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>
/// What the check code costs while every check is off: the same pairs at Checks.None in two
/// builds of the Runtime, one with the check code (the baseline job) and one built with
/// -p:KmemGuardNoChecks=true, where every check gate is a constant false. BenchmarkDotNet builds
/// each job's project separately, and the MSBuild property reaches the referenced Runtime. The
/// bar: the ratio of the no-check-code job is at least 1/1.10 (the check code costs at most 10%).
/// </summary>
[Config(typeof(Config))]
public class ChecksOffOverheadBenchmarks : MachineBenchmark
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            // The short job's counts, so that the class runs in a minute or two like the others.
            Job fast = Job.ShortRun.WithWarmupCount(3).WithIterationCount(5);
            AddJob(fast.WithId("check-code-in").AsBaseline());
            AddJob(fast.WithArguments(new[] { new MsBuildArgument("/p:KmemGuardNoChecks=true") }).WithId("no-check-code"));
            // The two builds share the benchmark project's obj folder: one after the other.
            WithOption(ConfigOptions.DisableParallelBuild, true);
        }
    }

    private kmem_cache_t _cache = null!;

    [GlobalSetup]
    public void Setup()
    {
        BootMachine(Checks.None);
        _cache = kmem_cache_create("bench64", 64, 0, 0, null) ?? throw new System.InvalidOperationException("kmem_cache_create failed");
    }

    protected override void TearDown() => kmem_cache_destroy(_cache);

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void kmalloc_kfree_64()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) kfree(kmalloc(64, GFP_KERNEL));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void kmem_cache_alloc_free_64()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) kmem_cache_free(_cache, kmem_cache_alloc(_cache, GFP_KERNEL));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void alloc_pages_order0()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) __free_pages(alloc_pages(GFP_KERNEL, 0)!, 0);
    }
}
