namespace KmemGuard;

/// <summary>
/// One slab: a block of 2^order buddy pages cut into objects of one cache. It is the Owner of
/// its head page, so that any address inside says which object and cache it belongs to. The
/// free objects are a stack of indices (SLAB's freelist array); objects out on per-CPU arrays
/// count as in use, as SLUB counts them.
/// </summary>
internal sealed unsafe class Slab : IObjectOwner
{
    public const byte ObjectFree = 0, ObjectAllocated = 1, ObjectQuarantined = 2;

    public Slab(kmem_cache_t cache, page head, bool tracking, bool leakTracking)
    {
        Cache = cache;
        Page = head;
        Base = PageAllocator.PageVirt(head);
        Host = cache.Allocator.Machine.Ram.Host(KernelMemory.ToPhys(Base));
        NodeId = head.Zone.Node.Id;
        int n = cache.ObjectsPerSlab;
        FreeStack = new int[n];
        for (int i = 0; i < n; i++) FreeStack[i] = n - 1 - i;
        FreeCount = n;
        if (tracking) Objects = new SlabObject[n];
        LeakTracking = tracking && leakTracking;
    }

    public readonly kmem_cache_t Cache;
    public readonly page Page;

    /// <summary>Kernel address of the slab's first byte.</summary>
    public readonly ulong Base;
    public readonly byte* Host;
    public readonly int NodeId;

    public readonly int[] FreeStack;
    public int FreeCount;

    public Slab? Next, Prev;
    public SlabList? List;

    /// <summary>
    /// Per-object bookkeeping, kept only while a check needs it (SLUB keeps it in the object's
    /// metadata). One entry per object, so that an allocation or a free touches one cache line of
    /// it, not one per field.
    /// </summary>
    public readonly SlabObject[]? Objects;

    /// <summary>kmemleak tracks the objects (<see cref="SlabObject.LeakWord"/>).</summary>
    public readonly bool LeakTracking;

    /// <summary>The object's state is tracked and says allocated.</summary>
    public bool IsAllocated(int index) => Objects != null && Objects[index].State == ObjectAllocated;

    /// <summary>What the caller asked for, when it is known; else the cache's object size.</summary>
    public uint RequestedSize(int index) => Objects != null && Objects[index].Requested != 0 ? Objects[index].Requested : Cache.ObjectSize;

    public int InUse => Cache.ObjectsPerSlab - FreeCount;

    public ulong Bytes => (ulong)Kernel.PAGE_SIZE << Cache.Order;

    public ulong ObjectAddress(int index) => Base + (ulong)index * Cache.Size + Cache.RedLeftPad;

    public byte* HostOf(ulong address) => Host + (address - Base);

    /// <summary>The object whose stride holds <paramref name="address"/>, or -1 in the slab's unused tail.</summary>
    public int StrideIndex(ulong address)
    {
        uint index = Cache.Stride.Divide((uint)(address - Base));
        return index < (uint)Cache.ObjectsPerSlab ? (int)index : -1;
    }

    /// <summary>The object that starts exactly at <paramref name="address"/>, or -1.</summary>
    public int ObjectIndex(ulong address)
    {
        int index = StrideIndex(address);
        return index >= 0 && ObjectAddress(index) == address ? index : -1;
    }

    public ObjectInfo? Describe(ulong address)
    {
        int index = StrideIndex(address);
        if (index < 0) index = Cache.ObjectsPerSlab - 1;
        ulong start = ObjectAddress(index);
        bool allocated = IsAllocated(index);
        return new ObjectInfo
        {
            Start = start,
            RequestedSize = RequestedSize(index),
            Family = Cache.IsKmalloc ? MemoryFamily.Kmalloc : MemoryFamily.SlabCache,
            CacheName = Cache.Name,
            CacheObjectSize = Cache.ObjectSize,
            Allocated = allocated,
            AllocTrack = Objects?[index].AllocTrack,
            FreeTrack = Objects?[index].FreeTrack,
        };
    }

    public override string ToString() => $"slab of {Cache.Name} at {Base:x16}: {InUse}/{Cache.ObjectsPerSlab} in use";
}

/// <summary>A slab object's bookkeeping while checks are on.</summary>
internal struct SlabObject
{
    public Track? AllocTrack, FreeTrack;

    /// <summary>kmemleak's word (<see cref="SlabLeakWord"/>); 0 when not tracked.</summary>
    public long LeakWord;

    /// <summary>The size the caller asked for (kmalloc), 0 when unknown.</summary>
    public uint Requested;

    /// <summary><see cref="Slab.ObjectFree"/>, <see cref="Slab.ObjectAllocated"/> or <see cref="Slab.ObjectQuarantined"/>.</summary>
    public byte State;
}
