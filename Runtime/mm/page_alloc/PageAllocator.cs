using System;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// The buddy allocator (mm/page_alloc.c): per zone and order a free list; allocation takes the
/// smallest free block of at least the order and splits it, free merges a block with its buddy
/// while the buddy is free and of the same order. Order-0 pages go through per-CPU hot/cold
/// lists first (see PageAllocator.PerCpu.cs).
/// </summary>
internal sealed partial class PageAllocator
{
    private readonly Machine _machine;
    private readonly PhysicalMemory _ram;

    private readonly Kasan? _kasan;

    /// <summary>The machine's KASAN, held here so that every page pair does not go through the machine for it.</summary>
    private Kasan? Kasan => Machine.ChecksCompiledIn ? _kasan : null;

    public PageAllocator(Machine machine)
    {
        _machine = machine;
        _ram = machine.Ram;
        _kasan = machine.Memory.Kasan;
        foreach (Zone zone in _ram.Zones)
            for (ulong pfn = zone.StartPfn; pfn < zone.EndPfn; pfn++) _ram.PageAt(pfn).Flags = PageFlags.Reserved;
        _lowmemReserve = new long[_ram.Zones.Length][];
        for (int z = 0; z < _lowmemReserve.Length; z++) _lowmemReserve[z] = new long[Enum.GetValues<ZoneType>().Length];
        _pcp = new PerCpuPages[_ram.Zones.Length][];
        for (int z = 0; z < _pcp.Length; z++)
        {
            _pcp[z] = new PerCpuPages[machine.Cpus.Length];
            for (int cpu = 0; cpu < machine.Cpus.Length; cpu++) _pcp[z][cpu] = new PerCpuPages();
        }
    }

    /// <summary>Gives every frame to the buddy allocator (a boot without bootmem).</summary>
    public void FreeAllRam()
    {
        foreach (Zone zone in _ram.Zones) FreeBootRange(zone.StartPfn, zone.EndPfn);
    }

    /// <summary>Hands reserved frames [startPfn, endPfn) to the buddy lists, in the largest aligned blocks (__free_pages_core).</summary>
    public void FreeBootRange(ulong startPfn, ulong endPfn)
    {
        ulong pfn = startPfn;
        while (pfn < endPfn)
        {
            int order = Kernel.MAX_ORDER;
            while (order > 0 && ((pfn & ((1UL << order) - 1)) != 0 || pfn + (1UL << order) > endPfn)) order--;
            page head = _ram.PageAt(pfn);
            Zone zone = head.Zone;
            lock (zone.Lock)
            {
                for (ulong i = 0; i < 1UL << order; i++)
                {
                    page frame = _ram.PageAt(pfn + i);
                    frame.Flags = PageFlags.None;
                    frame.Owner = null;
                    frame.RefCount = 0;
                }
                zone.ManagedPages += 1L << order;
                Interlocked.Add(ref zone.FreePages, 1L << order);
                FreeBlockLocked(head, order);
            }
            Kasan?.Poison(PageVirt(head), (ulong)Kernel.PAGE_SIZE << order, Kasan.PageFree);
            pfn += 1UL << order;
        }
        RecomputeWatermarks();
    }

    /// <summary>The direct-map address of a frame.</summary>
    public static ulong PageVirt(page frame) => KernelMemory.ToVirt(frame.Pfn << Kernel.PAGE_SHIFT);

    /// <summary>
    /// Takes a block of exactly <paramref name="order"/> from the zone's free lists, splitting a
    /// larger one. The caller accounts for the zone's free pages.
    /// </summary>
    private page? TakeBlockLocked(Zone zone, int order)
    {
        for (int current = order; current <= Kernel.MAX_ORDER; current++)
        {
            FreeArea area = zone.FreeAreas[current];
            page? block = area.First;
            if (block == null) continue;
            area.Remove(block);
            block.Flags &= ~PageFlags.Buddy;
            while (current > order)
            {
                current--;
                page half = _ram.PageAt(block.Pfn + (1UL << current));
                half.Order = current;
                half.Flags |= PageFlags.Buddy;
                zone.FreeAreas[current].Push(half);
            }
            block.Order = order;
            return block;
        }
        return null;
    }

    /// <summary>
    /// Puts a block back, merging it with its buddy for as long as the buddy is free. The caller
    /// accounts for the zone's free pages.
    /// </summary>
    private void FreeBlockLocked(page block, int order)
    {
        Zone zone = block.Zone;
        ulong pfn = block.Pfn;
        while (order < Kernel.MAX_ORDER)
        {
            ulong buddyPfn = pfn ^ (1UL << order);
            if (!zone.Contains(buddyPfn)) break;
            page buddy = _ram.PageAt(buddyPfn);
            if (!buddy.Has(PageFlags.Buddy) || buddy.Order != order) break;
            zone.FreeAreas[order].Remove(buddy);
            buddy.Flags &= ~PageFlags.Buddy;
            pfn &= ~(1UL << order);
            order++;
        }
        page merged = _ram.PageAt(pfn);
        merged.Order = order;
        merged.Flags |= PageFlags.Buddy;
        zone.FreeAreas[order].Push(merged);
    }

    /// <summary>Free pages in every zone, on the buddy lists and on the per-CPU lists (NR_FREE_PAGES).</summary>
    public long FreePages
    {
        get
        {
            long total = 0;
            foreach (Zone zone in _ram.Zones) total += Volatile.Read(ref zone.FreePages);
            return total;
        }
    }

    /// <summary>Pages handed to the buddy allocator (totalram_pages): RAM minus what bootmem kept.</summary>
    public long ManagedPages
    {
        get
        {
            long total = 0;
            foreach (Zone zone in _ram.Zones) total += Volatile.Read(ref zone.ManagedPages);
            return total;
        }
    }
}
