using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull.Buggy;

/// <summary>
/// Bugs no analyzer can see, because they depend on sizes, lifetimes or addresses at run time. Each
/// method is one driver mistake; the debug kernel (KASAN, slub_debug, kmemleak, hardened usercopy,
/// the sanity checks) reports it the moment it happens. In Report mode the bad access or free is
/// skipped, so each method cleans up after itself and leaves only its one report.
/// </summary>
public static class scullb_runtime
{
    /// <summary>The size of the header scullb keeps in front of each quantum: an odd size, as real headers have.</summary>
    public const int SCULLB_HDR = 115;

    public static void header_off_by_one()
    {
        KPtr hdr = kmalloc(SCULLB_HDR, GFP_KERNEL);
        if (hdr.IsNull) return;
        // SEEDED BUG (runtime: SlabOutOfBounds): `<=` writes hdr[115], one byte past the 115-byte block.
        for (int i = 0; i <= SCULLB_HDR; i++) hdr[i] = 0;
        kfree(hdr);
    }

    public static void stale_qset_after_trim()
    {
        var dev = new scullb_dev { spare = kzalloc(scull_qset.SIZE, GFP_KERNEL) };
        kfree(dev.spare); // trim frees the set but forgets `dev->data = NULL`
        // SEEDED BUG (runtime: SlabUseAfterFree): reads the freed set through the stale pointer.
        long next = dev.spare.Read<long>(8);
        _ = next;
    }

    public static void trim_twice()
    {
        KPtr q = kmalloc(scull_dev.SCULL_QUANTUM, GFP_KERNEL);
        kfree(q);
        // SEEDED BUG (runtime: DoubleFree): the error path frees the quantum the normal path already freed.
        kfree(q);
    }

    public static void free_from_the_middle()
    {
        KPtr hdr = kmalloc(64, GFP_KERNEL);
        if (hdr.IsNull) return;
        KPtr payload = hdr + 8;
        // SEEDED BUG (runtime: InvalidFree): frees the payload pointer, not the start of the block.
        kfree(payload);
        kfree(hdr);
    }

    public static void page_after_free_pages()
    {
        ulong page = __get_free_page(GFP_KERNEL);
        if (page == 0) return;
        free_page(page);
        // SEEDED BUG (runtime: UseAfterFree): writes a page already handed back to the buddy allocator.
        ((KPtr)page)[0] = 1;
    }

    public static void vmalloc_past_the_end()
    {
        KPtr v = vmalloc(PAGE_SIZE);
        if (v.IsNull) return;
        // SEEDED BUG (runtime: VmallocOutOfBounds): one byte past a one-page area lands in its guard page.
        v[PAGE_SIZE] = 1;
        vfree(v);
    }

    public static void unchecked_follow()
    {
        KPtr dptr = NULL; // what scull_follow returns when kmalloc fails
        // SEEDED BUG (runtime: NullPtrDeref): dptr->next without checking dptr.
        long next = dptr.Read<long>(8);
        _ = next;
    }

    public static void poisoned_list_pointer()
    {
        var poison = (KPtr)0xdead000000000100UL; // LIST_POISON1: what list_del leaves in ->next
        // SEEDED BUG (runtime: WildAccess): follows a deleted list entry's poisoned pointer.
        long value = poison.Read<long>(0);
        _ = value;
    }

    public static void lost_message()
    {
        KPtr msg = kmalloc(64, GFP_KERNEL);
        if (msg.IsNull) return;
        memset(msg, 0x42, 64);
        // SEEDED BUG (runtime: Leak): the only pointer to msg goes out of scope; nothing frees it.
    }

    public static void span_past_the_object()
    {
        KPtr rec = kmalloc(100, GFP_KERNEL);
        if (rec.IsNull) return;
        // SEEDED BUG (runtime: RedzoneOverwritten): a span of 112 bytes over a 100-byte block; without
        // KASAN nothing checks the span, and slub_debug finds the red zone overwritten when it is freed.
        rec.AsSpan(112).Fill(0x5a);
        kfree(rec);
    }

    public static void write_after_free_in_poisoned_cache()
    {
        kmem_cache_t? cache = kmem_cache_create("scullb_poison", 128, 0, SLAB_POISON, null);
        if (cache is null) return;
        KPtr obj = kmem_cache_alloc(cache, GFP_KERNEL);
        kmem_cache_free(cache, obj);
        // SEEDED BUG (runtime: PoisonOverwritten): a late completion writes into the freed object; without
        // KASAN the write lands, and slub_debug finds the 0x6b poison broken when the object is handed out again.
        obj.Write(16, 0x1234L);
        KPtr again = kmem_cache_alloc(cache, GFP_KERNEL);
        kmem_cache_free(cache, again);
        kmem_cache_destroy(cache);
    }

    public static void bootmem_from_a_module()
    {
        // SEEDED BUG (runtime: BootmemAfterBoot): bootmem exists only during early boot; a module loads long after.
        KPtr table = alloc_bootmem(PAGE_SIZE);
        _ = table;
    }

    public static void highmem_for_kmalloc()
    {
        // SEEDED BUG (runtime: InvalidFlags): kmalloc returns a kernel address, so it cannot take __GFP_HIGHMEM.
        KPtr p = kmalloc(64, GFP_KERNEL | __GFP_HIGHMEM);
        kfree(p);
    }

    public static void read_too_much()
    {
        KPtr rec = kmalloc(128, GFP_KERNEL);
        if (rec.IsNull) return;
        memset(rec, 0, 128);
        byte[] user = new byte[256];
        // SEEDED BUG (runtime: UsercopyExposure): copies 256 bytes out of a 128-byte object, exposing its neighbour.
        ulong left = copy_to_user(user, rec, 256);
        _ = left;
        kfree(rec);
    }

    public static void destroy_before_trim()
    {
        kmem_cache_t? cache = kmem_cache_create("scullb_c", 4000, 0, SLAB_HWCACHE_ALIGN, null, null);
        if (cache is null) return;
        KPtr quantum = kmem_cache_alloc(cache, GFP_KERNEL);
        // SEEDED BUG (runtime: CacheNotEmpty): module exit destroys the cache before trimming the devices.
        kmem_cache_destroy(cache);
        kmem_cache_free(cache, quantum);
        kmem_cache_destroy(cache);
    }

    public static void large_buffer_past_the_end()
    {
        // A 10000-byte buffer is larger than KMALLOC_MAX_CACHE_SIZE: it comes from the page allocator.
        KPtr buffer = kmalloc(10000, GFP_KERNEL);
        if (buffer.IsNull) return;
        // SEEDED BUG (runtime: OutOfBounds): the terminating byte goes one past the requested size.
        buffer[10000] = 0;
        kfree(buffer);
    }

    public static void free_page_of_a_kmalloc_buffer()
    {
        // kmalloc-32's slabs are single pages, so the object's page is a whole slab.
        KPtr buffer = kmalloc(32, GFP_KERNEL);
        if (buffer.IsNull) return;
        // SEEDED BUG (runtime: BadPageState): the page behind a slab object goes to __free_page.
        __free_page(virt_to_page(buffer));
        kfree(buffer);
    }
}
