using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using static KmemGuard.Kernel;

namespace KmemGuard.Benchmarks;

/// <summary>
/// kmem_cache_alloc/kmem_cache_free from a 64-byte cache against NativeMemory of 64 bytes (the
/// baseline) and a raw managed freelist of preallocated native blocks (the floor a slab's fast
/// path can approach). The bar: the cache pair at most half the NativeMemory pair.
/// </summary>
public unsafe class SlabCacheBenchmarks : MachineBenchmark
{
    private const int ObjectSize = 64;

    private kmem_cache_t _cache = null!;
    private readonly void*[] _freelist = new void*[Pairs];
    private int _free;

    [GlobalSetup]
    public void Setup()
    {
        BootMachine(Checks.None);
        _cache = kmem_cache_create("bench64", ObjectSize, 0, 0, null) ?? throw new System.InvalidOperationException("kmem_cache_create failed");
        for (_free = 0; _free < _freelist.Length; _free++) _freelist[_free] = NativeMemory.Alloc(ObjectSize);
    }

    protected override void TearDown()
    {
        kmem_cache_destroy(_cache);
        while (_free > 0) NativeMemory.Free(_freelist[--_free]);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void NativeMemory_64()
    {
        for (int i = 0; i < Pairs; i++) NativeMemory.Free(NativeMemory.Alloc(ObjectSize));
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void Freelist_64()
    {
        for (int i = 0; i < Pairs; i++)
        {
            void* block = _freelist[--_free];
            _freelist[_free++] = block;
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void kmem_cache_alloc_free_64()
    {
        EnterMachine();
        for (int i = 0; i < Pairs; i++) kmem_cache_free(_cache, kmem_cache_alloc(_cache, GFP_KERNEL));
    }
}
