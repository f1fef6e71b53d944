using System.Text;

namespace KmemGuard;

/// <summary>Formats KASAN's and the page-fault handler's reports, as the kernel prints them.</summary>
internal static class KasanReport
{
    public const string Rule = "==================================================================";

    public static BugKind KindOf(byte code, ulong address) => code switch
    {
        Kasan.SlabRedzone => BugKind.SlabOutOfBounds,
        Kasan.SlabFree => BugKind.SlabUseAfterFree,
        Kasan.PageFree => BugKind.UseAfterFree,
        Kasan.VmallocInvalid => BugKind.VmallocOutOfBounds,
        _ => BugKind.OutOfBounds,
    };

    public static string BugName(BugKind kind) => kind switch
    {
        BugKind.SlabOutOfBounds => "slab-out-of-bounds",
        BugKind.SlabUseAfterFree => "slab-use-after-free",
        BugKind.UseAfterFree => "use-after-free",
        BugKind.VmallocOutOfBounds => "vmalloc-out-of-bounds",
        BugKind.DoubleFree => "double-free",
        BugKind.InvalidFree => "invalid-free",
        _ => "out-of-bounds",
    };

    /// <summary>The first frame outside the runtime: where the bad access was made.</summary>
    public static string Culprit(string stack)
    {
        string first = stack.TrimStart();
        int end = first.IndexOfAny(new[] { ' ', '\n' });
        return end < 0 ? first : first.Substring(0, end);
    }

    public static string BadAccess(Machine machine, BugKind kind, ulong address, ulong size, AccessKind access, ulong bad, byte code)
    {
        KTask task = machine.CurrentTask;
        string stack = StackDepot.Walk();
        var text = new StringBuilder();
        text.Append(Rule).Append('\n');
        text.Append("BUG: KASAN: ").Append(BugName(kind)).Append(" in ").Append(Culprit(stack)).Append('\n');
        text.Append(access == AccessKind.Write ? "Write" : "Read").Append(" of size ").Append(size)
            .Append(" at addr ").Append(bad.ToString("x16")).Append(" by task ").Append(task.Comm).Append('/').Append(task.Pid).Append("\n\n");
        AppendCpuLine(text, task);
        text.Append("Call Trace:\n").Append(stack).Append('\n');
        ObjectInfo? info = machine.Memory.Describe(bad);
        if (info != null) AppendObject(text, info, bad);
        if (machine.Memory.Kasan != null) text.Append('\n').Append(machine.Memory.Kasan.DumpAround(bad));
        text.Append(Rule).Append('\n');
        return text.ToString();
    }

    public static void AppendCpuLine(StringBuilder text, KTask task) =>
        text.Append("CPU: ").Append(task.CpuId).Append(" PID: ").Append(task.Pid).Append(" Comm: ").Append(task.Comm).Append(" Not tainted (KmemGuard)\n");

    public static void AppendTracks(StringBuilder text, ObjectInfo info)
    {
        if (info.AllocTrack is { } alloc)
            text.Append("Allocated by task ").Append(alloc.Pid).Append(" on cpu ").Append(alloc.Cpu).Append(" at ").Append(alloc.Jiffies).Append(" jiffies:\n").Append(alloc.StackText).Append('\n');
        if (info.FreeTrack is { } free && !info.Allocated)
            text.Append("Freed by task ").Append(free.Pid).Append(" on cpu ").Append(free.Cpu).Append(" at ").Append(free.Jiffies).Append(" jiffies:\n").Append(free.StackText).Append('\n');
    }

    private static void AppendObject(StringBuilder text, ObjectInfo info, ulong bad)
    {
        if (info.Family == MemoryFamily.Vmalloc)
        {
            if (!info.Allocated) AppendTracks(text, info);
            // mm/kasan/report.c describes a vmalloc address by its vm_struct, whose size counts the guard page.
            ulong mapped = (info.RequestedSize + (ulong)Kernel.PAGE_SIZE - 1) & ~((ulong)Kernel.PAGE_SIZE - 1);
            text.Append("The buggy address belongs to the virtual mapping at\n [").Append(info.Start.ToString("x16")).Append(", ")
                .Append((info.Start + mapped + (ulong)Kernel.PAGE_SIZE).ToString("x16")).Append(") created by:\n")
                .Append(info.AllocTrack?.StackText ?? " <unknown>\n");
            return;
        }
        AppendTracks(text, info);
        text.Append("The buggy address belongs to the object at ").Append(info.Start.ToString("x16")).Append('\n');
        if (info.CacheName != null)
            text.Append(" which belongs to the cache ").Append(info.CacheName).Append(" of size ").Append(info.CacheObjectSize).Append('\n');
        else
            text.Append(" which belongs to ").Append(FamilyName(info.Family)).Append('\n');
        string region = info.Allocated ? "allocated" : "freed";
        ulong end = info.Start + info.RequestedSize;
        text.Append("The buggy address is located ");
        if (bad >= end) text.Append(bad - end).Append(" bytes to the right of\n");
        else if (bad < info.Start) text.Append(info.Start - bad).Append(" bytes to the left of\n");
        else text.Append(bad - info.Start).Append(" bytes inside of\n");
        text.Append(' ').Append(region).Append(' ').Append(info.RequestedSize).Append("-byte region [")
            .Append(info.Start.ToString("x16")).Append(", ").Append(end.ToString("x16")).Append(")\n");
    }

    public static string FamilyName(MemoryFamily family) => family switch
    {
        MemoryFamily.Kmalloc => "a kmalloc block",
        MemoryFamily.SlabCache => "a slab object",
        MemoryFamily.Pages => "a page block of the buddy allocator",
        MemoryFamily.Vmalloc => "a vmalloc area",
        MemoryFamily.IoRemap => "an ioremap mapping",
        MemoryFamily.PerCpu => "a per-CPU allocation",
        MemoryFamily.Mempool => "a mempool element",
        MemoryFamily.Bootmem => "bootmem",
        _ => family.ToString(),
    };

    public static string PageFault(Machine machine, BugKind kind, ulong address, AccessKind access)
    {
        KTask task = machine.CurrentTask;
        string stack = StackDepot.Walk();
        var text = new StringBuilder();
        text.Append(kind == BugKind.NullPtrDeref
            ? "BUG: kernel NULL pointer dereference, address: "
            : "BUG: unable to handle page fault for address: ").Append(address.ToString("x16")).Append('\n');
        text.Append("#PF: supervisor ").Append(access == AccessKind.Write ? "write" : "read").Append(" access in kernel mode\n");
        text.Append("#PF: error_code(0x000").Append(access == AccessKind.Write ? '2' : '0').Append(") - not-present page\n");
        text.Append("Oops: 0000 [#1] SMP KASAN\n");
        AppendCpuLine(text, task);
        text.Append("RIP: ").Append(Culprit(stack)).Append('\n');
        text.Append("Call Trace:\n").Append(stack);
        return text.ToString();
    }
}
