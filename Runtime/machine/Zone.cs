using System.Threading;

namespace KmemGuard;

internal enum ZoneType
{
    DMA,
    DMA32,
    Normal,
    HighMem,
}

/// <summary>The free pages of one order in one zone (struct free_area).</summary>
internal sealed class FreeArea
{
    public page? First;
    public long Count;

    public void Push(page p)
    {
        p.Prev = null;
        p.Next = First;
        if (First != null) First.Prev = p;
        First = p;
        Count++;
    }

    public void Remove(page p)
    {
        if (p.Prev != null) p.Prev.Next = p.Next;
        else First = p.Next;
        if (p.Next != null) p.Next.Prev = p.Prev;
        p.Next = p.Prev = null;
        Count--;
    }
}

/// <summary>A memory zone of one node (struct zone).</summary>
internal sealed class Zone
{
    public Zone(NumaNode node, ZoneType type, ulong startPfn, ulong endPfn)
    {
        Node = node;
        Type = type;
        StartPfn = startPfn;
        EndPfn = endPfn;
        for (int order = 0; order <= Kernel.MAX_ORDER; order++) FreeAreas[order] = new FreeArea();
    }

    public NumaNode Node { get; }
    public ZoneType Type { get; }
    public ulong StartPfn { get; }
    public ulong EndPfn { get; }
    public ulong SpannedPages => EndPfn - StartPfn;

    /// <summary>Pages handed to the buddy allocator (the zone's managed pages).</summary>
    public long ManagedPages;

    /// <summary>Free pages, on the buddy lists and on the per-CPU lists.</summary>
    public long FreePages;

    public long WatermarkMin, WatermarkLow, WatermarkHigh;

    public readonly FreeArea[] FreeAreas = new FreeArea[Kernel.MAX_ORDER + 1];

    /// <summary>zone->lock: guards the free areas.</summary>
    public readonly Lock Lock = new();

    public string Name => Type switch
    {
        ZoneType.DMA => "DMA",
        ZoneType.DMA32 => "DMA32",
        ZoneType.Normal => "Normal",
        _ => "HighMem",
    };

    public bool Contains(ulong pfn) => pfn >= StartPfn && pfn < EndPfn;
}

/// <summary>A NUMA node: a contiguous range of physical memory, its zones and its CPUs.</summary>
internal sealed class NumaNode
{
    public NumaNode(int id, ulong startPfn, ulong endPfn, int ramFile)
    {
        Id = id;
        StartPfn = startPfn;
        EndPfn = endPfn;
        RamFile = ramFile;
    }

    public int Id { get; }
    public ulong StartPfn { get; }
    public ulong EndPfn { get; }

    /// <summary>The host memfd holding this node's bytes.</summary>
    public int RamFile { get; }

    public Zone[] Zones { get; internal set; } = System.Array.Empty<Zone>();
}
