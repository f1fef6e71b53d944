using System;

namespace KmemGuard;

/// <summary>State bits of a page frame (include/linux/page-flags.h, the ones the simulation needs).</summary>
[Flags]
internal enum PageFlags
{
    None = 0,
    /// <summary>Free, the first page of a block on a buddy free list (PG_buddy).</summary>
    Buddy = 1 << 0,
    /// <summary>Never given to the buddy allocator (PG_reserved): bootmem, holes.</summary>
    Reserved = 1 << 1,
    /// <summary>Part of a slab (PG_slab).</summary>
    Slab = 1 << 2,
    /// <summary>First page of a higher-order allocation.</summary>
    Head = 1 << 3,
    /// <summary>Later page of a higher-order allocation.</summary>
    Tail = 1 << 4,
    /// <summary>Free, on a CPU's hot/cold list.</summary>
    PerCpuList = 1 << 5,
    /// <summary>Backs a vmalloc area.</summary>
    Vmalloc = 1 << 6,
    /// <summary>Backs a per-CPU area.</summary>
    PerCpu = 1 << 7,
    /// <summary>A kmalloc block larger than KMALLOC_MAX_CACHE_SIZE.</summary>
    LargeKmalloc = 1 << 8,
}

/// <summary>
/// The kernel's <c>struct page</c>: one descriptor per physical page frame. Allocation failure
/// returns <c>null</c> where the kernel returns a NULL <c>struct page *</c>.
/// </summary>
public sealed class page
{
    internal page(ulong pfn, Zone zone)
    {
        Pfn = pfn;
        Zone = zone;
    }

    internal ulong Pfn { get; }
    internal Zone Zone { get; }
    internal PageFlags Flags;

    /// <summary>Order of the free block (Buddy) or of the allocation (Head).</summary>
    internal int Order;

    /// <summary>The page's _refcount: 0 when free.</summary>
    internal int RefCount;

    /// <summary>List links (buddy free lists, per-CPU lists, slab lists).</summary>
    internal page? Next, Prev;

    /// <summary>For a tail page, the head of its allocation.</summary>
    internal page? Head;

    /// <summary>What the page belongs to: a slab, a vmalloc area, a per-CPU chunk.</summary>
    internal object? Owner;

    /// <summary>Who allocated and who last freed the page (page_owner).</summary>
    internal Track? AllocTrack, FreeTrack;

    internal bool Has(PageFlags flags) => (Flags & flags) != 0;

    internal page HeadPage => Head ?? this;

    public override string ToString() => $"page pfn:{Pfn:x} zone:{Zone.Name} order:{Order} flags:{Flags}";
}
