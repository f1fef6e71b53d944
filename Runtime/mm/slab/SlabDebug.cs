using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;

namespace KmemGuard;

// The per-object work of a debugging allocator: slub_debug's red zones and poison
// (mm/slub.c check_object, init_object), KASAN's shadow, and the alloc/free tracks.
internal sealed unsafe partial class SlabAllocator
{
    public const byte SLUB_RED_INACTIVE = 0xbb;
    public const byte SLUB_RED_ACTIVE = 0xcc;
    public const byte POISON_FREE = 0x6b;
    public const byte POISON_END = 0xa5;

    private const string SlubRule = "=============================================================================";

    /// <summary>A finding of check_object: what was overwritten, and where.</summary>
    private readonly record struct DebugFinding(string What, ulong Start, int Length, byte Expected, byte FirstBad, ulong FirstBadAddress, ulong LastBadAddress);

    /// <summary>init_object, on a new slab and on free: inactive red zones around a poisoned object.</summary>
    private static void InitObjectDebug(kmem_cache_t cache, Slab slab, ulong obj)
    {
        byte* p = slab.HostOf(obj);
        if (cache.FreePattern is { } pattern)
        {
            pattern.CopyTo(new Span<byte>(p - cache.RedLeftPad, pattern.Length));
            return;
        }
        if (cache.RedZone)
        {
            new Span<byte>(p - cache.RedLeftPad, (int)cache.RedLeftPad).Fill(SLUB_RED_INACTIVE);
            new Span<byte>(p + cache.ObjectSize, (int)cache.RightRedzone).Fill(SLUB_RED_INACTIVE);
        }
        if (cache.Poison) WritePoison(cache, p);
    }

    private static void WritePoison(kmem_cache_t cache, byte* p)
    {
        new Span<byte>(p, (int)cache.ObjectSize - 1).Fill(POISON_FREE);
        p[cache.ObjectSize - 1] = POISON_END;
    }

    /// <summary>
    /// After an object left the CPU's array: verify its free state (red zones inactive, poison
    /// intact), make the red zones active (a kmalloc block's slack too), record the track, and
    /// unpoison exactly the requested bytes for KASAN. Findings are reported after the bytes
    /// are restored; if a report throws, the object goes back to the cache.
    /// </summary>
    private void PostAlloc(kmem_cache_t cache, ulong obj, uint requested, Track? track, long leakSequence)
    {
        Slab slab = SlabOf(obj)!;
        int index = slab.StrideIndex(obj);
        List<DebugFinding>? findings = null;
        byte* p = slab.HostOf(obj);
        if (!IsIntactFreeObject(cache, p))
        {
            if (cache.RedZone) CheckRedzones(cache, slab, obj, SLUB_RED_INACTIVE, cache.ObjectSize, ref findings);
            if (cache.Poison) CheckPoison(cache, obj, p, ref findings);
        }
        if (cache.RedZone)
        {
            new Span<byte>(p - cache.RedLeftPad, (int)cache.RedLeftPad).Fill(SLUB_RED_ACTIVE);
            new Span<byte>(p + requested, (int)(cache.ObjectSize - requested + cache.RightRedzone)).Fill(SLUB_RED_ACTIVE);
        }
        if (slab.Objects != null)
        {
            ref SlabObject meta = ref slab.Objects[index];
            meta.Requested = requested;
            meta.AllocTrack = track;
            meta.State = Slab.ObjectAllocated;
            if (slab.LeakTracking) Volatile.Write(ref meta.LeakWord, SlabLeakWord.New(leakSequence));
        }
        KasanSetRequested(cache, obj, requested);
        if (findings == null) return;
        try
        {
            foreach (DebugFinding finding in findings) ReportDebugFinding(cache, slab, obj, finding, SLUB_RED_ACTIVE);
        }
        catch (KernelBugException)
        {
            FreeObject(cache, slab, obj, default);
            throw;
        }
    }

    /// <summary>free_debug_processing: the red zones of a live object must be intact. They are restored and reported.</summary>
    private void PreFreeDebug(kmem_cache_t cache, Slab slab, ulong obj)
    {
        if (!cache.RedZone) return;
        int index = slab.StrideIndex(obj);
        uint requested = cache.IsKmalloc ? slab.RequestedSize(index) : cache.ObjectSize;
        List<DebugFinding>? findings = null;
        CheckRedzones(cache, slab, obj, SLUB_RED_ACTIVE, requested, ref findings);
        if (findings == null) return;
        foreach (DebugFinding finding in findings) ReportDebugFinding(cache, slab, obj, finding, SLUB_RED_ACTIVE);
    }

    /// <summary>The object is free now (the CPU is held): state, free track, poison, inactive red zones, KASAN shadow.</summary>
    private void MarkFreed(kmem_cache_t cache, Slab slab, ulong obj, KTask task, CallSite site)
    {
        int index = slab.StrideIndex(obj);
        if (slab.Objects != null)
        {
            ref SlabObject meta = ref slab.Objects[index];
            meta.FreeTrack = TrackFor(task, site);
            meta.State = Quarantine != null ? Slab.ObjectQuarantined : Slab.ObjectFree;
        }
        InitObjectDebug(cache, slab, obj);
        Kasan?.Poison(obj, cache.ObjectSize, Kasan.SlabFree);
    }

    /// <summary>The whole stride matches the free pattern: one compare instead of a check per region (false when there is no pattern).</summary>
    private static bool IsIntactFreeObject(kmem_cache_t cache, byte* p) =>
        cache.FreePattern is { } pattern && new ReadOnlySpan<byte>(p - cache.RedLeftPad, pattern.Length).SequenceEqual(pattern);

    private static void CheckRedzones(kmem_cache_t cache, Slab slab, ulong obj, byte expected, uint rightFrom, ref List<DebugFinding>? findings)
    {
        byte* p = slab.HostOf(obj);
        CheckBytes("Left Redzone", obj - cache.RedLeftPad, p - cache.RedLeftPad, (int)cache.RedLeftPad, expected, ref findings);
        CheckBytes("Right Redzone", obj + rightFrom, p + rightFrom, (int)(cache.Size - cache.RedLeftPad - rightFrom), expected, ref findings);
    }

    private static void CheckPoison(kmem_cache_t cache, ulong obj, byte* p, ref List<DebugFinding>? findings)
    {
        int before = findings?.Count ?? 0;
        CheckBytes("Poison", obj, p, (int)cache.ObjectSize - 1, POISON_FREE, ref findings);
        if ((findings?.Count ?? 0) == before) CheckBytes("End Poison", obj + cache.ObjectSize - 1, p + cache.ObjectSize - 1, 1, POISON_END, ref findings);
    }

    /// <summary>check_bytes_and_report: the first and last byte that differ from <paramref name="expected"/>; the range is restored.</summary>
    private static void CheckBytes(string what, ulong start, byte* p, int length, byte expected, ref List<DebugFinding>? findings)
    {
        if (length <= 0) return;
        var bytes = new Span<byte>(p, length);
        int first = bytes.IndexOfAnyExcept(expected);
        if (first < 0) return;
        int last = bytes.LastIndexOfAnyExcept(expected);
        (findings ??= new List<DebugFinding>()).Add(new DebugFinding(what, start, length, expected, bytes[first], start + (ulong)first, start + (ulong)last));
        bytes.Fill(expected);
    }

    private void ReportDebugFinding(kmem_cache_t cache, Slab slab, ulong obj, DebugFinding finding, byte activeRedzone)
    {
        string what = finding.What == "End Poison" ? "Poison" : finding.What;
        BugKind kind = what == "Poison" ? BugKind.PoisonOverwritten : BugKind.RedzoneOverwritten;
        int index = slab.StrideIndex(obj);
        var text = new StringBuilder();
        text.Append(SlubRule).Append('\n');
        text.Append("BUG ").Append(cache.Name).Append(" (Not tainted): ").Append(what).Append(" overwritten\n");
        text.Append("-----------------------------------------------------------------------------\n\n");
        text.Append("INFO: 0x").Append(finding.FirstBadAddress.ToString("x16")).Append("-0x").Append(finding.LastBadAddress.ToString("x16"))
            .Append(" @offset=").Append(finding.FirstBadAddress - slab.Base).Append(". First byte 0x").Append(finding.FirstBad.ToString("x"))
            .Append(" instead of 0x").Append(finding.Expected.ToString("x")).Append('\n');
        AppendTrackInfo(text, "Allocated", slab.Objects?[index].AllocTrack);
        AppendTrackInfo(text, "Freed", slab.Objects?[index].FreeTrack);
        text.Append("INFO: Slab 0x").Append(slab.Base.ToString("x16")).Append(" objects=").Append(cache.ObjectsPerSlab)
            .Append(" used=").Append(slab.InUse).Append('\n');
        text.Append("INFO: Object 0x").Append(obj.ToString("x16")).Append(" @offset=").Append(obj - slab.Base).Append("\n\n");
        byte* p = slab.HostOf(obj);
        if (cache.RedZone) AppendHex(text, "Redzone ", obj - cache.RedLeftPad, p - cache.RedLeftPad, (int)Math.Min(cache.RedLeftPad, 16));
        AppendHex(text, "Object  ", obj, p, (int)Math.Min(cache.ObjectSize, 128));
        if (cache.RedZone) AppendHex(text, "Redzone ", obj + cache.ObjectSize, p + cache.ObjectSize, (int)Math.Min(cache.RightRedzone, 16));
        KTask task = CurrentTask();
        KasanReport.AppendCpuLine(text, task);
        text.Append("Call Trace:\n").Append(StackDepot.Walk());
        text.Append("FIX ").Append(cache.Name).Append(": Restoring ").Append(finding.What).Append(" 0x").Append(finding.Start.ToString("x16"))
            .Append("-0x").Append((finding.Start + (ulong)finding.Length - 1).ToString("x16")).Append("=0x").Append(finding.Expected.ToString("x")).Append('\n');
        Machine.Reporter.Raise(kind, text.ToString(), finding.FirstBadAddress);
    }

    private static void AppendTrackInfo(StringBuilder text, string verb, Track? track)
    {
        if (track == null) return;
        text.Append("INFO: ").Append(verb).Append(" in ").Append(track.Site).Append(" age=").Append(0).Append(" cpu=").Append(track.Cpu)
            .Append(" pid=").Append(track.Pid).Append('\n');
    }

    private static void AppendHex(StringBuilder text, string label, ulong address, byte* p, int length)
    {
        for (int row = 0; row < length; row += 16)
        {
            text.Append(label).Append(' ').Append((address + (ulong)row).ToString("x16")).Append(':');
            for (int i = row; i < Math.Min(row + 16, length); i++) text.Append(' ').Append(p[i].ToString("x2"));
            text.Append('\n');
        }
    }

    // ---- GFP flags that slab refuses ---------------------------------------------------------

    /// <summary>GFP_SLAB_BUG_MASK: slab memory is always directly mapped, so no highmem and no DMA32 zone request.</summary>
    public const gfp_t GfpSlabBugMask = Kernel.__GFP_DMA32 | Kernel.__GFP_HIGHMEM;

    /// <summary>kmalloc_fix_flags: warn with slab's text, and go on with the bad bits cleared.</summary>
    public gfp_t FixFlags(gfp_t flags, CallSite site)
    {
        gfp_t invalid = flags & GfpSlabBugMask;
        gfp_t fixedFlags = flags & ~GfpSlabBugMask;
        if (Sanity)
        {
            var text = new StringBuilder();
            text.Append("Unexpected gfp: 0x").Append(((uint)invalid).ToString("x")).Append(" (").Append(GfpNames.Names(invalid))
                .Append("). Fixing up to gfp: 0x").Append(((uint)fixedFlags).ToString("x")).Append(" (").Append(GfpNames.Names(fixedFlags))
                .Append("). Fix your code!\n");
            KasanReport.AppendCpuLine(text, CurrentTask());
            text.Append("Call Trace:\n").Append(site.IsKnown ? " " + site + "\n" : "").Append(StackDepot.Walk());
            Machine.Reporter.Raise(BugKind.InvalidFlags, text.ToString());
        }
        return fixedFlags;
    }
}
