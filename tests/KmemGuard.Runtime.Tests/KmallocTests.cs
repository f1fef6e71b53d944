using System;
using System.Collections.Generic;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class KmallocTests
{
    [Theory]
    [InlineData(1, "kmalloc-8")]
    [InlineData(8, "kmalloc-8")]
    [InlineData(9, "kmalloc-16")]
    [InlineData(65, "kmalloc-96")]
    [InlineData(96, "kmalloc-96")]
    [InlineData(97, "kmalloc-128")]
    [InlineData(129, "kmalloc-192")]
    [InlineData(193, "kmalloc-256")]
    [InlineData(1000, "kmalloc-1k")]
    [InlineData(4097, "kmalloc-8k")]
    [InlineData(8192, "kmalloc-8k")]
    public void Sizes_go_to_the_kernels_size_classes(int size, string cache)
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(size, GFP_KERNEL);
        Assert.Equal(cache, m.Slab.SlabOf(p.Address)!.Cache.Name);
        Assert.Equal((nuint)KmallocCaches.SizeOf(KmallocCaches.IndexOf((ulong)size)), ksize(p));
        kfree(p);
    }

    [Fact]
    public void Power_of_two_sizes_are_naturally_aligned()
    {
        using Machine m = SlabTests.Boot();
        for (int shift = 3; shift <= 13; shift++)
        {
            KPtr p = kmalloc(1 << shift, GFP_KERNEL);
            Assert.Equal(0UL, p.Address % (1UL << shift));
            kfree(p);
        }
    }

    [Fact]
    public void Gfp_dma_uses_dma_caches_from_zone_dma()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(100, GFP_KERNEL | GFP_DMA);
        Assert.Equal("dma-kmalloc-128", m.Slab.SlabOf(p.Address)!.Cache.Name);
        Assert.True(KernelMemory.ToPhys(p.Address) < (16UL << 20));
        kfree(p);
    }

    [Fact]
    public void Zero_size_gives_ZERO_SIZE_PTR_and_kfree_ignores_it_and_NULL()
    {
        using Machine m = SlabTests.Boot();
        Assert.Equal(ZERO_SIZE_PTR, kmalloc(0, GFP_KERNEL));
        kfree(ZERO_SIZE_PTR);
        kfree(NULL);
        Assert.Empty(m.Reports);
        Assert.Equal((nuint)0, ksize(ZERO_SIZE_PTR));
    }

    [Fact]
    public void Large_blocks_come_from_the_page_allocator_and_go_back()
    {
        using Machine m = SlabTests.Boot();
        long before = m.PageAllocator.FreePages;
        KPtr p = kmalloc(20000, GFP_KERNEL);
        page head = m.Slab.HeadPageOf(p.Address)!;
        Assert.True(head.Has(PageFlags.LargeKmalloc));
        Assert.Equal(3, head.Order);
        Assert.Equal(0UL, p.Address % PAGE_SIZE);
        Assert.Equal(before - 8, m.PageAllocator.FreePages);
        Assert.Equal(8, m.Slab.UnreclaimablePages - SlabPages(m));
        p[19999] = 1;
        var e = Assert.Throws<KernelBugException>(() => p[20000] = 1);
        Assert.Equal(BugKind.OutOfBounds, e.Kind);
        Assert.Equal((nuint)(8 * PAGE_SIZE), ksize(p));
        p[20000] = 1;
        kfree(p);
        Assert.Equal(before, m.PageAllocator.FreePages);
    }

    private static long SlabPages(Machine m)
    {
        long pages = 0;
        foreach (kmem_cache_t c in m.Slab.Caches()) pages += SlabAllocator.StatsOf(c).Slabs << c.Order;
        return pages;
    }

    [Fact]
    public void Beyond_KMALLOC_MAX_SIZE_is_NULL_with_a_warning_unless_nowarn()
    {
        using Machine m = SlabTests.Boot();
        Assert.True(kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL).IsNull);
        Assert.Single(m.Log);
        Assert.True(kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL | __GFP_NOWARN).IsNull);
        Assert.True(kmalloc(-1, GFP_KERNEL | __GFP_NOWARN).IsNull);
        Assert.Single(m.Log);
        KPtr max = kmalloc(KMALLOC_MAX_SIZE, GFP_KERNEL);
        Assert.False(max.IsNull);
        kfree(max);
    }

    [Fact]
    public void Out_of_memory_is_NULL_not_an_exception()
    {
        using Machine m = SlabTests.Boot(Checks.None);
        var held = new List<KPtr>();
        KPtr p;
        while (!(p = kmalloc(KMALLOC_MAX_SIZE, GFP_KERNEL | __GFP_NOWARN)).IsNull) held.Add(p);
        while (!(p = kmalloc(4000, GFP_ATOMIC | __GFP_NOWARN)).IsNull) held.Add(p);
        Assert.True(kmalloc(4000, GFP_ATOMIC | __GFP_NOWARN).IsNull);
        foreach (KPtr q in held) kfree(q);
        Assert.False(kmalloc(4000, GFP_KERNEL).IsNull);
    }

    [Fact]
    public void Kzalloc_and_kcalloc_zero_and_kmalloc_array_overflow_is_NULL()
    {
        using Machine m = SlabTests.Boot();
        KPtr dirty = kmalloc(64, GFP_KERNEL);
        memset(dirty, 0xee, 64);
        kfree(dirty);
        KPtr z = kzalloc(64, GFP_KERNEL);
        Assert.True(z.AsSpan(64).IndexOfAnyExcept((byte)0) < 0);
        KPtr c = kcalloc(10, 8, GFP_KERNEL);
        Assert.True(c.AsSpan(80).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(kmalloc_array(ulong.MaxValue / 2, 4, GFP_KERNEL).IsNull);
        Assert.True(kcalloc(1UL << 62, 8, GFP_KERNEL).IsNull);
        KPtr a = kmalloc_array(10, 8, GFP_ATOMIC);
        Assert.Equal("kmalloc-96", m.Slab.SlabOf(a.Address)!.Cache.Name);
        kfree(z); kfree(c); kfree(a);
    }

    [Fact]
    public void Krealloc_in_place_when_it_fits_else_moves_and_copies()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(100, GFP_KERNEL);
        for (int i = 0; i < 100; i++) p[i] = (byte)i;
        KPtr same = krealloc(p, 120, GFP_KERNEL);
        Assert.Equal(p, same);
        same[119] = 7;
        KPtr moved = krealloc(same, 1000, GFP_KERNEL);
        Assert.NotEqual(p, moved);
        for (int i = 0; i < 100; i++) Assert.Equal((byte)i, moved[i]);
        Assert.Equal(7, moved[119]);
        Assert.Throws<KernelBugException>(() => p[0]);
        KPtr fresh = krealloc(NULL, 50, GFP_KERNEL);
        Assert.Equal("kmalloc-64", m.Slab.SlabOf(fresh.Address)!.Cache.Name);
        Assert.Equal(ZERO_SIZE_PTR, krealloc(fresh, 0, GFP_KERNEL));
        Assert.Throws<KernelBugException>(() => fresh[0]);
        KPtr shrunk = krealloc(moved, 10, GFP_KERNEL);
        Assert.Equal(moved, shrunk);
        Assert.Throws<KernelBugException>(() => shrunk[10]);
        kfree(shrunk);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Krealloc_failure_keeps_the_old_block()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(16, GFP_KERNEL);
        p[0] = 9;
        Assert.True(krealloc(p, KMALLOC_MAX_SIZE + 1, GFP_KERNEL | __GFP_NOWARN).IsNull);
        Assert.Equal(9, p[0]);
        kfree(p);
    }

    [Fact]
    public void Kfree_sensitive_zeroes_before_freeing()
    {
        using Machine m = SlabTests.Boot(Checks.None);
        KPtr p = kmalloc(64, GFP_KERNEL);
        memset(p, 0x5a, 64);
        kfree_sensitive(p);
        Assert.True(new KPtr(p.Address).AsSpan(64).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Kfree_through_the_physical_alias_is_the_same_block()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(32, GFP_KERNEL);
        kfree(new KPtr(KernelMemory.ToVirt(KernelMemory.ToPhys(p.Address))));
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Kmalloc_node_prefers_the_node()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 2, NumaNodes = 2 });
        for (int node = 0; node < 2; node++)
        {
            KPtr p = kmalloc_node(100, GFP_KERNEL, node);
            Assert.Equal(node, m.Slab.SlabOf(p.Address)!.NodeId);
            kfree(p);
        }
    }
}
