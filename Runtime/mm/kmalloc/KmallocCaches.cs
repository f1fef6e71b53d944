using System;

namespace KmemGuard;

/// <summary>
/// kmalloc over the kmalloc-N caches (mm/slab_common.c): sizes up to KMALLOC_MAX_CACHE_SIZE
/// go to the smallest size class that fits (8 ... 8k with 96 and 192), GFP_DMA to the
/// dma-kmalloc-N twins; larger ones straight to the page allocator as compound pages.
/// </summary>
internal sealed unsafe class KmallocCaches
{
    private const int Classes = 14;

    /// <summary>size_index[]: the class of sizes up to 192, by (size - 1) / 8.</summary>
    private static readonly byte[] s_sizeIndex = { 3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2 };

    private readonly SlabAllocator _slab;
    private readonly kmem_cache_t[] _normal = new kmem_cache_t[Classes];
    private readonly kmem_cache_t[] _dma = new kmem_cache_t[Classes];

    public KmallocCaches(SlabAllocator slab)
    {
        _slab = slab;
        foreach (bool dma in new[] { false, true })
        {
            foreach (int index in new[] { 3, 4, 5, 6, 1, 7, 2, 8, 9, 10, 11, 12, 13 })
            {
                uint size = SizeOf(index);
                string name = (dma ? "dma-kmalloc-" : "kmalloc-") + (size >= 1024 ? $"{size >> 10}k" : size.ToString());
                // Power-of-two classes are naturally aligned, as kmalloc guarantees.
                uint align = System.Numerics.BitOperations.IsPow2(size) ? size : kmem_cache_t.MinAlign;
                (dma ? _dma : _normal)[index] = slab.CreateCache(name, size, align, dma ? Kernel.SLAB_CACHE_DMA : 0, null, null, null, isKmalloc: true)!;
            }
        }
    }

    public static uint SizeOf(int index) => index switch { 1 => 96, 2 => 192, _ => 1u << index };

    /// <summary>kmalloc_index: the size class of 1 ... KMALLOC_MAX_CACHE_SIZE bytes.</summary>
    public static int IndexOf(ulong size) =>
        size <= 192 ? s_sizeIndex[(size - 1) >> 3] : 64 - System.Numerics.BitOperations.LeadingZeroCount(size - 1);

    public kmem_cache_t CacheFor(ulong size, gfp_t flags) => ((flags & Kernel.__GFP_DMA) != 0 ? _dma : _normal)[IndexOf(size)];

    public ulong Alloc(ulong size, gfp_t flags, int node, CallSite site)
    {
        if (size - 1 >= Kernel.KMALLOC_MAX_CACHE_SIZE)
            return size == 0 ? Kernel.ZERO_SIZE_PTR.Address : AllocLarge(size, flags, node, site);
        return _slab.Alloc(CacheFor(size, flags), flags, node, (uint)size, site);
    }

    /// <summary>kmalloc_large: a compound block of get_order(size) pages; KASAN sees only the requested bytes.</summary>
    private ulong AllocLarge(ulong size, gfp_t flags, int node, CallSite site)
    {
        if ((flags & SlabAllocator.GfpSlabBugMask) != 0) flags = _slab.FixFlags(flags, site);
        if (size > Kernel.KMALLOC_MAX_SIZE)
        {
            if ((flags & Kernel.__GFP_NOWARN) == 0)
                _slab.Warn($"WARNING: kmalloc of {size} bytes: larger than KMALLOC_MAX_SIZE ({Kernel.KMALLOC_MAX_SIZE}), at {site}");
            return 0;
        }
        int order = SlabAllocator.PageOrder(size);
        page? head = _slab.Machine.PageAllocator.AllocFromCaller(flags | Kernel.__GFP_COMP, order, node, site);
        if (head == null)
        {
            if ((flags & Kernel.__GFP_NOWARN) == 0)
                _slab.Warn($"{_slab.CurrentTask().Comm}: page allocation failure: order:{order}, mode:{GfpNames.Format(flags)} (kmalloc of {size} bytes at {site})");
            return 0;
        }
        ulong address = PageAllocator.PageVirt(head);
        head.Owner = new LargeKmallocBlock(head, size);
        head.Flags |= PageFlags.LargeKmalloc;
        _slab.AccountLargeKmalloc(order, +1);
        SetLargeRequested(head, size);
        if (head.AllocTrack is { } track) _slab.Machine.KmemleakAlloc(address, size, MemoryFamily.Kmalloc, null, track);
        return address;
    }

    /// <summary>KASAN: the bytes after the requested size of a large block are a page redzone.</summary>
    private void SetLargeRequested(page head, ulong requested)
    {
        ((LargeKmallocBlock)head.Owner!).Requested = requested;
        if (_slab.Kasan is not { } kasan) return;
        ulong address = PageAllocator.PageVirt(head);
        ulong accessible = (requested + Kasan.GranuleSize - 1) & ~(Kasan.GranuleSize - 1);
        ulong bytes = (ulong)Kernel.PAGE_SIZE << head.Order;
        if (accessible < bytes) kasan.Poison(address + accessible, bytes - accessible, Kasan.PageRedzone);
        kasan.Unpoison(address, requested);
    }

    /// <summary>kfree and kfree_sensitive: a slab object (of any cache, as current kernels allow) or a large block.</summary>
    public void Free(ulong address, string function, bool sensitive, CallSite site)
    {
        page? head = _slab.HeadPageOf(address);
        if (head?.Owner is Slab slab)
        {
            if (_slab.CheckFrees && !_slab.ValidSlabFree(slab, null, address, function)) return;
            if (sensitive) new Span<byte>(_slab.HostOf(address), (int)UsableSize(slab, address)).Clear();
            _slab.FreeObject(slab.Cache, slab, address, site);
            return;
        }
        if (head?.Owner is LargeKmallocBlock && head.Has(PageFlags.LargeKmalloc))
        {
            if (address != PageAllocator.PageVirt(head))
            {
                if (_slab.CheckFrees)
                    FreeReport.InvalidFree(_slab.Machine, function, address, _slab.Machine.Memory.Describe(address),
                        $"The address is {address - PageAllocator.PageVirt(head)} bytes into a kmalloc block: not its start");
                return;
            }
            if (sensitive) new Span<byte>(_slab.HostOf(address), Kernel.PAGE_SIZE << head.Order).Clear();
            _slab.AccountLargeKmalloc(head.Order, -1);
            _slab.Machine.KmemleakFree(address);
            _slab.Machine.PageAllocator.Free(head, head.Order, site);
            return;
        }
        _slab.ReportNonSlabFree(address, function, "free_pages()");
    }

    /// <summary>What a kmalloc block may hold without overwriting a red zone: the requested size under slub_debug, else the object size.</summary>
    private static uint UsableSize(Slab slab, ulong address)
    {
        kmem_cache_t cache = slab.Cache;
        int index = slab.StrideIndex(address);
        return cache.RedZone ? slab.RequestedSize(index) : cache.ObjectSize;
    }

    /// <summary>ksize: the usable size; afterwards all of it is the caller's (KASAN and slub_debug accept it), as in the kernel.</summary>
    public ulong Ksize(ulong address)
    {
        page? head = _slab.HeadPageOf(address);
        if (head?.Owner is Slab slab)
        {
            int index = slab.StrideIndex(address);
            if (index < 0) return 0;
            kmem_cache_t cache = slab.Cache;
            ulong obj = slab.ObjectAddress(index);
            if (slab.Objects == null || slab.Objects[index].State == Slab.ObjectAllocated)
            {
                if (slab.Objects != null) slab.Objects[index].Requested = cache.ObjectSize;
                _slab.KasanSetRequested(cache, obj, cache.ObjectSize);
            }
            return cache.ObjectSize;
        }
        if (head?.Owner is LargeKmallocBlock)
        {
            ulong bytes = (ulong)Kernel.PAGE_SIZE << head.Order;
            SetLargeRequested(head, bytes);
            return bytes;
        }
        return 0;
    }

    /// <summary>
    /// krealloc: in place when the new size fits the block (ksize), else a new block with
    /// min(old requested, new) bytes copied and the old one freed. On failure the old block stays.
    /// </summary>
    public ulong Realloc(ulong address, ulong newSize, gfp_t flags, CallSite site)
    {
        page? head = _slab.HeadPageOf(address);
        ulong usable, old;
        if (head?.Owner is Slab slab)
        {
            if (_slab.CheckFrees && !_slab.ValidSlabFree(slab, null, address, "krealloc")) return 0;
            int index = slab.StrideIndex(address);
            usable = slab.Cache.ObjectSize;
            old = slab.Objects != null && slab.Objects[index].Requested != 0 ? slab.Objects[index].Requested : usable;
            if (newSize <= usable)
            {
                ResizeInPlace(slab, index, address, (uint)old, (uint)newSize, flags);
                return address;
            }
        }
        else if (head?.Owner is LargeKmallocBlock block && address == PageAllocator.PageVirt(head))
        {
            usable = (ulong)Kernel.PAGE_SIZE << head.Order;
            old = block.Requested;
            if (newSize <= usable)
            {
                if ((flags & Kernel.__GFP_ZERO) != 0 && newSize > old) new Span<byte>(_slab.HostOf(address + old), (int)(newSize - old)).Clear();
                SetLargeRequested(head, newSize);
                return address;
            }
        }
        else
        {
            _slab.ReportNonSlabFree(address, "krealloc", "free_pages()");
            return 0;
        }
        ulong fresh = Alloc(newSize, flags, -1, site);
        if (fresh == 0) return 0;
        Buffer.MemoryCopy(_slab.HostOf(address), _slab.HostOf(fresh), newSize, Math.Min(old, newSize));
        Free(address, "krealloc", sensitive: false, site);
        return fresh;
    }

    private void ResizeInPlace(Slab slab, int index, ulong obj, uint old, uint requested, gfp_t flags)
    {
        kmem_cache_t cache = slab.Cache;
        byte* p = slab.HostOf(obj);
        if (requested > old && (flags & Kernel.__GFP_ZERO) != 0) new Span<byte>(p + old, (int)(requested - old)).Clear();
        if (requested < old && cache.RedZone && cache.IsKmalloc) new Span<byte>(p + requested, (int)(old - requested)).Fill(SlabAllocator.SLUB_RED_ACTIVE);
        if (slab.Objects != null) slab.Objects[index].Requested = requested;
        _slab.KasanSetRequested(cache, obj, requested);
    }
}

/// <summary>The owner of a large kmalloc block's head page: what KASAN reports say about it.</summary>
internal sealed class LargeKmallocBlock : IObjectOwner
{
    private readonly page _head;

    public LargeKmallocBlock(page head, ulong requested)
    {
        _head = head;
        Requested = requested;
    }

    public ulong Requested;

    public ObjectInfo? Describe(ulong address) => new()
    {
        Start = PageAllocator.PageVirt(_head),
        RequestedSize = Requested,
        Family = MemoryFamily.Kmalloc,
        Allocated = _head.RefCount > 0 && ReferenceEquals(_head.Owner, this),
        AllocTrack = _head.AllocTrack,
        FreeTrack = _head.FreeTrack,
    };
}
