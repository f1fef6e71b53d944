using System;

namespace KmemGuard;

/// <summary>
/// Reads simulated memory the way kmemleak's scanner does (it runs with KASAN disabled for the
/// current task): straight from the frames, with no shadow check and no report. Unmapped pages
/// read as absent rather than faulting.
/// </summary>
internal static unsafe class RawMemory
{
    private const ulong PageOffsetMask = (ulong)Kernel.PAGE_SIZE - 1;

    /// <summary>
    /// The host bytes of the page that holds <paramref name="address"/>, starting at the address
    /// (valid up to the end of that page), or null where no frame backs it (ioremap, holes, unmapped vmalloc).
    /// </summary>
    public static byte* PageBytes(Machine machine, ulong address)
    {
        KernelMemory memory = machine.Memory;
        if (memory.IsRam(address, 1)) return machine.Ram.Host(KernelMemory.ToPhys(address));
        AliasRegion? region = memory.Vmalloc.Contains(address) ? memory.Vmalloc : memory.PerCpu.Contains(address) ? memory.PerCpu : null;
        page? frame = region?.FrameAt(address);
        if (frame == null) return null;
        return machine.Ram.Host((frame.Pfn << Kernel.PAGE_SHIFT) + (address & PageOffsetMask));
    }

    /// <summary>Calls <paramref name="word"/> with every aligned 8-byte value stored in [start, start+size).</summary>
    public static void ForEachWord(Machine machine, ulong start, ulong size, Action<ulong> word)
    {
        ulong end = start + size;
        for (ulong at = (start + 7) & ~7UL; at + 8 <= end;)
        {
            ulong pageEnd = (at | PageOffsetMask) + 1;
            ulong stop = Math.Min(pageEnd, end);
            byte* bytes = PageBytes(machine, at);
            if (bytes != null)
                for (ulong p = at; p + 8 <= stop; p += 8) word(*(ulong*)(bytes + (p - at)));
            at = pageEnd;
        }
    }

    /// <summary>Up to <paramref name="count"/> bytes from <paramref name="address"/>; fewer where memory is not backed.</summary>
    public static byte[] ReadBytes(Machine machine, ulong address, int count)
    {
        var result = new byte[count];
        int done = 0;
        while (done < count)
        {
            ulong at = address + (ulong)done;
            byte* bytes = PageBytes(machine, at);
            if (bytes == null) return result[..done];
            int inPage = (int)Math.Min((ulong)(count - done), (ulong)Kernel.PAGE_SIZE - (at & PageOffsetMask));
            new ReadOnlySpan<byte>(bytes, inPage).CopyTo(result.AsSpan(done));
            done += inPage;
        }
        return result;
    }
}
