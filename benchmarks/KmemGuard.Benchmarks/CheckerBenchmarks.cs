using BenchmarkDotNet.Attributes;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>
/// What the checker's hooks cost the allocators: kmemleak's Track/Untrack pair (paid by every
/// vmalloc, large kmalloc and driver-registered block while Checks.Kmemleak is on; slab objects
/// keep their kmemleak state in the slab instead), the disarmed fault-injection checks (paid by
/// every allocation, always), and one kmemleak scan of a 1024-block chain.
/// </summary>
public class CheckerBenchmarks : MachineBenchmark
{
    private const int ChainLength = 1024;
    private const int BlockSize = 64;

    private ulong _blocks;
    private Track _track = null!;
    private KPtr _chainHead;
    private int _failures;

    [GlobalSetup]
    public void Setup()
    {
        BootMachine(Checks.All);
        Machine m = Machine;
        // Order 4: 64 KiB, room for the chain's 1024 blocks of 64 bytes.
        page frame = m.PageAllocator.Alloc(GFP_KERNEL | __GFP_ZERO, 4, -1, default)!;
        _blocks = PageAllocator.PageVirt(frame);
        _track = new Track(m.CurrentTask, new CallSite(nameof(Setup), "CheckerBenchmarks.cs", 1), m.Jiffies);
        _chainHead = new KPtr(_blocks + (ulong)(ChainLength * BlockSize) / 2);
        for (int i = 0; i < ChainLength; i++)
        {
            // Each block points at the next, starting from the middle so the chain is not in address order.
            ulong block = _blocks + (ulong)((i + ChainLength / 2) % ChainLength * BlockSize);
            ulong next = _blocks + (ulong)((i + 1 + ChainLength / 2) % ChainLength * BlockSize);
            m.Kmemleak.Track(block, BlockSize, MemoryFamily.Kmalloc, "kmalloc-64", _track);
            if (i < ChainLength - 1) new KPtr(block).Write(0, next);
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void kmemleak_track_untrack()
    {
        Kmemleak leaks = Machine.Kmemleak;
        ulong start = _blocks + (1UL << 20); // away from the chain's blocks
        for (int i = 0; i < Pairs; i++)
        {
            ulong block = start + (ulong)(i * BlockSize);
            leaks.Track(block, BlockSize, MemoryFamily.Kmalloc, "kmalloc-64", _track);
            leaks.Untrack(block);
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public int should_fail_disarmed()
    {
        Machine m = Machine;
        for (int i = 0; i < Pairs; i++)
        {
            if (m.ShouldFailSlab(GFP_KERNEL, BlockSize)) _failures++;
            if (m.ShouldFailPage(GFP_KERNEL, 0)) _failures++;
        }
        return _failures;
    }

    [Benchmark]
    public int kmemleak_scan_1024_block_chain()
    {
        EnterMachine();
        return Machine.ScanLeaks(_chainHead).Count;
    }
}
