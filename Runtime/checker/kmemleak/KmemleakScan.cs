using System;
using System.Collections.Generic;

namespace KmemGuard;

/// <summary>
/// One scan (kmemleak_scan): the blocks tracked when it started, sorted by address so that a
/// word pointing anywhere inside a block finds it; a count of references per block; and the
/// gray list of blocks that are reachable and still to be scanned.
/// </summary>
internal sealed class KmemleakScan
{
    private readonly Machine _machine;
    private readonly KmemleakObject[] _blocks;
    private readonly int[] _counts;
    private readonly bool[] _queued;
    private readonly Stack<int> _gray = new();
    private readonly ulong _lowest, _highest;
    private readonly Action<ulong> _reference;

    public KmemleakScan(Machine machine, ICollection<KmemleakObject> tracked)
    {
        _machine = machine;
        _blocks = new KmemleakObject[tracked.Count];
        tracked.CopyTo(_blocks, 0);
        Array.Sort(_blocks, static (a, b) => a.Start.CompareTo(b.Start));
        _counts = new int[_blocks.Length];
        _queued = new bool[_blocks.Length];
        _lowest = _blocks.Length > 0 ? _blocks[0].Start : ulong.MaxValue;
        foreach (KmemleakObject block in _blocks) _highest = Math.Max(_highest, Math.Max(block.End, block.Start + 1)); // a 0-byte block still has its start
        _reference = Reference;
        for (int i = 0; i < _blocks.Length; i++)
            if (_blocks[i].MinCount == Kmemleak.Gray) Enqueue(i);
    }

    /// <summary>A pointer-sized value seen in a root or a scanned block: the block it points into gains a reference.</summary>
    public void Reference(ulong value)
    {
        if (value < _lowest || value >= _highest) return;
        int index = Find(value);
        if (index < 0) return;
        KmemleakObject block = _blocks[index];
        int minCount = block.MinCount;
        if (minCount == Kmemleak.Black) return;
        if (++_counts[index] >= minCount) Enqueue(index);
    }

    /// <summary>Scans a root range of simulated memory (a data section, a per-CPU area).</summary>
    public void ScanRange(ulong start, ulong size) => RawMemory.ForEachWord(_machine, start, size, _reference);

    /// <summary>Scans every reachable block until no new block becomes reachable.</summary>
    public void ScanGrayObjects()
    {
        while (_gray.TryPop(out int index))
        {
            KmemleakObject block = _blocks[index];
            if (!block.NoScan && block.MinCount != Kmemleak.Black) ScanRange(block.Start, block.Size);
        }
    }

    /// <summary>The white blocks: fewer references than they need, in allocation order.</summary>
    public List<KmemleakObject> Unreferenced()
    {
        var leaks = new List<KmemleakObject>();
        for (int i = 0; i < _blocks.Length; i++)
        {
            int minCount = _blocks[i].MinCount;
            if (minCount != Kmemleak.Black && _counts[i] < minCount) leaks.Add(_blocks[i]);
        }
        leaks.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        return leaks;
    }

    private void Enqueue(int index)
    {
        if (_queued[index]) return;
        _queued[index] = true;
        _gray.Push(index);
    }

    /// <summary>The block that holds <paramref name="address"/> (kmemleak accepts pointers into a block, not only to its start), or -1.</summary>
    private int Find(ulong address)
    {
        int low = 0, high = _blocks.Length - 1, found = -1;
        while (low <= high)
        {
            int mid = (low + high) >>> 1;
            if (_blocks[mid].Start <= address)
            {
                found = mid;
                low = mid + 1;
            }
            else high = mid - 1;
        }
        if (found < 0) return -1;
        KmemleakObject block = _blocks[found];
        return address < block.End || address == block.Start ? found : -1;
    }
}
