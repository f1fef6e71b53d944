using System;
using System.Collections.Generic;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class MempoolTests
{
    [Fact]
    public void Create_preallocates_min_nr_and_destroy_gives_them_back()
    {
        using Machine m = SlabTests.Boot();
        kmem_cache_t c = kmem_cache_create("pool", 123, 0, 0, null)!;
        mempool_t pool = mempool_create(4, mempool_alloc_slab, mempool_free_slab, c)!;
        Assert.Equal(4, pool.CurrNr);
        Assert.Equal(4, SlabAllocator.StatsOf(c).ActiveObjects - m.Slab.CpuCached(c) - m.Slab.Quarantine!.Count(c));
        mempool_destroy(pool);
        Assert.Equal(0, SlabAllocator.StatsOf(c).ActiveObjects - m.Slab.CpuCached(c) - m.Slab.Quarantine!.Count(c));
        Assert.Equal(0, kmem_cache_destroy(c));
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Create_fails_with_NULL_when_the_backing_allocator_fails()
    {
        using Machine m = SlabTests.Boot();
        int allocated = 0, freed = 0;
        mempool_t? pool = mempool_create(5, (gfp, data) => ++allocated < 3 ? kmalloc(32, gfp) : NULL, (e, data) => { freed++; kfree(e); }, null);
        Assert.Null(pool);
        Assert.Equal(2, freed);
    }

    [Fact]
    public void Alloc_uses_the_backing_allocator_first_then_the_reserve_and_free_refills_the_reserve_first()
    {
        using Machine m = SlabTests.Boot();
        bool backingWorks = true;
        var masks = new List<gfp_t>();
        mempool_t pool = mempool_create(2, (gfp, data) => { masks.Add(gfp); return backingWorks ? kmalloc(64, gfp) : NULL; }, (e, data) => kfree(e), null)!;
        masks.Clear();
        KPtr a = mempool_alloc(pool, GFP_KERNEL);
        Assert.Equal(2, pool.CurrNr);
        Assert.Equal(GFP_KERNEL & ~(__GFP_DIRECT_RECLAIM | __GFP_IO) | __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN, masks[0]);
        backingWorks = false;
        KPtr b = mempool_alloc(pool, GFP_ATOMIC);
        KPtr c = mempool_alloc(pool, GFP_ATOMIC);
        Assert.Equal(0, pool.CurrNr);
        Assert.True(mempool_alloc(pool, GFP_ATOMIC).IsNull);
        mempool_free(a, pool);
        Assert.Equal(1, pool.CurrNr);
        mempool_free(b, pool);
        mempool_free(c, pool);
        Assert.Equal(2, pool.CurrNr);
        mempool_free(NULL, pool);
        mempool_destroy(pool);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void A_sleeping_alloc_waits_for_a_free_when_everything_is_exhausted()
    {
        using Machine m = SlabTests.Boot();
        bool backing = true;
        mempool_t pool = mempool_create(1, (gfp, data) => backing ? kmalloc(16, gfp) : NULL, (e, data) => kfree(e), null)!;
        backing = false;
        KPtr held = mempool_alloc(pool, GFP_KERNEL);
        Assert.False(held.IsNull);
        KPtr got = NULL;
        var waiter = new Thread(() => { m.MakeCurrent(); got = mempool_alloc(pool, GFP_NOIO); });
        waiter.Start();
        Thread.Sleep(100);
        Assert.True(waiter.IsAlive);
        mempool_free(held, pool);
        Assert.True(waiter.Join(5000));
        Assert.Equal(held, got);
        mempool_free(got, pool);
        mempool_destroy(pool);
    }

    [Fact]
    public void Helper_pools_allocate_from_their_allocators()
    {
        using Machine m = SlabTests.Boot();
        mempool_t k = mempool_create_kmalloc_pool(4, 115)!;
        KPtr e = mempool_alloc(k, GFP_KERNEL);
        Assert.Equal("kmalloc-128", m.Slab.SlabOf(e.Address)!.Cache.Name);
        var oob = Assert.Throws<KernelBugException>(() => e[115] = 1);
        Assert.Contains("allocated 115-byte region", oob.Report);
        mempool_free(e, k);
        mempool_t pages = mempool_create_page_pool(2, 2)!;
        KPtr p = mempool_alloc(pages, GFP_KERNEL);
        Assert.Equal(0UL, p.Address % PAGE_SIZE);
        Assert.Equal(2, m.Slab.HeadPageOf(p.Address)!.Order);
        p[4 * PAGE_SIZE - 1] = 1;
        mempool_free(p, pages);
        mempool_t boxed = mempool_create(2, mempool_kmalloc, mempool_kfree, 64)!;
        KPtr x = mempool_alloc(boxed, GFP_KERNEL);
        Assert.Equal((nuint)64, ksize(x));
        mempool_free(x, boxed);
        long free = m.PageAllocator.FreePages;
        mempool_destroy(pages);
        Assert.Equal(free + 2 * 4, m.PageAllocator.FreePages);
        mempool_destroy(k);
        mempool_destroy(boxed);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Resize_shrinks_and_grows_the_reserve()
    {
        using Machine m = SlabTests.Boot();
        mempool_t pool = mempool_create_kmalloc_pool(4, 32)!;
        Assert.Equal(0, mempool_resize(pool, 2, GFP_KERNEL));
        Assert.Equal(2, pool.CurrNr);
        Assert.Equal(0, mempool_resize(pool, 8, GFP_KERNEL));
        Assert.Equal(8, pool.CurrNr);
        Assert.Equal(8, pool.MinNr);
        Assert.Throws<ArgumentOutOfRangeException>(() => mempool_resize(pool, 0, GFP_KERNEL));
        mempool_destroy(pool);
    }

    [Fact]
    public void Freeing_to_the_wrong_pool_is_mismatched_and_not_done()
    {
        using Machine m = SlabTests.Boot(onBug: BugAction.Report);
        mempool_t a = mempool_create_kmalloc_pool(1, 32)!;
        mempool_t b = mempool_create_kmalloc_pool(1, 32)!;
        KPtr e = mempool_alloc(a, GFP_KERNEL);
        mempool_free(e, b);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.MismatchedFree, r.Kind);
        Assert.Contains("mempool_free: the element belongs to another mempool", r.Text);
        e[0] = 1;
        mempool_free(e, a);
        Assert.Single(m.Reports);
        mempool_destroy(a);
        mempool_destroy(b);
    }

    [Fact]
    public void Destroy_with_elements_out_reports_a_leak()
    {
        using Machine m = SlabTests.Boot(onBug: BugAction.Report);
        mempool_t pool = mempool_create_kmalloc_pool(1, 32)!;
        KPtr e = mempool_alloc(pool, GFP_KERNEL);
        mempool_destroy(pool);
        Assert.Equal(BugKind.Leak, Assert.Single(m.Reports).Kind);
        Assert.Throws<ObjectDisposedException>(() => mempool_alloc(pool, GFP_KERNEL));
        kfree(e);
    }

    [Fact]
    public void A_pool_holds_its_reserve_for_kmemleak_and_only_its_reserve()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20 });
        mempool_t pool = mempool_create_kmalloc_pool(4, 100)!;
        Assert.Empty(m.ScanLeaks(pool));
        KPtr taken = mempool_alloc(pool, GFP_KERNEL);
        KPtr lost = mempool_alloc(pool, GFP_KERNEL);
        mempool_free(taken, pool);
        // The element the driver dropped is a leak; the reserve (held through the pool) is not.
        KernelBugReport leak = Assert.Single(m.ScanLeaks(pool));
        Assert.Contains($"unreferenced object 0x{lost.Address:x}", leak.Text);
        mempool_free(lost, pool);
        mempool_destroy(pool);
    }
}
