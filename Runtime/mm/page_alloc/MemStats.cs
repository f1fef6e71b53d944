using System.Threading;

namespace KmemGuard;

/// <summary>Counters that other subsystems keep for /proc/meminfo (the kernel's node_stat_item and friends).</summary>
internal enum MemStat
{
    /// <summary>NR_SLAB_RECLAIMABLE_B: bytes of slab pages of SLAB_RECLAIM_ACCOUNT caches.</summary>
    SlabReclaimableBytes,
    /// <summary>NR_SLAB_UNRECLAIMABLE_B: bytes of all other slab pages.</summary>
    SlabUnreclaimableBytes,
    /// <summary>nr_vmalloc_pages: pages backing vmalloc areas.</summary>
    VmallocPages,
    /// <summary>pcpu_nr_pages(): pages backing the per-CPU areas (all units).</summary>
    PercpuPages,
}

/// <summary>The machine's memory counters, updated with <see cref="Add"/> from any thread.</summary>
internal sealed class MemStats
{
    private readonly long[] _values = new long[System.Enum.GetValues<MemStat>().Length];

    /// <summary>mod_node_page_state: adds <paramref name="delta"/> (negative to subtract).</summary>
    public void Add(MemStat stat, long delta) => Interlocked.Add(ref _values[(int)stat], delta);

    public long this[MemStat stat] => Volatile.Read(ref _values[(int)stat]);
}

public sealed partial class Machine
{
    /// <summary>Counters the subsystems keep for /proc/meminfo.</summary>
    internal MemStats Stats { get; } = new();
}
