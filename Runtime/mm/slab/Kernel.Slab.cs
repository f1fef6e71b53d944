using System.Runtime.CompilerServices;

namespace KmemGuard;

// include/linux/slab.h and mm/slab_common.c: slab caches.
public static partial class Kernel
{
    // Cache flags, with LDD3's (2.6.10) values.
    public const ulong SLAB_DEBUG_FREE = 0x00000100;
    /// <summary>Red zones around every object, verified on free (slub_debug=Z).</summary>
    public const ulong SLAB_RED_ZONE = 0x00000400;
    /// <summary>Free objects are filled with 0x6b (0xa5 at the end), verified on allocation (slub_debug=P). Not for caches with a constructor.</summary>
    public const ulong SLAB_POISON = 0x00000800;
    /// <summary>Empty slabs stay with the cache instead of going back to the page allocator.</summary>
    public const ulong SLAB_NO_REAP = 0x00001000;
    /// <summary>Objects aligned to the cache line (64 bytes), or to a fraction of it for small objects.</summary>
    public const ulong SLAB_HWCACHE_ALIGN = 0x00002000;
    /// <summary>Slabs come from ZONE_DMA.</summary>
    public const ulong SLAB_CACHE_DMA = 0x00004000;
    public const ulong SLAB_STORE_USER = 0x00010000;
    /// <summary>The cache's pages count as reclaimable (SReclaimable in /proc/meminfo).</summary>
    public const ulong SLAB_RECLAIM_ACCOUNT = 0x00020000;
    public const ulong SLAB_PANIC = 0x00040000;

    // Constructor flags (LDD3): always CONSTRUCTOR; ATOMIC when the allocation that populated the slab could not sleep.
    public const ulong SLAB_CTOR_CONSTRUCTOR = 0x001;
    public const ulong SLAB_CTOR_ATOMIC = 0x002;

    internal const ulong SLAB_VALID_FLAGS = SLAB_DEBUG_FREE | SLAB_RED_ZONE | SLAB_POISON | SLAB_NO_REAP | SLAB_HWCACHE_ALIGN
        | SLAB_CACHE_DMA | SLAB_STORE_USER | SLAB_RECLAIM_ACCOUNT | SLAB_PANIC;

    /// <summary>
    /// LDD3's kmem_cache_create: <paramref name="offset"/> is the objects' alignment, the
    /// constructor runs on every object of a new slab (flags SLAB_CTOR_CONSTRUCTOR, plus
    /// SLAB_CTOR_ATOMIC when that allocation could not sleep), the destructor on every object
    /// of a slab given back. NULL (and a warning) for a NULL name, size 0 or a size beyond
    /// KMALLOC_MAX_SIZE. Names need not be unique, as in current kernels.
    /// </summary>
    [MaySleep]
    public static kmem_cache_t? kmem_cache_create(string name, size_t size, size_t offset, ulong flags,
        kmem_cache_ldd_ctor_t? ctor, kmem_cache_ldd_ctor_t? dtor) =>
        Machine.Current.Slab.CreateCache(name, size, offset, flags, null, ctor, dtor);

    /// <summary>The modern kmem_cache_create: the constructor gets the object only.</summary>
    [MaySleep]
    public static kmem_cache_t? kmem_cache_create(string name, size_t size, size_t align, ulong flags, kmem_cache_ctor_t? ctor) =>
        Machine.Current.Slab.CreateCache(name, size, align, flags, ctor, null, null);

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.SlabCache, OwnerParameter = "cachep")]
    public static KPtr kmem_cache_alloc(kmem_cache_t cachep, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        SlabAllocator slab = Machine.Current.Slab;
        slab.CheckOwner(cachep);
        return new KPtr(slab.Alloc(cachep, flags, -1, cachep.ObjectSize, new CallSite(caller, file, line)));
    }

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.SlabCache, OwnerParameter = "cachep")]
    public static KPtr kmem_cache_zalloc(kmem_cache_t cachep, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        kmem_cache_alloc(cachep, flags | __GFP_ZERO, caller, file, line);

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.SlabCache, OwnerParameter = "cachep")]
    public static KPtr kmem_cache_alloc_node(kmem_cache_t cachep, gfp_t flags, int node,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        SlabAllocator slab = Machine.Current.Slab;
        slab.CheckOwner(cachep);
        return new KPtr(slab.Alloc(cachep, flags, node, cachep.ObjectSize, new CallSite(caller, file, line)));
    }

    [Frees(MemoryFamily.SlabCache, "objp", OwnerParameter = "cachep")]
    public static void kmem_cache_free(kmem_cache_t cachep, KPtr objp,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        SlabAllocator slab = Machine.Current.Slab;
        slab.CheckOwner(cachep);
        slab.CacheFree(cachep, objp.Address, new CallSite(caller, file, line));
    }

    /// <summary>
    /// LDD3's kmem_cache_destroy: 0 once the cache is gone; nonzero (-EBUSY), with nothing
    /// destroyed, while objects are still allocated (reported as CacheNotEmpty).
    /// </summary>
    [MaySleep]
    public static int kmem_cache_destroy(kmem_cache_t cachep,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        SlabAllocator slab = Machine.Current.Slab;
        slab.CheckOwner(cachep);
        return slab.Destroy(cachep, new CallSite(caller, file, line));
    }

    /// <summary>kmem_cache_shrink: gives the cache's empty slabs back; returns 0.</summary>
    [MaySleep]
    public static int kmem_cache_shrink(kmem_cache_t cachep)
    {
        SlabAllocator slab = Machine.Current.Slab;
        slab.CheckOwner(cachep);
        slab.Shrink(cachep);
        return 0;
    }

    /// <summary>The size of the cache's objects, as its creator asked (kmem_cache_size).</summary>
    public static uint kmem_cache_size(kmem_cache_t cachep) => cachep.ObjectSize;

    public static string kmem_cache_name(kmem_cache_t cachep) => cachep.Name;
}
