using System.Runtime.CompilerServices;
using System;

namespace KmemGuard;

// include/linux/mempool.h and mm/mempool.c.
public static partial class Kernel
{
    /// <summary>
    /// The helpers below have exactly the delegates' parameters, so they cannot take the
    /// caller's C# position: their tracks name them (the stack of a helper's first call is kept).
    /// </summary>
    private const string MempoolSource = "mm/mempool.c";

    /// <summary>
    /// A pool with <paramref name="min_nr"/> elements preallocated from <paramref name="alloc_fn"/>
    /// (with GFP_KERNEL); NULL if that fails (what was allocated is given back).
    /// </summary>
    [MaySleep]
    public static mempool_t? mempool_create(int min_nr, mempool_alloc_t alloc_fn, mempool_free_t free_fn, object? pool_data)
    {
        ArgumentNullException.ThrowIfNull(alloc_fn);
        ArgumentNullException.ThrowIfNull(free_fn);
        Machine machine = Machine.Current;
        if (min_nr < 0) return null;
        SlabAllocator.MightSleepIf(GFP_KERNEL, new CallSite(nameof(mempool_create), "mm/mempool.c", 0));
        var pool = new mempool_t(machine, min_nr, alloc_fn, free_fn, pool_data);
        if (pool.Prefill(GFP_KERNEL)) return pool;
        pool.Destroy();
        return null;
    }

    /// <summary>A pool of objects of a slab cache.</summary>
    [MaySleep]
    public static mempool_t? mempool_create_slab_pool(int min_nr, kmem_cache_t kc) =>
        mempool_create(min_nr, mempool_alloc_slab, mempool_free_slab, kc);

    /// <summary>A pool of kmalloc blocks of <paramref name="size"/> bytes.</summary>
    [MaySleep]
    public static mempool_t? mempool_create_kmalloc_pool(int min_nr, size_t size) =>
        mempool_create(min_nr, mempool_kmalloc, mempool_kfree, (long)size.Value);

    /// <summary>A pool of 2^order page blocks; the elements are their kernel addresses.</summary>
    [MaySleep]
    public static mempool_t? mempool_create_page_pool(int min_nr, int order) =>
        mempool_create(min_nr, mempool_alloc_pages, mempool_free_pages, order);

    /// <summary>
    /// An element: from the backing allocator without sleeping or I/O, else from the reserve;
    /// when both fail and <paramref name="gfp_mask"/> may sleep, waits for an element to be
    /// freed (it never fails then); otherwise NULL.
    /// </summary>
    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Mempool, OwnerParameter = "pool")]
    public static KPtr mempool_alloc(mempool_t pool, gfp_t gfp_mask, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(pool);
        pool.ThrowIfDestroyed("mempool_alloc");
        SlabAllocator.MightSleepIf(gfp_mask, new CallSite(caller, file, line));
        return pool.Allocate(gfp_mask);
    }

    /// <summary>Frees an element: into the reserve while it is below min_nr, else to the backing allocator. NULL is ignored.</summary>
    [Frees(MemoryFamily.Mempool, "element", OwnerParameter = "pool")]
    public static void mempool_free(KPtr element, mempool_t pool)
    {
        if (element.IsNull) return;
        ArgumentNullException.ThrowIfNull(pool);
        pool.ThrowIfDestroyed("mempool_free");
        pool.Release(element);
    }

    /// <summary>LDD3's mempool_resize: a new minimum; growing preallocates with <paramref name="gfp_mask"/>. 0, or -ENOMEM.</summary>
    [MaySleep]
    public static int mempool_resize(mempool_t pool, int new_min_nr, gfp_t gfp_mask)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (new_min_nr <= 0) throw new ArgumentOutOfRangeException(nameof(new_min_nr), new_min_nr, "mempool_resize: the new minimum must be positive (the kernel BUGs).");
        pool.ThrowIfDestroyed("mempool_resize");
        SlabAllocator.MightSleepIf(gfp_mask, new CallSite(nameof(mempool_resize), "mm/mempool.c", 0));
        return pool.Resize(new_min_nr, gfp_mask);
    }

    /// <summary>
    /// Frees the reserve and the pool. Elements still out are the caller's bug (LDD3's kernel
    /// BUGs on them): with Checks.Sanity they are reported as a Leak; they stay allocated.
    /// </summary>
    public static void mempool_destroy(mempool_t? pool)
    {
        if (pool == null) return;
        pool.ThrowIfDestroyed("mempool_destroy");
        long outstanding = pool.Destroy();
        if (outstanding > 0 && pool.Machine.IsChecking(Checks.Sanity))
            pool.Machine.Reporter.Raise(BugKind.Leak,
                $"BUG: mempool_destroy: {outstanding} element(s) of the pool still in use (kernel BUG at mm/mempool.c: pool->curr_nr != pool->min_nr): they leak\n"
                + "Call Trace:\n" + StackDepot.Walk());
    }

    public static KPtr mempool_alloc_slab(gfp_t gfp_mask, object? pool_data) =>
        kmem_cache_alloc(SlabCacheOf(pool_data), gfp_mask, nameof(mempool_alloc_slab), MempoolSource, 1);

    public static void mempool_free_slab(KPtr element, object? pool_data) =>
        kmem_cache_free(SlabCacheOf(pool_data), element, nameof(mempool_free_slab), MempoolSource, 2);

    /// <summary>pool_data is the size (a boxed integer).</summary>
    public static KPtr mempool_kmalloc(gfp_t gfp_mask, object? pool_data) =>
        kmalloc(Convert.ToInt64(pool_data ?? throw new ArgumentNullException(nameof(pool_data), "mempool_kmalloc: pool_data must be the element size.")),
            gfp_mask, nameof(mempool_kmalloc), MempoolSource, 3);

    public static void mempool_kfree(KPtr element, object? pool_data) => kfree(element, nameof(mempool_kfree), MempoolSource, 4);

    /// <summary>pool_data is the order (a boxed int); the element is the block's kernel address.</summary>
    public static KPtr mempool_alloc_pages(gfp_t gfp_mask, object? pool_data)
    {
        Machine machine = Machine.Current;
        page? block = machine.PageAllocator.Alloc(gfp_mask, PageOrderOf(pool_data), -1, new CallSite(nameof(mempool_alloc_pages), MempoolSource, 5));
        return block == null ? NULL : new KPtr(PageAllocator.PageVirt(block));
    }

    public static void mempool_free_pages(KPtr element, object? pool_data)
    {
        Machine machine = Machine.Current;
        int order = PageOrderOf(pool_data);
        page? head = machine.Slab.HeadPageOf(element.Address);
        if (head == null || head.RefCount == 0 || head.Order != order || PageAllocator.PageVirt(head) != element.Address)
        {
            if (machine.IsChecking(Checks.Frees))
                FreeReport.Mismatched(machine, "mempool_free_pages", element.Address, machine.Memory.Describe(element.Address),
                    $"mempool_free_pages: not an allocated block of order {order}");
            return;
        }
        machine.PageAllocator.Free(head, order, new CallSite(nameof(mempool_free_pages), MempoolSource, 6));
    }

    private static kmem_cache_t SlabCacheOf(object? pool_data) =>
        pool_data as kmem_cache_t ?? throw new ArgumentException("A slab mempool's pool_data must be its kmem_cache_t.", nameof(pool_data));

    private static int PageOrderOf(object? pool_data) =>
        Convert.ToInt32(pool_data ?? throw new ArgumentNullException(nameof(pool_data), "A page mempool's pool_data must be the order."));
}
