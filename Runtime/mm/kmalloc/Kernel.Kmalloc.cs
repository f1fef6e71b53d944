using System.Runtime.CompilerServices;

namespace KmemGuard;

// include/linux/slab.h and mm/slab_common.c: kmalloc and friends.
public static partial class Kernel
{
    /// <summary>The largest kmalloc served by a kmalloc-N cache (two pages); larger ones come from the page allocator.</summary>
    public const int KMALLOC_MAX_CACHE_SIZE = 8192;

    /// <summary>The largest kmalloc at all: one MAX_ORDER block (4 MiB). Larger requests get NULL and a warning.</summary>
    public const int KMALLOC_MAX_SIZE = 1 << (MAX_ORDER + PAGE_SHIFT);

    /// <summary>
    /// <paramref name="size"/> bytes, aligned to at least 8 (to the size for powers of two), or
    /// NULL. kmalloc(0) is ZERO_SIZE_PTR. Under KASAN exactly <paramref name="size"/> bytes are accessible.
    /// </summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc)]
    public static KPtr kmalloc(size_t size, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        new(Machine.Current.Kmalloc.Alloc(size, flags, -1, new CallSite(caller, file, line)));

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc)]
    public static KPtr kzalloc(size_t size, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        new(Machine.Current.Kmalloc.Alloc(size, flags | __GFP_ZERO, -1, new CallSite(caller, file, line)));

    /// <summary>kmalloc from NUMA node <paramref name="node"/> if it can (NUMA_NO_NODE = -1: the CPU's node).</summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc)]
    public static KPtr kmalloc_node(size_t size, gfp_t flags, int node,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        new(Machine.Current.Kmalloc.Alloc(size, flags, node, new CallSite(caller, file, line)));

    /// <summary>An array of <paramref name="n"/> elements; NULL when n * size overflows.</summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc)]
    public static KPtr kmalloc_array(size_t n, size_t size, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (size.Value != 0 && n.Value > ulong.MaxValue / size.Value) return NULL;
        return new(Machine.Current.Kmalloc.Alloc(n.Value * size.Value, flags, -1, new CallSite(caller, file, line)));
    }

    /// <summary>A zeroed array; NULL when n * size overflows.</summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc)]
    public static KPtr kcalloc(size_t n, size_t size, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        kmalloc_array(n, size, flags | __GFP_ZERO, caller, file, line);

    /// <summary>
    /// Resizes a kmalloc block: in place when <paramref name="new_size"/> fits its ksize, else a
    /// new block with the old contents; NULL on failure (the old block stays). NULL
    /// <paramref name="p"/> is kmalloc; new_size 0 frees <paramref name="p"/> and returns ZERO_SIZE_PTR.
    /// </summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc)]
    public static KPtr krealloc(KPtr p, size_t new_size, gfp_t flags,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Machine machine = Machine.Current;
        var site = new CallSite(caller, file, line);
        if (new_size.Value == 0)
        {
            if (!ZERO_OR_NULL_PTR(p)) machine.Kmalloc.Free(p.Address, "krealloc", sensitive: false, site);
            return ZERO_SIZE_PTR;
        }
        if (ZERO_OR_NULL_PTR(p)) return new(machine.Kmalloc.Alloc(new_size, flags, -1, site));
        return new(machine.Kmalloc.Realloc(p.Address, new_size, flags, site));
    }

    /// <summary>The usable size of a kmalloc block (at least what was asked); afterwards all of it may be used.</summary>
    public static nuint ksize(KPtr objp) => ZERO_OR_NULL_PTR(objp) ? 0 : (nuint)Machine.Current.Kmalloc.Ksize(objp.Address);

    /// <summary>Frees a kmalloc block (or any slab object); NULL and ZERO_SIZE_PTR are ignored.</summary>
    [Frees(MemoryFamily.Kmalloc, "objp")]
    public static void kfree(KPtr objp,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (ZERO_OR_NULL_PTR(objp)) return;
        Machine.Current.Kmalloc.Free(objp.Address, "kfree", sensitive: false, new CallSite(caller, file, line));
    }

    /// <summary>kfree that first zeroes the whole block (for keys and passwords).</summary>
    [Frees(MemoryFamily.Kmalloc, "objp")]
    public static void kfree_sensitive(KPtr objp,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (ZERO_OR_NULL_PTR(objp)) return;
        Machine.Current.Kmalloc.Free(objp.Address, "kfree_sensitive", sensitive: true, new CallSite(caller, file, line));
    }
}
