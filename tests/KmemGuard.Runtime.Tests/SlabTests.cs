using System;
using System.Collections.Generic;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class SlabTests
{
    internal static Machine Boot(Checks checks = Checks.All, BugAction onBug = BugAction.Throw, int cpus = 4, long memory = 32L << 20) =>
        Machine.Boot(new MachineOptions { MemoryBytes = memory, Cpus = cpus, Checks = checks, OnBug = onBug });

    [Fact]
    public void Objects_are_distinct_aligned_and_hold_their_bytes()
    {
        using Machine m = Boot();
        kmem_cache_t c = kmem_cache_create("scullc", 4000, 0, SLAB_HWCACHE_ALIGN, null, null)!;
        var objs = new List<KPtr>();
        for (int i = 0; i < 50; i++)
        {
            KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
            Assert.False(o.IsNull);
            Assert.Equal(0UL, o.Address % 64);
            o.Write(0, i);
            o.Write(3996, -i);
            objs.Add(o);
        }
        Assert.Equal(50, objs.Select(o => o.Address).Distinct().Count());
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(i, objs[i].Read<int>(0));
            Assert.Equal(-i, objs[i].Read<int>(3996));
        }
        foreach (KPtr o in objs) kmem_cache_free(c, o);
        Assert.Equal(0, kmem_cache_destroy(c));
    }

    [Theory]
    [InlineData(4, 8u, 0)]
    [InlineData(4, 64u, 0)]
    [InlineData(4, 256u, 0)]
    [InlineData(4, 1024u, 2)]
    [InlineData(4, 4096u, 3)]
    [InlineData(1, 1024u, 1)]
    [InlineData(4, 192u, 0)]
    public void Slab_order_follows_calculate_order(int cpus, uint size, int order)
    {
        Assert.Equal(order, kmem_cache_t.CalculateOrder(size, cpus));
    }

    [Fact]
    public void Hwcache_align_halves_the_cache_line_for_small_objects()
    {
        using Machine m = Boot(Checks.None);
        Assert.Equal(64u, kmem_cache_create("a", 40, 0, SLAB_HWCACHE_ALIGN, null)!.Align);
        Assert.Equal(32u, kmem_cache_create("b", 20, 0, SLAB_HWCACHE_ALIGN, null)!.Align);
        Assert.Equal(8u, kmem_cache_create("c", 20, 0, 0, null)!.Align);
        Assert.Equal(24u, kmem_cache_create("d", 20, 0, 0, null)!.Size);
    }

    [Fact]
    public void Ldd3_constructor_runs_once_per_object_when_a_slab_is_populated_and_destructor_when_it_is_destroyed()
    {
        using Machine m = Boot(Checks.None);
        int ctors = 0, dtors = 0;
        ulong seenFlags = 0;
        kmem_cache_t c = kmem_cache_create("ctor6", 64, 0, SLAB_HWCACHE_ALIGN, (obj, cache, flags) =>
        {
            ctors++;
            seenFlags = flags;
            obj.Write(0, 0x5eed);
        }, (obj, cache, flags) => dtors++)!;
        KPtr a = kmem_cache_alloc(c, GFP_KERNEL);
        Assert.Equal(c.ObjectsPerSlab, ctors);
        Assert.Equal(SLAB_CTOR_CONSTRUCTOR, seenFlags);
        Assert.Equal(0x5eed, a.Read<int>(0));
        a.Write(0, 7);
        kmem_cache_free(c, a);
        KPtr b = kmem_cache_alloc(c, GFP_KERNEL);
        Assert.Equal(c.ObjectsPerSlab, ctors);
        kmem_cache_free(c, b);
        Assert.Equal(0, kmem_cache_destroy(c));
        Assert.Equal(c.ObjectsPerSlab, dtors);
    }

    [Fact]
    public void Constructor_of_an_atomic_allocation_gets_SLAB_CTOR_ATOMIC()
    {
        using Machine m = Boot(Checks.None);
        ulong seen = 0;
        kmem_cache_t c = kmem_cache_create("atomic", 32, 0, 0, (obj, cache, flags) => seen = flags, null)!;
        kmem_cache_free(c, kmem_cache_alloc(c, GFP_ATOMIC));
        Assert.Equal(SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_ATOMIC, seen);
    }

    [Fact]
    public void Modern_constructor_gets_the_object()
    {
        using Machine m = Boot();
        var seen = new HashSet<ulong>();
        kmem_cache_t c = kmem_cache_create("ctor5", 200, 8, SLAB_POISON | SLAB_RED_ZONE, obj => { seen.Add(obj.Address); memset(obj, 0x11, 200); })!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        Assert.Contains(o.Address, seen);
        Assert.Equal(0x11, o[199]);
        Assert.False(c.Poison);
        kmem_cache_free(c, o);
    }

    [Fact]
    public void Gfp_zero_clears_the_object()
    {
        using Machine m = Boot();
        kmem_cache_t c = kmem_cache_create("z", 100, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        memset(o, 0xff, 100);
        kmem_cache_free(c, o);
        for (int i = 0; i < 10; i++)
        {
            KPtr z = kmem_cache_zalloc(c, GFP_KERNEL);
            Assert.True(z.AsSpan(100).IndexOfAnyExcept((byte)0) < 0);
            kmem_cache_free(c, z);
        }
    }

    [Fact]
    public void Slab_cache_dma_takes_dma_pages()
    {
        using Machine m = Boot(Checks.None);
        kmem_cache_t c = kmem_cache_create("dma", 64, 0, SLAB_CACHE_DMA, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        Assert.True(KernelMemory.ToPhys(o.Address) < (16UL << 20));
        kmem_cache_free(c, o);
    }

    [Fact]
    public void Slab_pages_are_marked_and_owned()
    {
        using Machine m = Boot(Checks.None);
        kmem_cache_t c = kmem_cache_create("owned", 512, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        page head = m.Slab.HeadPageOf(o.Address)!;
        Assert.True(head.Has(PageFlags.Slab));
        Slab slab = Assert.IsType<Slab>(head.Owner);
        Assert.Same(c, slab.Cache);
        Assert.Equal(c.Order, head.Order);
        kmem_cache_free(c, o);
    }

    [Fact]
    public void Empty_slabs_go_back_to_the_page_allocator_beyond_min_partial_but_not_with_no_reap()
    {
        using Machine m = Boot(Checks.None, cpus: 1);
        long free0 = m.PageAllocator.FreePages;
        kmem_cache_t reap = kmem_cache_create("reap", 1024, 0, 0, null)!;
        kmem_cache_t keep = kmem_cache_create("noreap", 1024, 0, SLAB_NO_REAP, null)!;
        foreach (kmem_cache_t c in new[] { reap, keep })
        {
            var objs = new List<KPtr>();
            for (int i = 0; i < c.ObjectsPerSlab * 30; i++) objs.Add(kmem_cache_alloc(c, GFP_KERNEL));
            foreach (KPtr o in objs) kmem_cache_free(c, o);
            m.Slab.ShrinkAll();
        }
        Assert.Equal(0, SlabAllocator.StatsOf(reap).Slabs);
        Assert.Equal(30, SlabAllocator.StatsOf(keep).Slabs);

        var more = new List<KPtr>();
        for (int i = 0; i < reap.ObjectsPerSlab * 30; i++) more.Add(kmem_cache_alloc(reap, GFP_KERNEL));
        foreach (KPtr o in more) kmem_cache_free(reap, o);
        long kept = SlabAllocator.StatsOf(reap).Slabs;
        Assert.InRange(kept, 1, reap.MinPartial + reap.Limit); // the empties kept, and slabs pinned by objects on the CPU array
        Assert.Equal(0, kmem_cache_destroy(reap));
        Assert.Equal(0, kmem_cache_destroy(keep));
        Assert.Equal(free0, m.PageAllocator.FreePages);
    }

    [Fact]
    public void Destroy_with_live_objects_fails_and_destroys_nothing()
    {
        using Machine m = Boot(onBug: BugAction.Report);
        kmem_cache_t c = kmem_cache_create("busy", 48, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        o.Write(0, 42L);
        Assert.NotEqual(0, kmem_cache_destroy(c));
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.CacheNotEmpty, r.Kind);
        Assert.StartsWith("kmem_cache_destroy busy: Slab cache still has objects when called from", r.Text);
        Assert.Contains("BUG busy (Not tainted): Objects remaining in busy on __kmem_cache_shutdown()", r.Text);
        Assert.Contains($"INFO: Object 0x{o.Address:x16} @offset=", r.Text);
        Assert.Contains(nameof(Destroy_with_live_objects_fails_and_destroys_nothing), r.Text);
        Assert.Equal(42L, o.Read<long>(0));
        kmem_cache_free(c, o);
        Assert.Equal(0, kmem_cache_destroy(c));
        Assert.DoesNotContain(c, m.Slab.Caches());
    }

    [Fact]
    public void Using_a_destroyed_cache_is_a_clear_error()
    {
        using Machine m = Boot();
        kmem_cache_t c = kmem_cache_create("gone", 48, 0, 0, null)!;
        Assert.Equal(0, kmem_cache_destroy(c));
        var e = Assert.Throws<ObjectDisposedException>(() => kmem_cache_alloc(c, GFP_KERNEL));
        Assert.Contains("gone", e.Message);
    }

    [Fact]
    public void Bad_arguments_give_NULL_and_a_warning()
    {
        using Machine m = Boot();
        Assert.Null(kmem_cache_create("zero", 0, 0, 0, null));
        Assert.Null(kmem_cache_create(null!, 32, 0, 0, null));
        Assert.Null(kmem_cache_create("huge", (long)KMALLOC_MAX_SIZE + 1, 0, 0, null));
        Assert.Equal(3, m.Log.Count);
        Assert.NotNull(kmem_cache_create("dup", 32, 0, 0, null));
        Assert.NotNull(kmem_cache_create("dup", 32, 0, 0, null));
    }

    [Fact]
    public void Slabinfo_is_format_2_1_with_every_cache_and_true_numbers()
    {
        using Machine m = Boot(Checks.None);
        kmem_cache_t c = kmem_cache_create("scullc", 4000, 0, SLAB_HWCACHE_ALIGN, null, null)!;
        var objs = new List<KPtr>();
        for (int i = 0; i < 10; i++) objs.Add(kmem_cache_alloc(c, GFP_KERNEL));
        string info = m.Slab.RenderSlabinfo();
        string[] lines = info.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("slabinfo - version: 2.1", lines[0]);
        Assert.Equal("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>", lines[1]);
        Assert.StartsWith("scullc", lines[2]);
        foreach (string name in new[] { "kmalloc-8 ", "kmalloc-96 ", "kmalloc-192 ", "kmalloc-1k ", "kmalloc-8k ", "dma-kmalloc-64 ", "dma-kmalloc-8k " })
            Assert.Contains(lines, l => l.StartsWith(name));
        string[] f = lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var stats = SlabAllocator.StatsOf(c);
        Assert.Equal(stats.ActiveObjects.ToString(), f[1]);
        Assert.True(stats.ActiveObjects >= 10);
        Assert.Equal(10, stats.ActiveObjects - m.Slab.CpuCached(c));
        Assert.Equal("4032", f[3]);
        Assert.Equal(c.ObjectsPerSlab.ToString(), f[4]);
        Assert.Equal("8", f[5]);
        Assert.Equal(lines[2].Length, lines.First(l => l.StartsWith("kmalloc-8 ")).Length);
        foreach (KPtr o in objs) kmem_cache_free(c, o);
    }

    [Fact]
    public void Objects_come_from_the_requested_node()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 2, NumaNodes = 2, Checks = Checks.None });
        kmem_cache_t c = kmem_cache_create("numa", 256, 0, 0, null)!;
        for (int node = 0; node < 2; node++)
        {
            KPtr o = kmem_cache_alloc_node(c, GFP_KERNEL, node);
            Assert.Equal(node, m.Slab.SlabOf(o.Address)!.NodeId);
            kmem_cache_free(c, o);
        }
    }

    [Fact]
    public void Shrinker_gives_back_empty_slabs_and_the_quarantine()
    {
        using Machine m = Boot();
        long before = m.PageAllocator.FreePages;
        var objs = new List<KPtr>();
        for (int i = 0; i < 2000; i++) objs.Add(kmalloc(200, GFP_KERNEL));
        foreach (KPtr o in objs) kfree(o);
        long freed = m.Slab.ShrinkAll();
        Assert.True(freed > 0);
        Assert.True(m.PageAllocator.FreePages >= before - 16);
    }
}
