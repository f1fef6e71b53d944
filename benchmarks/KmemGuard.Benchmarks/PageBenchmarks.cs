using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>An order-0 and an order-3 page pair (alloc_pages/__free_pages), each against NativeMemory of the same bytes.</summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class PageBenchmarks : MachineBenchmark
{
    private const int Order3Bytes = 4096 << 3;

    [GlobalSetup]
    public void Setup() => BootMachine(Checks.None);

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    [BenchmarkCategory("order-0")]
    public unsafe void NativeMemory_4K()
    {
        for (int i = 0; i < Pairs; i++) NativeMemory.Free(NativeMemory.Alloc(4096));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    [BenchmarkCategory("order-0")]
    public void alloc_pages_order0()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) __free_pages(alloc_pages(GFP_KERNEL, 0)!, 0);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    [BenchmarkCategory("order-3")]
    public unsafe void NativeMemory_32K()
    {
        for (int i = 0; i < Pairs; i++) NativeMemory.Free(NativeMemory.Alloc(Order3Bytes));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    [BenchmarkCategory("order-3")]
    public void alloc_pages_order3()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) __free_pages(alloc_pages(GFP_KERNEL, 3)!, 3);
    }
}
