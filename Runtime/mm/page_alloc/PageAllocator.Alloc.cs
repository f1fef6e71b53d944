using System;
using System.Threading;

namespace KmemGuard;

internal sealed partial class PageAllocator
{
    /// <summary>
    /// __alloc_pages: 2^order contiguous frames. The fast path takes from the zonelist (the
    /// preferred node's zones from the highest the mask allows down to DMA, then the other nodes)
    /// above the low watermark; the slow path may dip into the reserve as the mask allows, and a
    /// mask that may sleep reclaims and waits for frees. Returns null on failure (with a
    /// "page allocation failure" warning unless __GFP_NOWARN); never throws for lack of memory.
    /// </summary>
    public page? Alloc(gfp_t gfp, int order, int preferredNode, CallSite site)
    {
        if ((uint)order > Kernel.MAX_ORDER)
        {
            if ((gfp & Kernel.__GFP_NOWARN) == 0)
                _machine.Warn(KernelLog.WarningHeader(_machine, "mm/page_alloc.c", "__alloc_pages") +
                    $"__alloc_pages: order {order} > MAX_ORDER ({Kernel.MAX_ORDER}), mode:{GfpNames.Format(gfp)}");
            return null;
        }
        // should_fail_alloc_page: an injected failure returns NULL with no warning, as in the kernel.
        if (_machine.ShouldFailPage(gfp, order)) return null;
        KTask task = _machine.CurrentTask;
        page? block = GetPageFromFreelist(gfp, order, preferredNode, AllocFlags.WmarkLow, task)
            ?? AllocSlowPath(gfp, order, preferredNode, task);
        if (block == null)
        {
            if ((gfp & Kernel.__GFP_NOWARN) == 0) WarnAllocFailure(gfp, order, task);
            return null;
        }
        PrepareNewBlock(block, order, gfp, site, task);
        return block;
    }

    /// <summary>
    /// <see cref="Alloc"/> for a caller outside mm (the page API, large kmalloc): might_alloc
    /// first. Slab, vmalloc and per-CPU check at their own entry and call <see cref="Alloc"/>, so
    /// that one bad call gives one report.
    /// </summary>
    public page? AllocFromCaller(gfp_t gfp, int order, int preferredNode, CallSite site)
    {
        if (Kernel.gfpflags_allow_blocking(gfp)) Kernel.MightSleep(_machine, _machine.CurrentTask, site);
        return Alloc(gfp, order, preferredNode, site);
    }

    /// <summary>get_page_from_freelist: the first zone of the zonelist that has the pages above the mark.</summary>
    private page? GetPageFromFreelist(gfp_t gfp, int order, int preferredNode, AllocFlags flags, KTask task)
    {
        ZoneType highest = HighestZone(gfp);
        NumaNode[] nodes = _ram.Nodes;
        int first = (uint)preferredNode < (uint)nodes.Length ? preferredNode : _machine.Cpus[task.CpuId].Node;
        int nodeCount = (gfp & Kernel.__GFP_THISNODE) != 0 ? 1 : nodes.Length;
        for (int n = 0; n < nodeCount; n++)
        {
            Zone[] zones = nodes[(first + n) % nodes.Length].Zones;
            for (int z = zones.Length - 1; z >= 0; z--)
            {
                Zone zone = zones[z];
                if (zone.Type > highest) continue;
                int zoneIndex = ZoneIndex(zone);
                if (!WatermarkOk(zone, order, flags, _lowmemReserve[zoneIndex][(int)highest])) continue;
                page? block = order == 0 ? TakeFromPerCpu(zone, zoneIndex, (gfp & Kernel.__GFP_COLD) != 0, task) : TakeFromBuddy(zone, order);
                if (block != null) return block;
            }
        }
        return null;
    }

    private page? TakeFromBuddy(Zone zone, int order)
    {
        page? block;
        lock (zone.Lock) block = TakeBlockLocked(zone, order);
        if (block != null) Interlocked.Add(ref zone.FreePages, -(1L << order));
        return block;
    }

    /// <summary>The highest zone a mask may allocate from (gfp_zone); lower zones are the fallback.</summary>
    internal static ZoneType HighestZone(gfp_t gfp)
    {
        if ((gfp & Kernel.__GFP_DMA) != 0) return ZoneType.DMA;
        if ((gfp & Kernel.__GFP_DMA32) != 0) return ZoneType.DMA32;
        if ((gfp & Kernel.__GFP_HIGHMEM) != 0) return ZoneType.HighMem;
        return ZoneType.Normal;
    }

    private void PrepareNewBlock(page head, int order, gfp_t gfp, CallSite site, KTask task)
    {
        head.Flags = order > 0 ? PageFlags.Head : PageFlags.None;
        head.Order = order;
        head.RefCount = 1;
        head.Head = null;
        head.Owner = null;
        for (ulong i = 1; i < 1UL << order; i++)
        {
            page tail = _ram.PageAt(head.Pfn + i);
            tail.Flags = PageFlags.Tail;
            tail.Head = head;
            tail.RefCount = 0;
        }
        ulong bytes = (ulong)Kernel.PAGE_SIZE << order;
        Kasan?.Unpoison(PageVirt(head), bytes);
        head.AllocTrack = _machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak) ? new Track(task, site, _machine.Jiffies) : null;
        if ((gfp & Kernel.__GFP_ZERO) != 0) ClearBlock(head, bytes);
    }

    private unsafe void ClearBlock(page head, ulong bytes) =>
        new Span<byte>(_ram.Host(head.Pfn << Kernel.PAGE_SHIFT), (int)bytes).Clear();

    /// <summary>
    /// Frees a block allocated with <paramref name="order"/>, for subsystems that own their pages
    /// (slab, vmalloc, large kmalloc): the caller has checked that it is one, and the page's
    /// subsystem flags and owner are cleared here. Order 0 goes to this CPU's list (hot, or cold).
    /// </summary>
    public void Free(page head, int order, CallSite site, bool cold = false)
    {
        KTask task = _machine.CurrentTask;
        for (ulong i = 1; i < 1UL << order; i++)
        {
            page tail = _ram.PageAt(head.Pfn + i);
            tail.Flags = PageFlags.None;
            tail.Head = null;
        }
        head.Flags = PageFlags.None;
        head.RefCount = 0;
        head.Owner = null;
        if (_machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak))
            head.FreeTrack = new Track(task, site, _machine.Jiffies);
        Kasan?.Poison(PageVirt(head), (ulong)Kernel.PAGE_SIZE << order, Kasan.PageFree);
        if (order == 0)
        {
            GiveToPerCpu(head, cold, task);
        }
        else
        {
            Zone zone = head.Zone;
            lock (zone.Lock) FreeBlockLocked(head, order);
            Interlocked.Add(ref zone.FreePages, 1L << order);
        }
        WakeAllocators();
    }
}
