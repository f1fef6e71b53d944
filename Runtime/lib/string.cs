using System;

namespace KmemGuard;

// lib/string.c: the memory functions, over checked kernel memory.
public static partial class Kernel
{
    /// <summary>Fills <paramref name="count"/> bytes at <paramref name="s"/> with the low byte of <paramref name="c"/>.</summary>
    public static unsafe KPtr memset(KPtr s, int c, size_t count)
    {
        if (count.Value == 0) return s;
        byte* host = Machine.Current.Memory.Access(s.Address, count, AccessKind.Write);
        if (host != null) new Span<byte>(host, checked((int)count.Value)).Fill((byte)c);
        return s;
    }

    /// <summary>Copies <paramref name="count"/> bytes; overlapping ranges are handled (as memmove).</summary>
    public static unsafe KPtr memcpy(KPtr dest, KPtr src, size_t count) => memmove(dest, src, count);

    public static unsafe KPtr memmove(KPtr dest, KPtr src, size_t count)
    {
        if (count.Value == 0) return dest;
        KernelMemory memory = Machine.Current.Memory;
        byte* from = memory.Access(src.Address, count, AccessKind.Read);
        if (from == null) return dest;
        byte* to = memory.Access(dest.Address, count, AccessKind.Write);
        if (to != null) Buffer.MemoryCopy(from, to, count.Value, count.Value);
        return dest;
    }

    /// <summary>Compares bytes as unsigned chars: negative, zero or positive.</summary>
    public static unsafe int memcmp(KPtr cs, KPtr ct, size_t count)
    {
        if (count.Value == 0) return 0;
        KernelMemory memory = Machine.Current.Memory;
        byte* a = memory.Access(cs.Address, count, AccessKind.Read);
        byte* b = memory.Access(ct.Address, count, AccessKind.Read);
        if (a == null || b == null) return 0;
        int n = checked((int)count.Value);
        return new ReadOnlySpan<byte>(a, n).SequenceCompareTo(new ReadOnlySpan<byte>(b, n));
    }
}
