using System.Runtime.CompilerServices;

namespace KmemGuard;

// mm/util.c: kvmalloc, physically contiguous memory when it comes cheaply, virtually contiguous otherwise.
public static partial class Kernel
{
    /// <summary>
    /// kvmalloc_node: kmalloc first; above a page, kmalloc is asked not to warn nor retry hard, and
    /// vmalloc is the fallback. A mask that is not GFP_KERNEL-compatible (GFP_ATOMIC, GFP_NOFS, ...)
    /// never falls back, as vmalloc's own allocations use GFP_KERNEL. More than INT_MAX bytes: NULL.
    /// </summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc)]
    public static KPtr kvmalloc_node(size_t size, gfp_t flags, int node, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if ((flags & GFP_KERNEL) != GFP_KERNEL) return kmalloc_node(size, flags, node, caller, file, line);
        gfp_t kmallocFlags = flags;
        if (size > PAGE_SIZE)
        {
            // A large contiguous block is only worth it when it is cheap: no OOM, no warning, vmalloc will do.
            kmallocFlags |= __GFP_NOWARN;
            if ((kmallocFlags & __GFP_RETRY_MAYFAIL) == 0) kmallocFlags |= __GFP_NORETRY;
            kmallocFlags &= ~__GFP_NOFAIL;
        }
        KPtr ret = kmalloc_node(size, kmallocFlags, node, caller, file, line);
        if (!ret.IsNull || size <= PAGE_SIZE) return ret;
        if (size > int.MaxValue)
        {
            if ((flags & __GFP_NOWARN) == 0)
            {
                Machine machine = Machine.Current;
                machine.Warn(KernelLog.WarningHeader(machine, "mm/util.c", "kvmalloc_node") + $"kvmalloc_node: size {size.Value} > INT_MAX");
            }
            return NULL;
        }
        return VmallocNode(size, flags, node, VmFlags.None, new CallSite(caller, file, line));
    }

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc)]
    public static KPtr kvmalloc(size_t size, gfp_t flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        kvmalloc_node(size, flags, AnyNode, caller, file, line);

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc)]
    public static KPtr kvzalloc(size_t size, gfp_t flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        kvmalloc_node(size, flags | __GFP_ZERO, AnyNode, caller, file, line);

    /// <summary>An array of <paramref name="n"/> elements; NULL when n * size overflows.</summary>
    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc)]
    public static KPtr kvmalloc_array(size_t n, size_t size, gfp_t flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (size.Value != 0 && n.Value > ulong.MaxValue / size.Value) return NULL;
        return kvmalloc_node(n.Value * size.Value, flags, AnyNode, caller, file, line);
    }

    [MaySleepIfGfp("flags")]
    [Allocates(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc)]
    public static KPtr kvcalloc(size_t n, size_t size, gfp_t flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        kvmalloc_array(n, size, flags | __GFP_ZERO, caller, file, line);

    /// <summary>Frees what kvmalloc returned, whichever allocator it came from; NULL is a no-op.</summary>
    [Frees(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc, "addr")]
    public static void kvfree(KPtr addr, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (is_vmalloc_addr(addr)) vfree(addr, caller, file, line);
        else kfree(addr, caller, file, line);
    }
}
