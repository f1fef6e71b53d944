using System;
using System.Collections.Generic;
using System.Text;

namespace KmemGuard;

/// <summary>
/// The boot-time allocator (mm/memblock.c behind the bootmem API): until the buddy allocator
/// starts, it hands out RAM top-down from the ranges no one reserved. Each allocation stays
/// reserved for ever (its frames PG_reserved, owned by this allocator), unless free_bootmem
/// gives it back before the hand-over; at the hand-over every unreserved page goes to the buddy lists.
/// </summary>
internal sealed class Bootmem : IObjectOwner
{
    /// <summary>SMP_CACHE_BYTES: alloc_bootmem's alignment.</summary>
    public const ulong SmpCacheBytes = 64;

    private readonly Machine _machine;
    private readonly object _gate = new();

    /// <summary>memblock.reserved: sorted, disjoint [Start, End) physical ranges.</summary>
    private readonly List<Region> _reserved = new();

    /// <summary>Live allocations, sorted by start: what Describe and kmemleak see.</summary>
    private readonly List<Region> _allocations = new();

    private record struct Region(ulong Start, ulong End, Track? Track);

    public Bootmem(Machine machine) => _machine = machine;

    /// <summary>
    /// memblock_alloc_range: the highest free range of <paramref name="size"/> bytes below
    /// <paramref name="limit"/>, aligned, reserved and zeroed. Returns its physical address, or
    /// null when no free range fits.
    /// </summary>
    public ulong? Alloc(ulong size, ulong align, ulong limit, CallSite site)
    {
        if (size == 0 || size > _machine.Ram.TotalBytes) return null;
        ulong end = Math.Min(limit, _machine.Ram.TotalBytes);
        lock (_gate)
        {
            ulong gapEnd = end;
            for (int i = _reserved.Count; i >= 0; i--)
            {
                ulong gapStart = i == 0 ? 0 : Math.Min(_reserved[i - 1].End, end);
                if (gapEnd >= size && gapEnd - size >= gapStart)
                {
                    ulong start = (gapEnd - size) & ~(align - 1);
                    if (start >= gapStart)
                    {
                        Take(start, start + size, site);
                        return start;
                    }
                }
                if (i > 0) gapEnd = Math.Min(_reserved[i - 1].Start, end);
            }
        }
        return null;
    }

    private unsafe void Take(ulong start, ulong end, CallSite site)
    {
        Track? track = _machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak) ? new Track(_machine.CurrentTask, site, _machine.Jiffies) : null;
        Insert(_reserved, new Region(start, end, null));
        MergeNeighbours(_reserved);
        Insert(_allocations, new Region(start, end, track));
        for (ulong at = start; at < end; at += int.MaxValue)
            new Span<byte>(_machine.Ram.Host(at), (int)Math.Min(end - at, int.MaxValue)).Clear();
        for (ulong pfn = start >> Kernel.PAGE_SHIFT; pfn << Kernel.PAGE_SHIFT < end; pfn++)
        {
            page frame = _machine.Ram.PageAt(pfn);
            frame.Owner = this;
            frame.AllocTrack = track;
        }
    }

    /// <summary>memblock_free: [start, start+size) is no longer reserved (and no longer an allocation).</summary>
    public void Free(ulong start, ulong size)
    {
        ulong end = Math.Min(start + size, _machine.Ram.TotalBytes);
        if (size == 0 || start >= end) return;
        lock (_gate)
        {
            Subtract(_reserved, start, end);
            Subtract(_allocations, start, end);
            for (ulong pfn = start >> Kernel.PAGE_SHIFT; pfn << Kernel.PAGE_SHIFT < end; pfn++)
            {
                ulong pageStart = pfn << Kernel.PAGE_SHIFT;
                if (FindOverlap(_allocations, pageStart, pageStart + (ulong)Kernel.PAGE_SIZE) < 0)
                {
                    page frame = _machine.Ram.PageAt(pfn);
                    frame.Owner = null;
                    frame.AllocTrack = null;
                }
            }
        }
    }

    /// <summary>
    /// memblock_free_all: every page no reservation touches goes to the buddy allocator. Pages
    /// partly reserved stay reserved, as PFN_UP/PFN_DOWN leave them in the kernel.
    /// </summary>
    public void HandOver()
    {
        var free = new List<(ulong StartPfn, ulong EndPfn)>();
        lock (_gate)
        {
            ulong cursor = 0;
            foreach (Region r in _reserved)
            {
                AddFree(free, cursor, r.Start);
                cursor = r.End;
            }
            AddFree(free, cursor, _machine.Ram.TotalBytes);
        }
        foreach (var (startPfn, endPfn) in free)
            foreach (Zone zone in _machine.Ram.Zones)
            {
                ulong from = Math.Max(startPfn, zone.StartPfn), to = Math.Min(endPfn, zone.EndPfn);
                if (from < to) _machine.PageAllocator.FreeBootRange(from, to);
            }
    }

    private static void AddFree(List<(ulong, ulong)> free, ulong start, ulong end)
    {
        ulong startPfn = (start + (ulong)Kernel.PAGE_SIZE - 1) >> Kernel.PAGE_SHIFT, endPfn = end >> Kernel.PAGE_SHIFT;
        if (startPfn < endPfn) free.Add((startPfn, endPfn));
    }

    /// <summary>The live allocations as direct-map (start, size): kmemleak scans them as roots.</summary>
    public IReadOnlyList<(ulong Start, ulong Size)> Allocations()
    {
        lock (_gate)
        {
            var list = new List<(ulong, ulong)>(_allocations.Count);
            foreach (Region r in _allocations) list.Add((KernelMemory.ToVirt(r.Start), r.End - r.Start));
            return list;
        }
    }

    public ObjectInfo? Describe(ulong address)
    {
        ulong phys = KernelMemory.ToPhys(address);
        lock (_gate)
        {
            int i = FindOverlap(_allocations, phys, phys + 1);
            if (i < 0) return null;
            Region r = _allocations[i];
            return new ObjectInfo
            {
                Start = KernelMemory.ToVirt(r.Start),
                RequestedSize = r.End - r.Start,
                Family = MemoryFamily.Bootmem,
                Allocated = true,
                AllocTrack = r.Track,
            };
        }
    }

    private static void Insert(List<Region> list, Region region)
    {
        int i = 0;
        while (i < list.Count && list[i].Start < region.Start) i++;
        list.Insert(i, region);
    }

    private static void MergeNeighbours(List<Region> list)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            if (list[i - 1].End < list[i].Start) continue;
            list[i - 1] = list[i - 1] with { End = Math.Max(list[i - 1].End, list[i].End) };
            list.RemoveAt(i);
        }
    }

    private static void Subtract(List<Region> list, ulong start, ulong end)
    {
        for (int i = list.Count - 1; i >= 0; i--)
        {
            Region r = list[i];
            if (r.End <= start || r.Start >= end) continue;
            list.RemoveAt(i);
            if (r.End > end) list.Insert(i, r with { Start = end });
            if (r.Start < start) list.Insert(i, r with { End = start });
        }
    }

    private static int FindOverlap(List<Region> list, ulong start, ulong end)
    {
        for (int i = 0; i < list.Count; i++)
            if (list[i].Start < end && list[i].End > start) return i;
        return -1;
    }

    /// <summary>WARN text for a bootmem call after the hand-over (memblock_alloc_internal's WARN_ON_ONCE(slab_is_available())).</summary>
    public string AfterBootText(string function, ulong size)
    {
        KTask task = _machine.CurrentTask;
        var text = new StringBuilder(KernelLog.WarningHeader(_machine, "mm/memblock.c", "memblock_alloc_internal"));
        text.Append(function).Append('(').Append(size).Append(") called after boot: bootmem is gone once the buddy allocator runs; use kmalloc() or alloc_pages()\n");
        KasanReport.AppendCpuLine(text, task);
        text.Append("Call Trace:\n").Append(StackDepot.Walk());
        text.Append("---[ end trace 0000000000000000 ]---\n");
        return text.ToString();
    }
}
