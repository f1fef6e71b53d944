namespace KmemGuard;

/// <summary>
/// The simulated kernel address space, after x86-64's (Documentation/x86/x86_64/mm.rst): each
/// kind of kernel memory has its own range, so an address alone says which allocator owns it.
/// </summary>
internal static class AddressLayout
{
    /// <summary>Start of the direct mapping of all physical memory (page_offset_base).</summary>
    public const ulong PAGE_OFFSET = 0xffff_8880_0000_0000;
    public const ulong DirectMapSize = 64UL << 40;

    /// <summary>Start of the vmalloc area (vmalloc_base).</summary>
    public const ulong VMALLOC_START = 0xffff_c900_0000_0000;

    /// <summary>Where ioremap maps device memory (the kernel uses the vmalloc area; a range of its own here).</summary>
    public const ulong IOREMAP_START = 0xffff_e900_0000_0000;
    public const ulong IoremapSize = 1UL << 40;

    /// <summary>The per-CPU areas, one unit per CPU.</summary>
    public const ulong PERCPU_START = 0xffff_ea80_0000_0000;

    /// <summary>Bytes of per-CPU area each CPU has.</summary>
    public const ulong PercpuUnitSize = 2UL << 20;

    /// <summary>Addresses below this fault as a NULL dereference.</summary>
    public const ulong NullGuardSize = 4096;

    public static bool IsDirectMap(ulong address) => address - PAGE_OFFSET < DirectMapSize;

    public static bool IsIoremap(ulong address) => address - IOREMAP_START < IoremapSize;
}
