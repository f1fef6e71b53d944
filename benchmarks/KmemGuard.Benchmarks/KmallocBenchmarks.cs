using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>
/// kmalloc/kfree of 64 bytes against NativeMemory.Alloc/Free of 64 bytes, with every check off
/// and on. Issue 3's bar (All over None) has its own ratio column in <see cref="CheckedKmallocBenchmarks"/>.
/// </summary>
public class KmallocBenchmarks : MachineBenchmark
{
    [Params(Checks.None, Checks.All)]
    public Checks Checks { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        BootMachine(Checks);
        RunToSteadyState(Machine);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public unsafe void NativeMemory_64()
    {
        for (int i = 0; i < Pairs; i++) NativeMemory.Free(NativeMemory.Alloc(64));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void kmalloc_kfree_64()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) kfree(kmalloc(64, GFP_KERNEL));
    }
}
