using System;
using System.Runtime.CompilerServices;

namespace KmemGuard;

// mm/vmalloc.c: virtually contiguous memory over pages that need not be physically contiguous.
public static partial class Kernel
{
    /// <summary>vmap's flag: an ordinary mapping of given pages.</summary>
    public const ulong VM_MAP = (ulong)VmFlags.Map;

    /// <summary>The protection of kernel data mappings (x86's __PAGE_KERNEL: present, rw, accessed, dirty, global).</summary>
    public const ulong PAGE_KERNEL = 0x163;

    /// <summary>"Any node" for the _node variants.</summary>
    private const int AnyNode = -1;

    /// <summary>__vmalloc_node: the one way in, so that every variant is a might_sleep point when its mask may block.</summary>
    private static KPtr VmallocNode(size_t size, gfp_t gfp, int node, VmFlags flags, CallSite site)
    {
        MightSleepIf(gfpflags_allow_blocking(gfp), site);
        return Machine.Current.Vmalloc.Alloc(size, gfp, node, flags, site);
    }

    /// <summary>
    /// Allocates <paramref name="size"/> bytes of virtually contiguous memory from order-0 pages.
    /// NULL for size 0, for more than the machine's RAM, or when memory or addresses run out.
    /// </summary>
    [MaySleep]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr vmalloc(size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, GFP_KERNEL, AnyNode, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vmalloc, zeroed.</summary>
    [MaySleep]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr vzalloc(size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, GFP_KERNEL | __GFP_ZERO, AnyNode, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vmalloc with pages from <paramref name="node"/> first.</summary>
    [MaySleep]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr vmalloc_node(size_t size, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, GFP_KERNEL, node, VmFlags.None, new CallSite(caller, file, line));

    [MaySleep]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr vzalloc_node(size_t size, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, GFP_KERNEL | __GFP_ZERO, node, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>Zeroed memory meant to be mapped to user space (VM_USERMAP).</summary>
    [MaySleep]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr vmalloc_user(size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, GFP_KERNEL | __GFP_ZERO, AnyNode, VmFlags.UserMap, new CallSite(caller, file, line));

    /// <summary>vmalloc from pages below 4 GiB (GFP_VMALLOC32).</summary>
    [MaySleep]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr vmalloc_32(size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, GFP_KERNEL | GFP_DMA32, AnyNode, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>vmalloc with the caller's GFP mask for the pages (__vmalloc).</summary>
    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Vmalloc)]
    public static KPtr __vmalloc(size_t size, gfp_t gfp_mask, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        VmallocNode(size, gfp_mask, AnyNode, VmFlags.None, new CallSite(caller, file, line));

    /// <summary>
    /// Frees a vmalloc area and its pages. NULL is a no-op. Anything but the start of a live vmalloc
    /// area is reported (mismatched, invalid or double free) and not freed. May be called from
    /// interrupt context, as in modern kernels; elsewhere it may sleep.
    /// </summary>
    [Frees(MemoryFamily.Vmalloc, "addr")]
    public static void vfree(KPtr addr, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        // As the kernel: outside interrupts vfree may sleep, even for NULL.
        MightSleepIf(!in_interrupt(), site);
        if (addr.IsNull) return;
        Machine.Current.Vmalloc.Free(addr.Address, site);
    }

    /// <summary>The page mapped at any address of a vmalloc (or vmap) area; NULL where nothing is mapped.</summary>
    public static page? vmalloc_to_page(KPtr vmalloc_addr) => Machine.Current.Vmalloc.PageAt(vmalloc_addr.Address);

    /// <summary>The frame number mapped at a vmalloc address; 0 where nothing is mapped.</summary>
    public static ulong vmalloc_to_pfn(KPtr vmalloc_addr) => vmalloc_to_page(vmalloc_addr)?.Pfn ?? 0;

    /// <summary>True for an address in the vmalloc area (ioremap has an area of its own here).</summary>
    public static bool is_vmalloc_addr(KPtr x) => Machine.Current.Memory.Vmalloc.Contains(x.Address);

    /// <summary>Maps <paramref name="count"/> pages contiguously into the vmalloc area; undo with vunmap. NULL when addresses run out.</summary>
    [MaySleep]
    public static KPtr vmap(page[] pages, uint count, ulong flags, ulong prot, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(pages);
        if (count == 0 || count > pages.Length) return NULL;
        if (flags != VM_MAP || prot != PAGE_KERNEL)
            throw new ArgumentException($"vmap: only flags VM_MAP and prot PAGE_KERNEL are simulated (got flags 0x{flags:x}, prot 0x{prot:x}).");
        page[] mapped = pages.AsSpan(0, (int)count).ToArray();
        foreach (page p in mapped)
            if (p is null || p.RefCount == 0) throw new ArgumentException("vmap: every page must be an allocated page.", nameof(pages));
        var site = new CallSite(caller, file, line);
        MightSleep(site);
        return Machine.Current.Vmalloc.Map(mapped, site);
    }

    /// <summary>Removes a vmap mapping; the pages stay allocated.</summary>
    [MaySleep]
    public static void vunmap(KPtr addr, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        MightSleep(site);
        if (addr.IsNull) return;
        Machine.Current.Vmalloc.Unmap(addr.Address, site);
    }
}
