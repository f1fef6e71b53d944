using System;

namespace KmemGuard;

/// <summary>
/// Generic KASAN's shadow memory (mm/kasan/generic.c): one shadow byte per 8-byte granule.
/// 0 = all 8 bytes accessible, 1..7 = that many leading bytes accessible, a code >= 0xF0 = none,
/// and the code says why (freed, redzone, guard).
/// </summary>
internal sealed unsafe class Kasan : IDisposable
{
    public const int GranuleShift = 3;
    public const ulong GranuleSize = 1UL << GranuleShift;

    public const byte PageFree = 0xFF;
    public const byte PageRedzone = 0xFE;
    public const byte SlabRedzone = 0xFC;
    public const byte SlabFree = 0xFB;
    public const byte VmallocInvalid = 0xF8;

    private readonly Shadow[] _shadows;

    private readonly struct Shadow
    {
        public readonly ulong Start, Size;
        public readonly byte* Bytes;

        public Shadow(ulong start, ulong size)
        {
            Start = start;
            Size = size;
            Bytes = HostMemory.AllocateZeroed(size >> GranuleShift);
        }
    }

    /// <param name="ranges">The kernel address ranges that have shadow (direct map, vmalloc, per-CPU).</param>
    public Kasan(params (ulong Start, ulong Size)[] ranges)
    {
        _shadows = new Shadow[ranges.Length];
        for (int i = 0; i < ranges.Length; i++) _shadows[i] = new Shadow(ranges[i].Start, ranges[i].Size);
    }

    private byte* ShadowOf(ulong address)
    {
        foreach (Shadow s in _shadows)
            if (address - s.Start < s.Size) return s.Bytes + ((address - s.Start) >> GranuleShift);
        return null;
    }

    /// <summary>Brings the shadow of <paramref name="address"/> into the cache ahead of its use (the quarantine's release).</summary>
    public void PrefetchShadow(ulong address)
    {
        byte* shadow = ShadowOf(address);
        if (shadow != null && System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch1(shadow);
    }

    /// <summary>Marks [address, address+size) inaccessible; both ends are rounded out to granules.</summary>
    public void Poison(ulong address, ulong size, byte code)
    {
        if (size == 0) return;
        ulong first = address & ~(GranuleSize - 1);
        ulong end = (address + size + GranuleSize - 1) & ~(GranuleSize - 1);
        byte* shadow = ShadowOf(first);
        if (shadow != null) new Span<byte>(shadow, (int)((end - first) >> GranuleShift)).Fill(code);
    }

    /// <summary>Marks exactly [address, address+size) accessible; address must be granule aligned.</summary>
    public void Unpoison(ulong address, ulong size)
    {
        if (size == 0) return;
        byte* shadow = ShadowOf(address);
        if (shadow == null) return;
        ulong whole = size >> GranuleShift;
        new Span<byte>(shadow, (int)whole).Clear();
        ulong tail = size & (GranuleSize - 1);
        if (tail != 0) shadow[whole] = (byte)tail;
    }

    /// <summary>
    /// Checks an access. On a bad one, returns false with the first bad byte and the shadow code
    /// that explains it (for a partial granule: the code of the granule after it, as KASAN does).
    /// </summary>
    public bool Check(ulong address, ulong size, out ulong badAddress, out byte code)
    {
        badAddress = 0;
        code = 0;
        if (size == 0) return true;
        byte* shadow = ShadowOf(address);
        if (shadow == null) return true;
        ulong last = address + size - 1;
        ulong granules = (last >> GranuleShift) - (address >> GranuleShift) + 1;
        for (ulong g = 0; g < granules; g++)
        {
            byte s = shadow[g];
            if (s == 0) continue;
            ulong granuleStart = ((address >> GranuleShift) + g) << GranuleShift;
            ulong from = Math.Max(address, granuleStart);
            ulong to = Math.Min(last, granuleStart + GranuleSize - 1);
            if (s < GranuleSize)
            {
                if (to - granuleStart < s) continue;
                badAddress = Math.Max(from, granuleStart + s);
                code = shadow[g + 1] >= 0xF0 ? shadow[g + 1] : SlabRedzone;
                return false;
            }
            badAddress = from;
            code = s;
            return false;
        }
        return true;
    }

    /// <summary>The shadow bytes around <paramref name="address"/>, as KASAN's "Memory state around the buggy address".</summary>
    public string DumpAround(ulong address)
    {
        var text = new System.Text.StringBuilder("Memory state around the buggy address:\n");
        ulong row = (address & ~0x7FUL) - 0x100;
        for (int r = 0; r < 5; r++, row += 0x80)
        {
            text.Append(row == (address & ~0x7FUL) ? ">" : " ").Append(row.ToString("x16")).Append(':');
            byte* shadow = ShadowOf(row);
            for (int i = 0; i < 16; i++)
            {
                text.Append(' ');
                text.Append(shadow == null ? "??" : shadow[i].ToString("x2"));
            }
            text.Append('\n');
            if (row == (address & ~0x7FUL))
                text.Append(' ', 18 + (int)(((address - row) >> GranuleShift) * 3)).Append("^\n");
        }
        return text.ToString();
    }

    public void Dispose()
    {
        foreach (Shadow s in _shadows) HostMemory.Release(s.Bytes, s.Size >> GranuleShift);
    }
}
