using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

/// <summary>What a free found at the address it was given.</summary>
internal enum VmLookup
{
    /// <summary>The start of a live area of the expected kind: it has been taken out.</summary>
    Found,
    /// <summary>Inside a live or freed area, but not its start.</summary>
    NotStart,
    /// <summary>The start of an area that was already freed.</summary>
    AlreadyFreed,
    /// <summary>The start of a live area of another kind (vfree of a vmap area, ...).</summary>
    WrongKind,
    /// <summary>Nothing was ever mapped there (as far as the history reaches).</summary>
    Unknown,
}

/// <summary>
/// A virtual address space of page-granular areas, each followed by a guard page (the kernel's
/// vmap_area tree and its lock): first-fit reservation, the live areas by address, and a bounded
/// history of freed areas so that a double free or a use after free can say who freed the area.
/// </summary>
internal sealed class VmapSpace
{
    private const int HistoryLength = 512;

    private readonly Lock _lock = new();
    private readonly RangeAllocator _ranges;
    private readonly SortedList<ulong, VmArea> _busy = new();
    private readonly VmArea?[] _history = new VmArea?[HistoryLength];
    private int _historyNext;

    public VmapSpace(ulong start, ulong size) => _ranges = new RangeAllocator(start, size);

    /// <summary>Free ranges left (1 when the space is empty: everything freed has coalesced).</summary>
    public int FreeRangeCount
    {
        get { lock (_lock) return _ranges.FreeRangeCount; }
    }

    public int LiveCount
    {
        get { lock (_lock) return _busy.Count; }
    }

    /// <summary>Reserves <paramref name="size"/> bytes (whole pages) plus a guard page; null when the space is full.</summary>
    public VmArea? Reserve(ulong size, ulong requestedSize, VmFlags flags, CallSite caller)
    {
        ulong total = size + (ulong)Kernel.PAGE_SIZE;
        if (total < size) return null;
        lock (_lock)
        {
            ulong? start = _ranges.Alloc(total, (ulong)Kernel.PAGE_SIZE);
            if (start == null) return null;
            var area = new VmArea(start.Value, size, requestedSize, flags, caller);
            _busy.Add(area.Start, area);
            return area;
        }
    }

    /// <summary>Undoes a reservation that could not be completed: no history, the range is free again.</summary>
    public void Abandon(VmArea area)
    {
        lock (_lock)
        {
            _busy.Remove(area.Start);
            _ranges.Free(area.Start, area.End - area.Start);
        }
    }

    /// <summary>
    /// Takes the live area that starts at <paramref name="address"/> out of the space (it goes to
    /// the history) when its kind is one of <paramref name="kinds"/>; otherwise says what is there.
    /// The area's range stays reserved until <see cref="Release"/>, after its pages are unmapped.
    /// </summary>
    public VmLookup Take(ulong address, VmFlags kinds, Track? freeTrack, out VmArea? area)
    {
        lock (_lock)
        {
            area = LiveCovering(address);
            if (area != null)
            {
                if (area.Start != address) return VmLookup.NotStart;
                if ((area.Flags & kinds) == 0) return VmLookup.WrongKind;
                _busy.Remove(area.Start);
                area.FreeTrack = freeTrack;
                area.Live = false;
                _history[_historyNext] = area;
                _historyNext = (_historyNext + 1) % HistoryLength;
                return VmLookup.Found;
            }
            area = FreedCovering(address);
            if (area == null) return VmLookup.Unknown;
            return area.Start == address ? VmLookup.AlreadyFreed : VmLookup.NotStart;
        }
    }

    /// <summary>Gives a taken area's addresses back for reuse.</summary>
    public void Release(VmArea area)
    {
        lock (_lock) _ranges.Free(area.Start, area.End - area.Start);
    }

    /// <summary>The live area (or, failing that, the most recently freed one) whose range or guard page holds the address.</summary>
    public VmArea? Find(ulong address)
    {
        lock (_lock) return LiveCovering(address) ?? FreedCovering(address);
    }

    /// <summary>The live areas, lowest address first.</summary>
    public VmArea[] LiveAreas()
    {
        lock (_lock)
        {
            var areas = new VmArea[_busy.Count];
            _busy.Values.CopyTo(areas, 0);
            return areas;
        }
    }

    private VmArea? LiveCovering(ulong address)
    {
        int found = AddressSearch.Floor(_busy.Keys, address);
        if (found < 0) return null;
        VmArea candidate = _busy.Values[found];
        return candidate.Covers(address) ? candidate : null;
    }

    /// <summary>Newest first, so that a reused range is described by its latest owner.</summary>
    private VmArea? FreedCovering(ulong address)
    {
        for (int i = 1; i <= HistoryLength; i++)
        {
            VmArea? area = _history[(_historyNext - i + HistoryLength) % HistoryLength];
            if (area == null) return null;
            if (area.Covers(address)) return area;
        }
        return null;
    }
}
