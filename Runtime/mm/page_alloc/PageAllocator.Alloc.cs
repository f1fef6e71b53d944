using System;

namespace KmemGuard;

internal sealed partial class PageAllocator
{
    /// <summary>
    /// Allocates 2^order contiguous frames: zones from the highest the mask allows down to DMA,
    /// the preferred node first. Returns null on failure; never throws for lack of memory.
    /// </summary>
    public page? Alloc(gfp_t gfp, int order, int preferredNode, CallSite site)
    {
        if ((uint)order > Kernel.MAX_ORDER) return null;
        page? block = TakeFromZones(gfp, order, preferredNode);
        if (block == null) return null;
        PrepareNewBlock(block, order, gfp, site);
        return block;
    }

    private page? TakeFromZones(gfp_t gfp, int order, int preferredNode)
    {
        ZoneType highest = HighestZone(gfp);
        int nodes = _ram.Nodes.Length;
        int first = preferredNode >= 0 && preferredNode < nodes ? preferredNode : _machine.Cpus[_machine.CurrentTask.CpuId].Node;
        for (int n = 0; n < nodes; n++)
        {
            NumaNode node = _ram.Nodes[(first + n) % nodes];
            for (int z = node.Zones.Length - 1; z >= 0; z--)
            {
                Zone zone = node.Zones[z];
                if (zone.Type > highest) continue;
                lock (zone.Lock)
                {
                    page? block = TakeBlockLocked(zone, order);
                    if (block != null) return block;
                }
            }
        }
        return null;
    }

    /// <summary>The highest zone a mask may allocate from (gfp_zone); lower zones are the fallback.</summary>
    internal static ZoneType HighestZone(gfp_t gfp)
    {
        if ((gfp & Kernel.__GFP_DMA) != 0) return ZoneType.DMA;
        if ((gfp & Kernel.__GFP_DMA32) != 0) return ZoneType.DMA32;
        if ((gfp & Kernel.__GFP_HIGHMEM) != 0) return ZoneType.HighMem;
        return ZoneType.Normal;
    }

    private void PrepareNewBlock(page head, int order, gfp_t gfp, CallSite site)
    {
        head.Flags = (head.Flags & ~(PageFlags.Buddy | PageFlags.PerCpuList)) | (order > 0 ? PageFlags.Head : PageFlags.None);
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
        ulong virt = PageVirt(head);
        ulong bytes = (ulong)Kernel.PAGE_SIZE << order;
        if (_machine.Memory.Kasan is { } kasan) kasan.Unpoison(virt, bytes);
        if (_machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak))
            head.AllocTrack = new Track(_machine.CurrentTask, site, _machine.Jiffies);
        if ((gfp & Kernel.__GFP_ZERO) != 0) Kernel.memset(new KPtr(virt), 0, bytes);
    }

    /// <summary>Frees a block allocated with <paramref name="order"/>. The caller has checked that it is one.</summary>
    public void Free(page head, int order, CallSite site)
    {
        for (ulong i = 1; i < 1UL << order; i++)
        {
            page tail = _ram.PageAt(head.Pfn + i);
            tail.Flags = PageFlags.None;
            tail.Head = null;
        }
        head.Flags &= ~(PageFlags.Head | PageFlags.Slab | PageFlags.LargeKmalloc | PageFlags.Vmalloc | PageFlags.PerCpu);
        head.RefCount = 0;
        head.Owner = null;
        if (_machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak))
            head.FreeTrack = new Track(_machine.CurrentTask, site, _machine.Jiffies);
        _machine.Memory.Kasan?.Poison(PageVirt(head), (ulong)Kernel.PAGE_SIZE << order, Kasan.PageFree);
        lock (head.Zone.Lock) FreeBlockLocked(head, order);
    }

    /// <summary>Free pages in every zone.</summary>
    public long FreePages
    {
        get
        {
            long total = 0;
            foreach (Zone zone in _ram.Zones) total += System.Threading.Volatile.Read(ref zone.FreePages);
            return total;
        }
    }
}
