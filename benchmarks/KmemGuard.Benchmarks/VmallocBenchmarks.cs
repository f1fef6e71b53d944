using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>vmalloc/vfree of 4 pages against NativeMemory of 16 KiB.</summary>
public class VmallocBenchmarks : MachineBenchmark
{
    private const int Bytes = 4 * 4096;

    [GlobalSetup]
    public void Setup() => BootMachine(Checks.None);

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public unsafe void NativeMemory_16K()
    {
        for (int i = 0; i < Pairs; i++) NativeMemory.Free(NativeMemory.Alloc(Bytes));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void vmalloc_vfree_4_pages()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) vfree(vmalloc(Bytes));
    }
}
