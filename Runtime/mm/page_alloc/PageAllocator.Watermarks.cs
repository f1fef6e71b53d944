using System;
using System.Threading;

namespace KmemGuard;

internal sealed partial class PageAllocator
{
    /// <summary>The kernel's bounds for min_free_kbytes (mm/page_alloc.c init_per_zone_wmark_min).</summary>
    private const long MinFreeKbytesFloor = 128, MinFreeKbytesCeiling = 262144;

    /// <summary>watermark_scale_factor's default: the low-high gap is at least 0.1% of the zone.</summary>
    private const long WatermarkScaleFactor = 10;

    /// <summary>SWAP_CLUSTER_MAX: the smallest min watermark of a highmem zone.</summary>
    private const long SwapClusterMax = 32;

    /// <summary>sysctl_lowmem_reserve_ratio by zone type: DMA 256, DMA32 256, Normal 32, HighMem 0 (none).</summary>
    private static readonly long[] s_lowmemReserveRatio = { 256, 256, 32, 0 };

    /// <summary>
    /// lowmem_reserve[zone index][class zone type]: pages a zone keeps back from allocations that
    /// could have used a higher zone (so that GFP_KERNEL does not eat ZONE_DMA).
    /// </summary>
    private readonly long[][] _lowmemReserve;

    /// <summary>Pages a zone keeps back from allocations whose highest allowed zone is <paramref name="classZone"/>.</summary>
    internal long LowmemReserve(Zone zone, ZoneType classZone) => _lowmemReserve[ZoneIndex(zone)][(int)classZone];

    /// <summary>min_free_kbytes as the kernel computes it from the low memory.</summary>
    public long MinFreeKbytes { get; private set; }

    /// <summary>
    /// setup_per_zone_wmarks and zone_pcp_update: min_free_kbytes = sqrt(lowmem_kbytes * 16),
    /// shared among the low zones by their size; low and high each a quarter of min higher
    /// (at least watermark_scale_factor of the zone); the per-CPU batch and high from the zone size.
    /// </summary>
    private void RecomputeWatermarks()
    {
        long lowmemPages = 0;
        foreach (Zone zone in _ram.Zones)
            if (zone.Type != ZoneType.HighMem) lowmemPages += Volatile.Read(ref zone.ManagedPages);
        long lowmemKbytes = lowmemPages * (Kernel.PAGE_SIZE >> 10);
        MinFreeKbytes = Math.Clamp((long)Math.Sqrt(lowmemKbytes * 16.0), MinFreeKbytesFloor, MinFreeKbytesCeiling);
        long pagesMin = MinFreeKbytes >> (Kernel.PAGE_SHIFT - 10);
        for (int z = 0; z < _ram.Zones.Length; z++)
        {
            Zone zone = _ram.Zones[z];
            long managed = Volatile.Read(ref zone.ManagedPages);
            long share = lowmemPages == 0 ? 0 : pagesMin * managed / lowmemPages;
            long min = zone.Type == ZoneType.HighMem ? Math.Clamp(managed / 1024, SwapClusterMax, 128) : share;
            long gap = Math.Max(share >> 2, managed * WatermarkScaleFactor / 10000);
            zone.WatermarkMin = min;
            zone.WatermarkLow = min + gap;
            zone.WatermarkHigh = min + 2 * gap;
            SetLowmemReserve(z, zone);
            int batch = ZoneBatchSize(managed);
            foreach (PerCpuPages pcp in _pcp[z])
            {
                pcp.Batch = Math.Max(1, batch);
                pcp.High = 6 * batch;
            }
        }
    }

    /// <summary>setup_per_zone_lowmem_reserve: for each higher zone type, the managed pages of the node's zones above this one, over the ratio.</summary>
    private void SetLowmemReserve(int zoneIndex, Zone zone)
    {
        long ratio = s_lowmemReserveRatio[(int)zone.Type];
        long[] reserve = _lowmemReserve[zoneIndex];
        long above = 0;
        for (int type = (int)zone.Type + 1; type < reserve.Length; type++)
        {
            foreach (Zone upper in zone.Node.Zones)
                if ((int)upper.Type == type) above += Volatile.Read(ref upper.ManagedPages);
            reserve[type] = ratio == 0 || Volatile.Read(ref zone.ManagedPages) == 0 ? 0 : above / ratio;
        }
    }

    /// <summary>zone_batchsize: about a quarter of a thousandth of the zone, at most 1 MiB / 4, one less than a power of two.</summary>
    private static int ZoneBatchSize(long managedPages)
    {
        long batch = Math.Min(managedPages >> 10, (1L << 20) / Kernel.PAGE_SIZE) / 4;
        if (batch < 1) batch = 1;
        return (int)(RoundDownPowerOfTwo(batch + batch / 2) - 1);
    }

    private static long RoundDownPowerOfTwo(long value) => 1L << (63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)value));

    /// <summary>
    /// zone_watermark_ok: would the zone keep more than the mark free after this allocation?
    /// __GFP_HIGH (ALLOC_HIGH) may take half of the reserve, __GFP_ATOMIC (ALLOC_HARDER) a quarter
    /// of what is left; on top of the mark the zone keeps its lowmem reserve for the request's
    /// class zone; a high-order request also needs a free block large enough.
    /// </summary>
    private static bool WatermarkOk(Zone zone, int order, AllocFlags flags, long lowmemReserve)
    {
        if ((flags & AllocFlags.NoWatermarks) != 0) return true;
        long free = Volatile.Read(ref zone.FreePages) - (1L << order) + 1;
        long min = (flags & AllocFlags.WmarkMask) switch
        {
            AllocFlags.WmarkLow => zone.WatermarkLow,
            AllocFlags.WmarkHigh => zone.WatermarkHigh,
            _ => zone.WatermarkMin,
        };
        if ((flags & AllocFlags.High) != 0) min -= min / 2;
        if ((flags & AllocFlags.Harder) != 0) min -= min / 4;
        if (free <= min + lowmemReserve) return false;
        if (order == 0) return true;
        for (int o = order; o <= Kernel.MAX_ORDER; o++)
            if (Volatile.Read(ref zone.FreeAreas[o].Count) > 0) return true;
        return false;
    }

    /// <summary>The kernel's alloc_flags (mm/internal.h) that the simulation uses.</summary>
    [Flags]
    private enum AllocFlags
    {
        WmarkMin = 0,
        WmarkLow = 1,
        WmarkHigh = 2,
        WmarkMask = 3,
        /// <summary>ALLOC_NO_WATERMARKS: __GFP_MEMALLOC ignores the reserve entirely.</summary>
        NoWatermarks = 4,
        /// <summary>ALLOC_HIGH (__GFP_HIGH): may use half of the min reserve.</summary>
        High = 8,
        /// <summary>ALLOC_HARDER (__GFP_ATOMIC, __GFP_NOFAIL retries): a further quarter.</summary>
        Harder = 16,
    }

    /// <summary>gfp_to_alloc_flags: what the slow path may dip into.</summary>
    private static AllocFlags SlowPathFlags(gfp_t gfp)
    {
        AllocFlags flags = AllocFlags.WmarkMin;
        if ((gfp & Kernel.__GFP_HIGH) != 0) flags |= AllocFlags.High;
        if ((gfp & Kernel.__GFP_ATOMIC) != 0 && (gfp & Kernel.__GFP_NOMEMALLOC) == 0) flags |= AllocFlags.Harder;
        if ((gfp & Kernel.__GFP_MEMALLOC) != 0 && (gfp & Kernel.__GFP_NOMEMALLOC) == 0) flags |= AllocFlags.NoWatermarks;
        return flags;
    }
}
