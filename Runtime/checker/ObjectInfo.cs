namespace KmemGuard;

/// <summary>What the checker knows about the block that holds an address.</summary>
internal sealed class ObjectInfo
{
    /// <summary>Start of the object (or page block, or vmalloc area).</summary>
    public ulong Start;

    /// <summary>Bytes the caller asked for.</summary>
    public ulong RequestedSize;

    /// <summary>The allocator family that owns the block.</summary>
    public MemoryFamily Family;

    /// <summary>The slab cache, for slab objects (kmalloc-128, scullc, ...).</summary>
    public string? CacheName;

    /// <summary>The cache's object size, for slab objects.</summary>
    public ulong CacheObjectSize;

    /// <summary>True while the block is allocated.</summary>
    public bool Allocated;

    public Track? AllocTrack;
    public Track? FreeTrack;
}

/// <summary>Something that owns memory and can say what lies at an address it owns.</summary>
internal interface IObjectOwner
{
    ObjectInfo? Describe(ulong address);
}
