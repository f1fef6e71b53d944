using System;
using System.Numerics;
using System.Threading;

namespace KmemGuard;

/// <summary>LDD3's constructor and destructor: the object, its cache, and SLAB_CTOR_* flags.</summary>
public delegate void kmem_cache_ldd_ctor_t(KPtr obj, kmem_cache_t cache, ulong flags);

/// <summary>The modern constructor (void (*ctor)(void *)): it gets the object only.</summary>
public delegate void kmem_cache_ctor_t(KPtr obj);

/// <summary>
/// A slab cache (struct kmem_cache): objects of one size carved out of slabs of buddy pages.
/// The layout (object size, stride, alignment, red zones, slab order) is fixed when the cache is
/// created, as SLUB's calculate_sizes fixes it.
/// </summary>
public sealed class kmem_cache_t
{
    internal const int CacheLineSize = 64;
    internal const uint MinAlign = 8;
    private const int MaxObjsPerPage = 32767;
    private const int SlubMaxOrder = 3; // PAGE_ALLOC_COSTLY_ORDER

    internal kmem_cache_t(SlabAllocator allocator, string name, uint objectSize, uint align, ulong flags,
        kmem_cache_ctor_t? ctor, kmem_cache_ldd_ctor_t? lddCtor, kmem_cache_ldd_ctor_t? dtor, bool isKmalloc)
    {
        Allocator = allocator;
        Name = name;
        ObjectSize = objectSize;
        Flags = flags;
        Ctor = ctor;
        LddCtor = lddCtor;
        Dtor = dtor;
        IsKmalloc = isKmalloc;
        // Without the check code (KMEMGUARD_NO_CHECKS) the debug flags are ignored, as without CONFIG_SLUB_DEBUG.
        _redZone = Machine.ChecksCompiledIn && ((flags & Kernel.SLAB_RED_ZONE) != 0 || allocator.SlubDebug);
        // SLUB never poisons objects of a cache with a constructor: their free state must survive.
        _poison = Machine.ChecksCompiledIn && ((flags & Kernel.SLAB_POISON) != 0 || allocator.SlubDebug) && ctor == null && lddCtor == null;
        Align = CalculateAlignment(flags, align, objectSize);
        (Size, RedLeftPad) = CalculateSizes(objectSize, Align, RedZone, allocator.Machine.Memory.Kasan != null);
        Stride = new StrideDivisor(Size);
        if (RedZone && Poison) FreePattern = BuildFreePattern(Size, RedLeftPad, ObjectSize);
        Order = CalculateOrder(Size, allocator.Machine.Cpus.Length);
        ObjectsPerSlab = (int)(((uint)Kernel.PAGE_SIZE << Order) / Size);
        _debug = allocator.Tracking || allocator.Kasan != null || RedZone || Poison;
        MinPartial = Math.Min(10, Math.Max(5, BitOperations.Log2(Size) / 2));
        (Limit, BatchCount) = CpuCacheLimits(Size);
        CpuCaches = new CpuCache[allocator.Machine.Cpus.Length];
        for (int i = 0; i < CpuCaches.Length; i++) CpuCaches[i] = new CpuCache(Limit);
        Nodes = new KmemCacheNode[allocator.Machine.Ram.Nodes.Length];
        for (int i = 0; i < Nodes.Length; i++) Nodes[i] = new KmemCacheNode();
    }

    internal SlabAllocator Allocator { get; }
    internal string Name { get; }

    /// <summary>The size the creator asked for (s->object_size).</summary>
    internal uint ObjectSize { get; }

    /// <summary>Bytes each object takes in a slab, red zones and padding included (s->size).</summary>
    internal uint Size { get; }
    internal uint Align { get; }

    /// <summary>Divides offsets in a slab by <see cref="Size"/>.</summary>
    internal StrideDivisor Stride { get; }

    /// <summary>
    /// A free object's whole stride under slub_debug with red zones and poison: inactive red
    /// zones around POISON_FREE bytes ending in POISON_END. One compare checks a free object,
    /// one copy makes one; null unless both red zones and poison are on.
    /// </summary>
    internal byte[]? FreePattern { get; }

    private static byte[] BuildFreePattern(uint size, uint redLeftPad, uint objectSize)
    {
        var pattern = new byte[size];
        pattern.AsSpan().Fill(SlabAllocator.SLUB_RED_INACTIVE);
        pattern.AsSpan((int)redLeftPad, (int)objectSize - 1).Fill(SlabAllocator.POISON_FREE);
        pattern[redLeftPad + objectSize - 1] = SlabAllocator.POISON_END;
        return pattern;
    }

    /// <summary>Left red zone: where the object starts inside its stride (s->red_left_pad).</summary>
    internal uint RedLeftPad { get; }
    internal int Order { get; }
    internal int ObjectsPerSlab { get; }
    internal ulong Flags { get; }
    internal bool RedZone => Machine.ChecksCompiledIn && _redZone;
    internal bool Poison => Machine.ChecksCompiledIn && _poison;
    private readonly bool _redZone, _poison, _debug;
    internal bool IsKmalloc { get; }

    /// <summary>Allocation and free do per-object work beyond the per-CPU array (tracking, KASAN, red zones, poison).</summary>
    internal bool Debug => Machine.ChecksCompiledIn && _debug;
    internal int MinPartial { get; }

    /// <summary>Per-CPU array size and refill/flush batch (SLAB's limit and batchcount).</summary>
    internal int Limit { get; }
    internal int BatchCount { get; }

    internal kmem_cache_ctor_t? Ctor { get; }
    internal kmem_cache_ldd_ctor_t? LddCtor { get; }
    internal kmem_cache_ldd_ctor_t? Dtor { get; }

    internal readonly CpuCache[] CpuCaches;
    internal readonly KmemCacheNode[] Nodes;

    /// <summary>Set by kmem_cache_destroy: every later use of the cache is a caller bug.</summary>
    internal volatile bool Destroyed;

    internal bool HasCtor => Ctor != null || LddCtor != null;

    /// <summary>Bytes from the object's end to the next stride: the right red zone when red zoning.</summary>
    internal uint RightRedzone => Size - RedLeftPad - ObjectSize;

    internal gfp_t PageGfp => (Flags & Kernel.SLAB_CACHE_DMA) != 0 ? Kernel.__GFP_DMA : 0;

    internal bool Reclaimable => (Flags & Kernel.SLAB_RECLAIM_ACCOUNT) != 0;

    internal void ThrowIfDestroyed(string function)
    {
        if (Destroyed) throw new ObjectDisposedException(Name, $"{function}: the slab cache '{Name}' has been destroyed by kmem_cache_destroy.");
    }

    /// <summary>mm/slab_common.c calculate_alignment: the cache line for SLAB_HWCACHE_ALIGN, halved while the object fits twice.</summary>
    private static uint CalculateAlignment(ulong flags, uint align, uint size)
    {
        if (align != 0 && !BitOperations.IsPow2(align)) align = BitOperations.RoundUpToPowerOf2(align);
        if ((flags & Kernel.SLAB_HWCACHE_ALIGN) != 0)
        {
            uint ralign = CacheLineSize;
            while (size <= ralign / 2) ralign /= 2;
            align = Math.Max(align, ralign);
        }
        return Math.Max(align, MinAlign);
    }

    /// <summary>mm/slub.c calculate_sizes, with generic KASAN's extra redzone (kasan_cache_create).</summary>
    private static (uint Size, uint RedLeftPad) CalculateSizes(uint objectSize, uint align, bool redZone, bool kasan)
    {
        uint size = AlignUp(objectSize, 8);
        if (redZone && size == objectSize) size += 8;
        if (kasan) size = Math.Max(size, objectSize + KasanOptimalRedzone(objectSize));
        uint redLeftPad = 0;
        if (redZone)
        {
            redLeftPad = AlignUp(8, align);
            size += redLeftPad;
        }
        return (AlignUp(size, align), redLeftPad);
    }

    private static uint KasanOptimalRedzone(uint objectSize) =>
        objectSize <= 64 - 16 ? 16u :
        objectSize <= 128 - 32 ? 32u :
        objectSize <= 512 - 64 ? 64u :
        objectSize <= 4096 - 128 ? 128u :
        objectSize <= (1 << 14) - 256 ? 256u :
        objectSize <= (1 << 15) - 512 ? 512u :
        objectSize <= (1 << 16) - 1024 ? 1024u : 2048u;

    /// <summary>
    /// mm/slub.c calculate_order: at least slub_min_objects per slab (4 * (fls(nr_cpus) + 1)),
    /// the smallest order up to 3 that wastes at most 1/16 of the slab, then 1/8, 1/4, 1/2;
    /// else the order of one object.
    /// </summary>
    internal static int CalculateOrder(uint size, int cpus)
    {
        uint minObjects = (uint)(4 * (Fls((uint)Math.Max(cpus, 1)) + 1));
        uint maxObjects = Math.Max(OrderObjects(SlubMaxOrder, size), 1u);
        minObjects = Math.Min(minObjects, maxObjects);
        int minOrder = SlabAllocator.PageOrder((ulong)minObjects * size);
        if (OrderObjects(minOrder, size) > MaxObjsPerPage)
            return SlabAllocator.PageOrder((ulong)size * MaxObjsPerPage) - 1;
        for (uint fraction = 16; fraction > 1; fraction /= 2)
        {
            int order = CalcSlabOrder(size, minOrder, SlubMaxOrder, fraction);
            if (order <= SlubMaxOrder) return order;
        }
        return SlabAllocator.PageOrder(size);
    }

    private static int CalcSlabOrder(uint size, int minOrder, int maxOrder, uint fractLeftover)
    {
        int order;
        for (order = minOrder; order <= maxOrder; order++)
        {
            uint slabSize = (uint)Kernel.PAGE_SIZE << order;
            if (slabSize % size <= slabSize / fractLeftover) break;
        }
        return order;
    }

    private static uint OrderObjects(int order, uint size) => ((uint)Kernel.PAGE_SIZE << order) / size;

    private static int Fls(uint x) => 32 - BitOperations.LeadingZeroCount(x);

    /// <summary>mm/slab.c enable_cpucache: how many objects a CPU's array holds.</summary>
    private static (int Limit, int Batch) CpuCacheLimits(uint size)
    {
        int limit = size > 131072 ? 1 : size > Kernel.PAGE_SIZE ? 8 : size > 1024 ? 24 : size > 256 ? 54 : 120;
        return (limit, (limit + 1) / 2);
    }

    private static uint AlignUp(uint value, uint align) => (value + align - 1) & ~(align - 1);

    public override string ToString() => $"kmem_cache {Name} (object {ObjectSize}, stride {Size}, order {Order}, {ObjectsPerSlab}/slab)";
}

/// <summary>
/// One CPU's array of free objects of a cache (SLAB's array_cache): touched only by the task
/// that owns the CPU, so allocation and free take no lock.
/// </summary>
internal sealed class CpuCache
{
    public readonly ulong[] Objects;
    public int Count;

    public CpuCache(int limit) => Objects = new ulong[limit];
}

/// <summary>A cache's slabs on one NUMA node (struct kmem_cache_node), under its list_lock.</summary>
internal sealed class KmemCacheNode
{
    public readonly Lock ListLock = new();
    public readonly SlabList Partial = new(), Full = new(), Empty = new();
    public int Slabs;
    public long TotalObjects;

    /// <summary>Objects free in the node's slabs (not counting the per-CPU arrays).</summary>
    public long FreeObjects;
}

/// <summary>A doubly linked list of slabs (partial, full or empty).</summary>
internal sealed class SlabList
{
    public Slab? First;
    public int Count;

    public void Add(Slab slab)
    {
        slab.List = this;
        slab.Prev = null;
        slab.Next = First;
        if (First != null) First.Prev = slab;
        First = slab;
        Count++;
    }

    public void Remove(Slab slab)
    {
        if (slab.Prev != null) slab.Prev.Next = slab.Next;
        else First = slab.Next;
        if (slab.Next != null) slab.Next.Prev = slab.Prev;
        slab.Next = slab.Prev = null;
        slab.List = null;
        Count--;
    }
}
