using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

// kmemleak's state of slab objects, kept in the slab (a word per object) rather than in
// kmemleak's dictionary: a checked kmalloc/kfree pair then costs kmemleak no allocation and no
// lock. An object is tracked while it is allocated; the word says in which allocation (its
// sequence number) and what a driver marked it (kmemleak_not_leak, kmemleak_ignore,
// kmemleak_no_scan).
internal sealed partial class SlabAllocator : IKmemleakObjectSource
{
    private readonly Kmemleak? _kmemleak;

    /// <summary>kmemleak tracks slab objects (each slab object carries <see cref="SlabObject.LeakWord"/>).</summary>
    public bool LeakTracking => Machine.ChecksCompiledIn && _kmemleak != null;

    public void CollectTracked(List<KmemleakObject> tracked)
    {
        foreach (kmem_cache_t cache in Caches())
            VisitAllocated(cache, (slab, i) =>
            {
                if (LeakObject(slab, i) is { } block) tracked.Add(block);
                return true;
            });
    }

    public KmemleakObject? TrackedAt(ulong start)
    {
        Slab? slab = SlabOf(start);
        if (slab == null) return null;
        int index = slab.ObjectIndex(start);
        return index >= 0 && slab.IsAllocated(index) ? LeakObject(slab, index) : null;
    }

    public int TrackedCount
    {
        get
        {
            int count = 0;
            foreach (kmem_cache_t cache in Caches())
                VisitAllocated(cache, (slab, i) =>
                {
                    if (slab.LeakTracking && Volatile.Read(ref slab.Objects![i].LeakWord) != 0) count++;
                    return true;
                });
            return count;
        }
    }

    private static SlabLeakObject? LeakObject(Slab slab, int index)
    {
        if (!slab.LeakTracking) return null;
        long word = Volatile.Read(ref slab.Objects![index].LeakWord);
        Track? track = slab.Objects[index].AllocTrack;
        return word != 0 && track != null ? new SlabLeakObject(slab, index, word, track) : null;
    }
}

/// <summary>
/// The word kmemleak keeps per slab object: the allocation's sequence number above three bits of
/// marks (min_count + 1 in two bits: 0 black, 1 gray, 2 white; then no_scan). 0: not tracked.
/// One word, so that a scan running beside an allocation never reads half of each.
/// </summary>
internal static class SlabLeakWord
{
    private const int MarkBits = 3;
    private const long MinCountMask = 3, NoScanBit = 4;

    public static long New(long sequence) => (sequence << MarkBits) | (1 + 1);

    public static long Sequence(long word) => word >> MarkBits;

    public static int MinCount(long word) => (int)(word & MinCountMask) - 1;

    public static bool NoScan(long word) => (word & NoScanBit) != 0;

    public static long WithMinCount(long word, int minCount) => (word & ~MinCountMask) | (long)(minCount + 1);

    public static long WithNoScan(long word, bool noScan) => noScan ? word | NoScanBit : word & ~NoScanBit;
}

/// <summary>A slab object as kmemleak sees it: a snapshot of its word, whose marks write through to the slab while the same allocation lives.</summary>
internal sealed class SlabLeakObject : KmemleakObject
{
    private readonly Slab _slab;
    private readonly int _index;

    public SlabLeakObject(Slab slab, int index, long word, Track alloc)
        : base(slab.ObjectAddress(index), slab.Cache.ObjectSize, slab.Cache.IsKmalloc ? MemoryFamily.Kmalloc : MemoryFamily.SlabCache,
            slab.Cache.Name, alloc, SlabLeakWord.MinCount(word), SlabLeakWord.Sequence(word))
    {
        _slab = slab;
        _index = index;
        base.NoScan = SlabLeakWord.NoScan(word);
    }

    public override int MinCount
    {
        get => base.MinCount;
        set
        {
            base.MinCount = value;
            Update(word => SlabLeakWord.WithMinCount(word, value));
        }
    }

    public override bool NoScan
    {
        get => base.NoScan;
        set
        {
            base.NoScan = value;
            Update(word => SlabLeakWord.WithNoScan(word, value));
        }
    }

    public override bool StillTracked(Kmemleak kmemleak) =>
        _slab.IsAllocated(_index) && SlabLeakWord.Sequence(Volatile.Read(ref _slab.Objects![_index].LeakWord)) == Sequence;

    /// <summary>Changes the slab's word, unless the object was freed and allocated again since this snapshot.</summary>
    private void Update(System.Func<long, long> change)
    {
        ref long slot = ref _slab.Objects![_index].LeakWord;
        long word = Volatile.Read(ref slot);
        while (SlabLeakWord.Sequence(word) == Sequence)
        {
            long seen = Interlocked.CompareExchange(ref slot, change(word), word);
            if (seen == word) return;
            word = seen;
        }
    }
}
