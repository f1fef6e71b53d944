using System.Runtime.CompilerServices;

namespace KmemGuard;

// The bootmem API of LDD3 (include/linux/bootmem.h), served by memblock as today's kernels do.
public static partial class Kernel
{
    /// <summary>
    /// Boot-time memory, SMP_CACHE_BYTES aligned and zeroed, preferably high (above the DMA zone).
    /// Valid only in early boot; afterwards it reports BootmemAfterBoot and returns NULL. The
    /// kernel panics when it runs out; here the panic text goes to the kernel log and NULL is
    /// returned, as allocation failure never throws.
    /// </summary>
    [Allocates(MemoryFamily.Bootmem)]
    public static KPtr alloc_bootmem(size_t size,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        BootmemAlloc(nameof(alloc_bootmem), size, Bootmem.SmpCacheBytes, ulong.MaxValue, new CallSite(caller, file, line));

    /// <summary>Boot-time memory below the DMA limit (16 MiB), SMP_CACHE_BYTES aligned and zeroed.</summary>
    [Allocates(MemoryFamily.Bootmem)]
    public static KPtr alloc_bootmem_low(size_t size,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        BootmemAlloc(nameof(alloc_bootmem_low), size, Bootmem.SmpCacheBytes, PhysicalMemory.DmaLimit, new CallSite(caller, file, line));

    /// <summary>Whole pages of boot-time memory (page aligned, zeroed).</summary>
    [Allocates(MemoryFamily.Bootmem)]
    public static KPtr alloc_bootmem_pages(size_t size,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        BootmemAlloc(nameof(alloc_bootmem_pages), size, (ulong)PAGE_SIZE, ulong.MaxValue, new CallSite(caller, file, line));

    /// <summary>Whole pages of boot-time memory below the DMA limit (16 MiB).</summary>
    [Allocates(MemoryFamily.Bootmem)]
    public static KPtr alloc_bootmem_low_pages(size_t size,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        BootmemAlloc(nameof(alloc_bootmem_low_pages), size, (ulong)PAGE_SIZE, PhysicalMemory.DmaLimit, new CallSite(caller, file, line));

    /// <summary>
    /// Gives [physAddr, physAddr+size) back to bootmem before the hand-over, so that the buddy
    /// allocator gets its whole pages. After boot it reports BootmemAfterBoot and does nothing.
    /// </summary>
    public static void free_bootmem(ulong physAddr, size_t size)
    {
        Machine m = Machine.Current;
        if (!m.InEarlyBoot)
        {
            ReportBootmemAfterBoot(m, nameof(free_bootmem), size);
            return;
        }
        m.Bootmem.Free(physAddr, size);
    }

    private static KPtr BootmemAlloc(string function, ulong size, ulong align, ulong limit, CallSite site)
    {
        Machine m = Machine.Current;
        if (!m.InEarlyBoot)
        {
            ReportBootmemAfterBoot(m, function, size);
            return NULL;
        }
        ulong? phys = m.Bootmem.Alloc(size, align, limit, site);
        if (phys is ulong found) return new KPtr(KernelMemory.ToVirt(found));
        m.Warn($"{function}: bootmem alloc of {size} bytes failed! (align=0x{align:x}, max_addr=0x{System.Math.Min(limit, m.Ram.TotalBytes):x})\n" +
            "Kernel panic - not syncing: Out of memory (KmemGuard returns NULL instead)\n");
        return NULL;
    }

    private static void ReportBootmemAfterBoot(Machine m, string function, ulong size)
    {
        string text = m.Bootmem.AfterBootText(function, size);
        if (m.IsChecking(Checks.Sanity)) m.Reporter.Raise(BugKind.BootmemAfterBoot, text);
        else m.Warn(text);
    }
}
