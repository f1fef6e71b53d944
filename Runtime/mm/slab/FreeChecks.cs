namespace KmemGuard;

// The checks a debugging kernel makes before it frees a slab object (KASAN's
// kasan_slab_free, SLUB's free_consistency_checks, cache_from_obj). Each one reports before
// anything changes; a free that failed a check is not carried out.
internal sealed partial class SlabAllocator
{
    /// <summary>True when <paramref name="obj"/> may be freed to its slab; otherwise the bug is reported.</summary>
    public bool ValidSlabFree(Slab slab, kmem_cache_t? expected, ulong obj, string function)
    {
        if (expected != null && slab.Cache != expected)
        {
            FreeReport.Mismatched(Machine, function, obj, slab.Describe(obj),
                $"{function}: Wrong slab cache. {expected.Name} but object is from {slab.Cache.Name}");
            return false;
        }
        int index = slab.ObjectIndex(obj);
        if (index < 0)
        {
            ObjectInfo info = slab.Describe(obj)!;
            FreeReport.InvalidFree(Machine, function, obj, info,
                $"The address is {(long)(obj - info.Start)} bytes into an object of cache {slab.Cache.Name}: not the start of an object");
            return false;
        }
        if (slab.Objects != null && slab.Objects[index].State != Slab.ObjectAllocated)
        {
            FreeReport.DoubleFree(Machine, function, obj, slab.Describe(obj));
            return false;
        }
        return true;
    }

    /// <summary>
    /// A slab or kmalloc free of something that is neither a slab object nor a large kmalloc
    /// block: says what it is (by its address range and page flags) and reports it.
    /// </summary>
    public void ReportNonSlabFree(ulong address, string function, string rightFree)
    {
        if (!CheckFrees) return;
        ObjectInfo? info = Machine.Memory.Describe(address);
        page? head = HeadPageOf(address);
        if (Machine.Memory.Vmalloc.Contains(address))
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of vmalloc memory: free it with vfree()");
        else if (AddressLayout.IsIoremap(address))
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of an ioremap mapping: undo it with iounmap()");
        else if (Machine.Memory.PerCpu.Contains(address))
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of per-CPU memory: free it with free_percpu()");
        else if (head == null)
            FreeReport.InvalidFree(Machine, function, address, info, $"{function}() of an address that no allocator owns");
        else if (head.Has(PageFlags.Reserved))
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of bootmem memory: it is given back only with free_bootmem()");
        else if (head.RefCount == 0)
            FreeReport.DoubleFree(Machine, function, address, info);
        else if (head.Has(PageFlags.Vmalloc))
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of a page that backs a vmalloc area: free it with vfree()");
        else if (head.Has(PageFlags.LargeKmalloc))
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of a kmalloc block: free it with kfree()");
        else
            FreeReport.Mismatched(Machine, function, address, info, $"{function}() of memory from the page allocator: free it with {rightFree}");
    }
}
