namespace KmemGuard;

/// <summary>
/// vmalloc (mm/vmalloc.c): virtually contiguous areas in the vmalloc space, each backed by order-0
/// pages taken one by one from the buddy allocator and mapped through the page table of the
/// vmalloc region, with an unmapped guard page after each. Also vmap/vunmap of given pages.
/// Every method is safe from many threads: the space has its lock, page allocation takes none.
/// </summary>
internal sealed class VmallocAllocator : IObjectOwner
{
    private readonly Machine _machine;
    private readonly AliasRegion _region;

    public VmallocAllocator(Machine machine)
    {
        _machine = machine;
        _region = machine.Memory.Vmalloc;
        Space = new VmapSpace(_region.Start, _region.Size);
    }

    public VmapSpace Space { get; }

    private static ulong PageAlign(ulong size) => (size + (ulong)Kernel.PAGE_SIZE - 1) & ~((ulong)Kernel.PAGE_SIZE - 1);

    private Track? NewTrack(CallSite site) =>
        _machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak) ? new Track(_machine.CurrentTask, site, _machine.Jiffies) : null;

    /// <summary>__vmalloc_node: NULL for size 0, for more than the machine's RAM, or when pages or addresses run out.</summary>
    public KPtr Alloc(ulong size, gfp_t gfp, int node, VmFlags flags, CallSite site)
    {
        if (size == 0) return Kernel.NULL;
        // The pages need no direct mapping, so any zone will do unless the caller asked for a low one.
        if ((gfp & (Kernel.__GFP_DMA | Kernel.__GFP_DMA32)) == 0) gfp |= Kernel.__GFP_HIGHMEM;
        if (size > _machine.Ram.TotalBytes)
            return Fail(gfp, size, "exceeds total pages");
        VmArea? area = Space.Reserve(PageAlign(size), size, VmFlags.Alloc | flags, site);
        if (area == null) return Fail(gfp, size, "vm_struct allocation failed");
        var pages = new page[(int)(area.Size >> Kernel.PAGE_SHIFT)];
        area.Pages = pages;
        for (int i = 0; i < pages.Length; i++)
        {
            // The page allocator stays quiet: a failure is vmalloc's to report (vm_area_alloc_pages).
            page? frame = _machine.PageAllocator.Alloc(gfp | Kernel.__GFP_NOWARN, 0, node, site);
            if (frame == null)
            {
                for (int got = 0; got < i; got++) _machine.PageAllocator.Free(pages[got], 0, site);
                Space.Abandon(area);
                return Fail(gfp, (ulong)i << Kernel.PAGE_SHIFT, "failed to allocate pages");
            }
            frame.Flags |= PageFlags.Vmalloc;
            frame.Owner = area;
            pages[i] = frame;
        }
        // All pages first, then the page table in as few host mappings as the frames allow.
        _region.MapRange(area.Start, pages, pages.Length);
        area.NrPages = pages.Length;
        _machine.Stats.Add(MemStat.VmallocPages, pages.Length);
        area.AllocTrack = NewTrack(site);
        if (_machine.Memory.Kasan is { } kasan)
        {
            // Exactly `size` bytes are accessible: the tail of the last page and the guard page are not.
            kasan.Poison(area.Start, area.End - area.Start, Kasan.VmallocInvalid);
            kasan.Unpoison(area.Start, size);
        }
        if (area.AllocTrack is { } track) _machine.KmemleakAlloc(area.Start, size, MemoryFamily.Vmalloc, null, track);
        return new KPtr(area.Start);
    }

    /// <summary>warn_alloc's line in the kernel log (unless __GFP_NOWARN), then NULL.</summary>
    private KPtr Fail(gfp_t gfp, ulong size, string why)
    {
        if ((gfp & Kernel.__GFP_NOWARN) == 0)
            _machine.Warn($"{_machine.CurrentTask.Comm}: vmalloc error: size {size}, {why}, mode:{GfpNames.Format(gfp)}, nodemask=(null)");
        return Kernel.NULL;
    }

    /// <summary>Unmaps what an area maps; the pages go back to the buddy allocator when the area owns them.</summary>
    private void UnmapPages(VmArea area, CallSite site)
    {
        _region.UnmapRange(area.Start, area.NrPages);
        if (area.Pages != null)
            for (int i = 0; i < area.NrPages; i++) _machine.PageAllocator.Free(area.Pages[i], 0, site);
    }

    /// <summary>vfree: a bad free is reported first and not done.</summary>
    public void Free(ulong address, CallSite site) => Remove(address, VmFlags.Alloc, "vfree", site);

    /// <summary>vunmap: the pages stay their owner's.</summary>
    public void Unmap(ulong address, CallSite site) => Remove(address, VmFlags.Map, "vunmap", site);

    private void Remove(ulong address, VmFlags kind, string function, CallSite site)
    {
        if (!_region.Contains(address))
        {
            ReportForeign(address, function, site);
            return;
        }
        VmLookup found = Space.Take(address, kind, NewTrack(site), out VmArea? area);
        if (found != VmLookup.Found || area == null)
        {
            ReportBadFree(found, address, area, function, site);
            return;
        }
        if (area.Pages != null)
        {
            _machine.KmemleakFree(area.Start);
            _machine.Stats.Add(MemStat.VmallocPages, -area.NrPages);
        }
        UnmapPages(area, site);
        _machine.Memory.Kasan?.Poison(area.Start, area.End - area.Start, Kasan.VmallocInvalid);
        Space.Release(area);
    }

    private void ReportForeign(ulong address, string function, CallSite site)
    {
        if (!_machine.IsChecking(Checks.Frees)) return;
        ObjectInfo? info = _machine.Memory.Describe(address);
        string owner = info != null ? "it belongs to " + KasanReport.FamilyName(info.Family) : "it is not in the vmalloc area";
        FreeReport.Mismatched(_machine, Culprit(site, function), address, info,
            $"Trying to {function}() nonexistent vm area ({address:x16}): {owner}");
    }

    private void ReportBadFree(VmLookup found, ulong address, VmArea? area, string function, CallSite site)
    {
        if (!_machine.IsChecking(Checks.Frees)) return;
        ObjectInfo? info = area?.Describe(address);
        string culprit = Culprit(site, function);
        switch (found)
        {
            case VmLookup.AlreadyFreed:
                FreeReport.DoubleFree(_machine, culprit, address, info);
                break;
            case VmLookup.WrongKind:
                FreeReport.Mismatched(_machine, culprit, address, info, (area!.Flags & VmFlags.Map) != 0
                    ? $"Trying to {function}() a vmap() mapping ({address:x16}): undo it with vunmap()"
                    : $"Trying to {function}() a vmalloc() area ({address:x16}): free it with vfree()");
                break;
            case VmLookup.NotStart:
                FreeReport.InvalidFree(_machine, culprit, address, info,
                    $"Trying to {function}() bad address ({address:x16}): it is {address - area!.Start} bytes into the area at {area.Start:x16}");
                break;
            default:
                FreeReport.InvalidFree(_machine, culprit, address, null, $"Trying to {function}() nonexistent vm area ({address:x16})");
                break;
        }
    }

    /// <summary>KASAN names the function that called the free.</summary>
    private static string Culprit(CallSite site, string function) => site.Member.Length > 0 ? site.Member : function;

    /// <summary>vmap: maps <paramref name="pages"/> contiguously; NULL when the space is full.</summary>
    public KPtr Map(page[] pages, CallSite site)
    {
        ulong size = (ulong)pages.Length << Kernel.PAGE_SHIFT;
        VmArea? area = Space.Reserve(size, size, VmFlags.Map, site);
        if (area == null) return Kernel.NULL;
        _region.MapRange(area.Start, pages, pages.Length);
        area.NrPages = pages.Length;
        area.AllocTrack = NewTrack(site);
        if (_machine.Memory.Kasan is { } kasan)
        {
            kasan.Poison(area.End - (ulong)Kernel.PAGE_SIZE, (ulong)Kernel.PAGE_SIZE, Kasan.VmallocInvalid);
            kasan.Unpoison(area.Start, size);
        }
        return new KPtr(area.Start);
    }

    /// <summary>The page mapped at a vmalloc address (vmalloc_to_page), or null.</summary>
    public page? PageAt(ulong address) => _region.Contains(address) ? _region.FrameAt(address) : null;

    public ObjectInfo? Describe(ulong address) => Space.Find(address)?.Describe(address);
}
