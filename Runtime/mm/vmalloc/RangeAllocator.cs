using System;
using System.Collections.Generic;

namespace KmemGuard;

/// <summary>
/// First-fit allocation of address ranges, the job of the kernel's vmap_area free tree and of the
/// per-CPU chunk map: free ranges sorted by address, split on allocation, coalesced with both
/// neighbours on free so that the space never fragments into ranges that touch. Not thread-safe:
/// its owner holds a lock around every call.
/// </summary>
internal sealed class RangeAllocator
{
    private readonly List<(ulong Start, ulong End)> _free = new();

    public RangeAllocator(ulong start, ulong size)
    {
        Start = start;
        End = start + size;
        _free.Add((start, End));
    }

    public ulong Start { get; }
    public ulong End { get; }

    /// <summary>The lowest free range of <paramref name="size"/> bytes aligned to <paramref name="align"/> (a power of two), or null.</summary>
    public ulong? Alloc(ulong size, ulong align)
    {
        if (size == 0 || size > End - Start) return null;
        for (int i = 0; i < _free.Count; i++)
        {
            (ulong start, ulong end) = _free[i];
            ulong aligned = (start + align - 1) & ~(align - 1);
            if (aligned < start || aligned > end || end - aligned < size) continue;
            ulong rest = aligned + size;
            if (aligned > start && rest < end)
            {
                _free[i] = (start, aligned);
                _free.Insert(i + 1, (rest, end));
            }
            else if (aligned > start) _free[i] = (start, aligned);
            else if (rest < end) _free[i] = (rest, end);
            else _free.RemoveAt(i);
            return aligned;
        }
        return null;
    }

    /// <summary>Gives [start, start+size) back, merging it with the free ranges it touches.</summary>
    public void Free(ulong start, ulong size)
    {
        ulong end = start + size;
        if (size == 0 || start < Start || end > End || end < start)
            throw new InvalidOperationException($"Range [{start:x}, {end:x}) is outside the allocator's [{Start:x}, {End:x}).");
        int at = LowerBound(start);
        if ((at > 0 && _free[at - 1].End > start) || (at < _free.Count && _free[at].Start < end))
            throw new InvalidOperationException($"Range [{start:x}, {end:x}) is already free: the range allocator's books are broken.");
        bool mergePrev = at > 0 && _free[at - 1].End == start;
        bool mergeNext = at < _free.Count && _free[at].Start == end;
        if (mergePrev && mergeNext)
        {
            _free[at - 1] = (_free[at - 1].Start, _free[at].End);
            _free.RemoveAt(at);
        }
        else if (mergePrev) _free[at - 1] = (_free[at - 1].Start, end);
        else if (mergeNext) _free[at] = (start, _free[at].End);
        else _free.Insert(at, (start, end));
    }

    /// <summary>The number of separate free ranges (1 when everything is free).</summary>
    public int FreeRangeCount => _free.Count;

    /// <summary>Index of the first free range that starts at or after <paramref name="address"/>.</summary>
    private int LowerBound(ulong address)
    {
        int lo = 0, hi = _free.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (_free[mid].Start < address) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
}
