using System;
using System.Runtime.CompilerServices;

namespace KmemGuard;

// include/linux/gfp.h, mm/page_alloc.c, include/asm-generic/getorder.h, arch/x86/include/asm/page.h.
public static partial class Kernel
{
    /// <summary>Orders above this are "costly": without __GFP_RETRY_MAYFAIL they give up after one reclaim pass.</summary>
    public const int PAGE_ALLOC_COSTLY_ORDER = 3;

    /// <summary>alloc_pages_node's "any node": the current CPU's node first.</summary>
    public const int NUMA_NO_NODE = -1;

    /// <summary>
    /// The order of the smallest block that holds <paramref name="size"/> bytes (rounds up).
    /// The kernel leaves get_order(0) undefined; its generic code computes fls64(0UL - 1 &gt;&gt; PAGE_SHIFT)
    /// = BITS_PER_LONG - PAGE_SHIFT = 52 (and so does its constant-folded form), and so does this.
    /// </summary>
    public static int get_order(size_t size)
    {
        ulong n = (size.Value - 1) >> PAGE_SHIFT;
        return 64 - System.Numerics.BitOperations.LeadingZeroCount(n);
    }

    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages, OrderParameter = "order")]
    public static page? alloc_pages(gfp_t gfp_mask, int order,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Machine.Current.PageAllocator.AllocFromCaller(gfp_mask, order, NUMA_NO_NODE, new CallSite(caller, file, line));

    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages)]
    public static page? alloc_page(gfp_t gfp_mask,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Machine.Current.PageAllocator.AllocFromCaller(gfp_mask, 0, NUMA_NO_NODE, new CallSite(caller, file, line));

    /// <summary>
    /// 2^order pages from node <paramref name="nid"/> first (then the other nodes, unless
    /// __GFP_THISNODE); NUMA_NO_NODE means the current CPU's node.
    /// </summary>
    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages, OrderParameter = "order")]
    public static page? alloc_pages_node(int nid, gfp_t gfp_mask, int order,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Machine m = Machine.Current;
        if (nid < NUMA_NO_NODE || nid >= m.Ram.Nodes.Length)
            throw new ArgumentOutOfRangeException(nameof(nid), nid, $"alloc_pages_node: node {nid} does not exist (this machine has {m.Ram.Nodes.Length} node(s); NUMA_NO_NODE = -1 means any).");
        return m.PageAllocator.AllocFromCaller(gfp_mask, order, nid, new CallSite(caller, file, line));
    }

    /// <summary>The kernel address of 2^order pages, or 0. __GFP_HIGHMEM is ignored: the pages must have an address.</summary>
    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages, OrderParameter = "order")]
    public static ulong __get_free_pages(gfp_t gfp_mask, int order,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        page? p = Machine.Current.PageAllocator.AllocFromCaller(gfp_mask & ~__GFP_HIGHMEM, order, NUMA_NO_NODE, new CallSite(caller, file, line));
        return p == null ? 0 : PageAllocator.PageVirt(p);
    }

    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages)]
    public static ulong __get_free_page(gfp_t gfp_mask,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        __get_free_pages(gfp_mask, 0, caller, file, line);

    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages)]
    public static ulong get_zeroed_page(gfp_t gfp_mask,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        __get_free_pages(gfp_mask | __GFP_ZERO, 0, caller, file, line);

    /// <summary>LDD3's __get_dma_pages: __get_free_pages from ZONE_DMA.</summary>
    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages, OrderParameter = "order")]
    public static ulong __get_dma_pages(gfp_t gfp_mask, int order,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        __get_free_pages(gfp_mask | GFP_DMA, order, caller, file, line);

    /// <summary>Frees what __get_free_pages returned, with the same order. free_pages(0, n) does nothing.</summary>
    [Frees(MemoryFamily.Pages, "addr", OrderParameter = "order")]
    public static void free_pages(ulong addr, int order,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (addr == 0) return;
        PageAllocator allocator = Machine.Current.PageAllocator;
        var site = new CallSite(caller, file, line);
        page? p = allocator.PageForFree(addr, nameof(free_pages), site);
        if (p != null) allocator.FreeFromCaller(p, order, nameof(free_pages), cold: false, site);
    }

    [Frees(MemoryFamily.Pages, "addr")]
    public static void free_page(ulong addr,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (addr == 0) return;
        PageAllocator allocator = Machine.Current.PageAllocator;
        var site = new CallSite(caller, file, line);
        page? p = allocator.PageForFree(addr, nameof(free_page), site);
        if (p != null) allocator.FreeFromCaller(p, 0, nameof(free_page), cold: false, site);
    }

    /// <summary>Drops a reference to 2^order pages from alloc_pages; the last one frees them.</summary>
    [Frees(MemoryFamily.Pages, "page", OrderParameter = "order")]
    public static void __free_pages(page page, int order,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(page);
        Machine.Current.PageAllocator.FreeFromCaller(page, order, nameof(__free_pages), cold: false, new CallSite(caller, file, line));
    }

    [Frees(MemoryFamily.Pages, "page")]
    public static void __free_page(page page,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(page);
        Machine.Current.PageAllocator.FreeFromCaller(page, 0, nameof(__free_page), cold: false, new CallSite(caller, file, line));
    }

    /// <summary>Frees one page to the head of this CPU's list: the next order-0 allocation here gets it, still in cache.</summary>
    [Frees(MemoryFamily.Pages, "page")]
    public static void free_hot_page(page page,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(page);
        Machine.Current.PageAllocator.FreeFromCaller(page, 0, nameof(free_hot_page), cold: false, new CallSite(caller, file, line));
    }

    /// <summary>Frees one page to the tail of this CPU's list: it goes back to the buddy lists first; __GFP_COLD takes from there.</summary>
    [Frees(MemoryFamily.Pages, "page")]
    public static void free_cold_page(page page,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(page);
        Machine.Current.PageAllocator.FreeFromCaller(page, 0, nameof(free_cold_page), cold: true, new CallSite(caller, file, line));
    }

    /// <summary>get_page: takes another reference (to the head of a block). A free page has none to add to: BadPageState.</summary>
    public static void get_page(page page)
    {
        ArgumentNullException.ThrowIfNull(page);
        Machine.Current.PageAllocator.GetPage(page.HeadPage);
    }

    /// <summary>put_page: drops a reference; the last one frees the whole block.</summary>
    [Frees(MemoryFamily.Pages, "page")]
    public static void put_page(page page,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(page);
        page head = page.HeadPage;
        Machine.Current.PageAllocator.FreeFromCaller(head, head.Order, nameof(put_page), cold: false, new CallSite(caller, file, line));
    }

    /// <summary>page_count: the references to the page's block.</summary>
    public static int page_count(page page) => System.Threading.Volatile.Read(ref page.HeadPage.RefCount);

    /// <summary>
    /// split_page: makes an order-n block (not compound) into 2^n independent order-0 pages, each
    /// with its own reference, so that each can be freed on its own.
    /// </summary>
    public static void split_page(page page, int order)
    {
        ArgumentNullException.ThrowIfNull(page);
        if (page.Has(PageFlags.Tail) || page.RefCount <= 0 || page.Order != order)
            throw new ArgumentException($"split_page: {page} is not an allocated order-{order} block.", nameof(page));
        Machine m = Machine.Current;
        for (ulong i = 0; i < 1UL << order; i++)
        {
            page frame = m.Ram.PageAt(page.Pfn + i);
            frame.Flags = PageFlags.None;
            frame.Order = 0;
            frame.Head = null;
            frame.RefCount = 1;
            frame.AllocTrack = page.AllocTrack;
        }
    }

    /// <summary>
    /// alloc_pages_exact: PAGE_ALIGN(size) bytes of physically contiguous pages; the pages of the
    /// power-of-two block beyond them go back at once. Free with free_pages_exact.
    /// </summary>
    [MaySleepIfGfp("gfp_mask")]
    [Allocates(MemoryFamily.Pages)]
    public static KPtr alloc_pages_exact(size_t size, gfp_t gfp_mask,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        int order = get_order(size);
        Machine m = Machine.Current;
        var site = new CallSite(caller, file, line);
        page? block = m.PageAllocator.AllocFromCaller(gfp_mask & ~(__GFP_HIGHMEM | __GFP_COMP), order, NUMA_NO_NODE, site);
        if (block == null) return NULL;
        split_page(block, order);
        ulong used = (size.Value + (ulong)PAGE_SIZE - 1) >> PAGE_SHIFT;
        for (ulong i = used; i < 1UL << order; i++) m.PageAllocator.Free(m.Ram.PageAt(block.Pfn + i), 0, site);
        return page_address(block);
    }

    [Frees(MemoryFamily.Pages, "virt")]
    public static void free_pages_exact(KPtr virt, size_t size,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        PageAllocator allocator = Machine.Current.PageAllocator;
        var site = new CallSite(caller, file, line);
        ulong end = virt.Address + ((size.Value + (ulong)PAGE_SIZE - 1) & ~(ulong)(PAGE_SIZE - 1));
        for (ulong address = virt.Address; address < end; address += (ulong)PAGE_SIZE)
        {
            page? p = allocator.PageForFree(address, nameof(free_pages_exact), site);
            if (p == null) return;
            allocator.FreeFromCaller(p, 0, nameof(free_pages_exact), cold: false, site);
        }
    }

    /// <summary>The kernel address of the page (the direct map covers all RAM here, highmem included: no kmap needed).</summary>
    public static KPtr page_address(page page) => new(PageAllocator.PageVirt(page));

    /// <summary>The page of a direct-map address (kmalloc, __get_free_pages); vmalloc addresses need vmalloc_to_page.</summary>
    public static page virt_to_page(KPtr addr)
    {
        Machine m = Machine.Current;
        if (!m.Memory.IsRam(addr.Address, 1))
            throw new ArgumentException($"virt_to_page: {addr} is not a direct-map address of RAM (use vmalloc_to_page for vmalloc addresses).", nameof(addr));
        return m.Ram.PageAt(KernelMemory.ToPhys(addr.Address) >> PAGE_SHIFT);
    }

    /// <summary>virt_addr_valid: is this a direct-map address of RAM (one virt_to_page may take)?</summary>
    public static bool virt_addr_valid(KPtr addr) => Machine.Current.Memory.IsRam(addr.Address, 1);

    public static ulong page_to_pfn(page page) => page.Pfn;

    public static page pfn_to_page(ulong pfn)
    {
        Machine m = Machine.Current;
        if (!m.Ram.IsValidPfn(pfn))
            throw new ArgumentOutOfRangeException(nameof(pfn), pfn, $"pfn_to_page: pfn {pfn:x} is beyond the machine's RAM (pfn_valid() is false).");
        return m.Ram.PageAt(pfn);
    }

    public static bool pfn_valid(ulong pfn) => Machine.Current.Ram.IsValidPfn(pfn);

    public static int page_to_nid(page page) => page.Zone.Node.Id;

    /// <summary>The physical address of a direct-map address.</summary>
    public static ulong __pa(KPtr x)
    {
        if (!AddressLayout.IsDirectMap(x.Address))
            throw new ArgumentException($"__pa: {x} is not in the direct map (only kmalloc and page addresses have a physical address this way; use vmalloc_to_page for vmalloc).", nameof(x));
        return KernelMemory.ToPhys(x.Address);
    }

    /// <summary>The direct-map address of a physical address.</summary>
    public static KPtr __va(ulong x) => new(KernelMemory.ToVirt(x));

    /// <summary>Free pages of the machine, on the buddy lists and the per-CPU lists.</summary>
    public static ulong nr_free_pages() => (ulong)Machine.Current.PageAllocator.FreePages;

    /// <summary>Pages the page allocator manages: RAM minus what bootmem kept.</summary>
    public static ulong totalram_pages() => (ulong)Machine.Current.PageAllocator.ManagedPages;
}
