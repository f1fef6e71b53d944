using BenchmarkDotNet.Attributes;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>
/// Issue 3's bar as one ratio column: kmalloc/kfree of 64 bytes on a machine with every check
/// on, against the same pair on a machine with every check off (the baseline). Both machines are
/// booted alike, brought to their steady state in setup, and live side by side; each invocation
/// makes its own one current.
/// </summary>
public class CheckedKmallocBenchmarks
{
    private const int Pairs = MachineBenchmark.Pairs;

    private Machine _unchecked = null!, _checked = null!;

    [GlobalSetup]
    public void Setup()
    {
        _unchecked = MachineBenchmark.BootBenchmarkMachine(Checks.None);
        _checked = MachineBenchmark.BootBenchmarkMachine(Checks.All);
        MachineBenchmark.RunToSteadyState(_unchecked);
        MachineBenchmark.RunToSteadyState(_checked);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void kmalloc_kfree_64_checks_none() => Pairs64(_unchecked);

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void kmalloc_kfree_64_checks_all() => Pairs64(_checked);

    private static void Pairs64(Machine machine)
    {
        machine.MakeCurrent();
        for (int i = 0; i < Pairs; i++) kfree(kmalloc(64, GFP_KERNEL));
    }

    [GlobalCleanup]
    public void ShutDown()
    {
        _unchecked.Dispose();
        _checked.Dispose();
    }
}
