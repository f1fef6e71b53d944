using System;
using System.Text;
using System.Threading;

namespace KmemGuard;

internal sealed partial class PageAllocator
{
    /// <summary>Flags no page may carry when the page functions free it (PAGE_FLAGS_CHECK_AT_FREE).</summary>
    private const PageFlags FlagsCheckAtFree = PageFlags.Reserved | PageFlags.Slab;

    /// <summary>Pages that another allocator hands out: only that allocator's free may release them.</summary>
    private const PageFlags OtherAllocator = PageFlags.Vmalloc | PageFlags.PerCpu | PageFlags.LargeKmalloc;

    /// <summary>
    /// __free_pages for a driver: drops a reference, and frees the block when it was the last.
    /// A bad free (double, not a block start, wrong order, another allocator's page, a page in a
    /// bad state) is reported first and not carried out.
    /// </summary>
    public void FreeFromCaller(page p, int order, string function, bool cold, CallSite site)
    {
        if (!CheckFree(p, order, function, site)) return;
        int left = Interlocked.Decrement(ref p.RefCount);
        if (left > 0) return;
        if (left < 0)
        {
            // Another thread freed it between the check and here: undo, then report.
            Interlocked.Increment(ref p.RefCount);
            if (_machine.IsChecking(Checks.Frees)) FreeReport.DoubleFree(_machine, Culprit(function, site), PageVirt(p), _machine.Memory.Describe(PageVirt(p)));
            return;
        }
        Free(p, order, site, cold);
    }

    /// <summary>get_page on a block's head: a reference on a free page would resurrect it (VM_BUG_ON_PAGE in the kernel).</summary>
    public void GetPage(page head)
    {
        while (true)
        {
            int count = Volatile.Read(ref head.RefCount);
            if (count <= 0 || head.Has(PageFlags.Reserved))
            {
                if (_machine.IsChecking(Checks.Sanity)) BadPage(head, "VM_BUG_ON_PAGE(page_ref_count(page) <= 0): get_page() of a page that is not allocated", null);
                return;
            }
            if (Interlocked.CompareExchange(ref head.RefCount, count + 1, count) == count) return;
        }
    }

    /// <summary>
    /// free_pages(addr, order) and free_page(addr): the address must be the direct-map start of a
    /// block; another allocator's address is a mismatched free. Returns the block's page, or null
    /// when the free was reported (or is not to be done).
    /// </summary>
    public page? PageForFree(ulong address, string function, CallSite site)
    {
        string culprit = Culprit(function, site);
        if (_machine.Memory.IsRam(address, 1))
        {
            if ((address & (ulong)(Kernel.PAGE_SIZE - 1)) == 0) return _ram.PageAt(KernelMemory.ToPhys(address) >> Kernel.PAGE_SHIFT);
            if (_machine.IsChecking(Checks.Frees))
                FreeReport.InvalidFree(_machine, culprit, address, _machine.Memory.Describe(address),
                    $"{function}: {address:x16} is not the start of a page block (it is {address & (ulong)(Kernel.PAGE_SIZE - 1)} bytes into its page)");
            return null;
        }
        if (!_machine.IsChecking(Checks.Frees)) return null;
        string? owner = _machine.Memory.Vmalloc.Contains(address) ? "a vmalloc area: free it with vfree()"
            : AddressLayout.IsIoremap(address) ? "an ioremap mapping: undo it with iounmap()"
            : _machine.Memory.PerCpu.Contains(address) ? "the per-CPU area: free it with free_percpu()"
            : null;
        if (owner != null)
            FreeReport.Mismatched(_machine, culprit, address, _machine.Memory.Describe(address), $"{function}: {address:x16} belongs to {owner}");
        else
            FreeReport.InvalidFree(_machine, culprit, address, null, $"{function}: {address:x16} is not a direct-map address of RAM (virt_addr_valid() fails)");
        return null;
    }

    private bool CheckFree(page p, int order, string function, CallSite site)
    {
        bool frees = _machine.IsChecking(Checks.Frees), sanity = _machine.IsChecking(Checks.Sanity);
        ulong address = PageVirt(p);
        string culprit = Culprit(function, site);
        if (p.Has(FlagsCheckAtFree))
        {
            if (sanity) BadPage(p, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set", p.Has(PageFlags.Reserved) && _machine.IsBootmem(p.Pfn << Kernel.PAGE_SHIFT)
                ? $"{function}: the page was allocated by alloc_bootmem(), which is never freed by the page functions"
                : p.Has(PageFlags.Slab) ? $"{function}: the page belongs to a slab: free its objects with kfree()/kmem_cache_free()" : null);
            return false;
        }
        if (p.Has(PageFlags.Tail))
        {
            if (frees)
                FreeReport.InvalidFree(_machine, culprit, address, _machine.Memory.Describe(address),
                    $"{function}: pfn {p.Pfn:x} is a tail page of the order-{p.HeadPage.Order} block at pfn {p.HeadPage.Pfn:x}, not the start of a block");
            return false;
        }
        if (Volatile.Read(ref p.RefCount) <= 0)
        {
            if (frees) FreeReport.DoubleFree(_machine, culprit, address, _machine.Memory.Describe(address));
            return false;
        }
        if (p.Has(OtherAllocator))
        {
            if (frees)
                FreeReport.Mismatched(_machine, culprit, address, _machine.Memory.Describe(address), $"{function}: the page belongs to " +
                    (p.Has(PageFlags.Vmalloc) ? "a vmalloc area: free it with vfree()"
                    : p.Has(PageFlags.PerCpu) ? "a per-CPU chunk: free it with free_percpu()"
                    : "a large kmalloc block: free it with kfree()"));
            return false;
        }
        if (p.Order != order)
        {
            if (frees)
                FreeReport.Mismatched(_machine, culprit, address, _machine.Memory.Describe(address),
                    $"{function}: freed with order {order}, but the block was allocated with order {p.Order}");
            return false;
        }
        for (ulong i = 1; i < 1UL << order; i++)
        {
            page tail = _ram.PageAt(p.Pfn + i);
            if (tail.RefCount == 0 && tail.Head == p) continue;
            if (sanity) BadPage(tail, tail.RefCount != 0 ? "nonzero _refcount" : "corrupted mapping in tail page", null);
            return false;
        }
        return true;
    }

    /// <summary>
    /// bad_page (mm/page_alloc.c): "BUG: Bad page state in process ...", the page dump, the
    /// reason and the stack. The page is not freed: the kernel leaks it rather than corrupt the lists.
    /// </summary>
    private void BadPage(page p, string reason, string? detail)
    {
        KTask task = _machine.CurrentTask;
        var text = new StringBuilder();
        text.Append("BUG: Bad page state in process ").Append(task.Comm).Append("  pfn:").Append(p.Pfn.ToString("x5")).Append('\n');
        text.Append("page:").Append(PageVirt(p).ToString("x16")).Append(" refcount:").Append(p.RefCount)
            .Append(" mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x").Append(p.Pfn.ToString("x")).Append('\n');
        if (p.Head is { } head) text.Append("head:").Append(PageVirt(head).ToString("x16")).Append(" order:").Append(head.Order).Append('\n');
        text.Append("flags: 0x").Append(((int)p.Flags).ToString("x")).Append('(').Append(FlagNames(p.Flags)).Append(")\n");
        text.Append("page dumped because: ").Append(reason).Append('\n');
        if (detail != null) text.Append(detail).Append('\n');
        text.Append("Modules linked in:\n");
        text.Append("CPU: ").Append(task.CpuId).Append(" PID: ").Append(task.Pid).Append(" Comm: ").Append(task.Comm).Append(" Tainted: G    B (KmemGuard)\n");
        text.Append("Call Trace:\n").Append(StackDepot.Walk());
        text.Append("Disabling lock debugging due to kernel taint\n");
        _machine.Reporter.Raise(BugKind.BadPageState, text.ToString(), PageVirt(p));
    }

    /// <summary>%pGp: the page's flags by name.</summary>
    private static string FlagNames(PageFlags flags)
    {
        var text = new StringBuilder();
        foreach (PageFlags flag in Enum.GetValues<PageFlags>())
        {
            if (flag == PageFlags.None || (flags & flag) == 0) continue;
            if (text.Length > 0) text.Append('|');
            text.Append(flag switch
            {
                PageFlags.PerCpuList => "pcp",
                PageFlags.LargeKmalloc => "large_kmalloc",
                PageFlags.PerCpu => "percpu",
                _ => flag.ToString().ToLowerInvariant(),
            });
        }
        return text.ToString();
    }

    /// <summary>Where KASAN says a bad free happened: the caller of the free, else the free itself.</summary>
    private static string Culprit(string function, CallSite site) => site.IsKnown ? site.Member : function;
}
