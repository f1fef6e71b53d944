using System.Text;

namespace KmemGuard;

/// <summary>
/// Reports of bad frees (double, invalid, mismatched), in KASAN's form: the title, the task, the
/// stack, and what the checker knows of the block. The caller reports before it changes any
/// state and, in Report mode, then skips the free.
/// </summary>
internal static class FreeReport
{
    public static void DoubleFree(Machine machine, string function, ulong address, ObjectInfo? info) =>
        Raise(machine, BugKind.DoubleFree, "double-free", function, address, info, null);

    public static void InvalidFree(Machine machine, string function, ulong address, ObjectInfo? info, string reason) =>
        Raise(machine, BugKind.InvalidFree, "invalid-free", function, address, info, reason);

    /// <summary>A free by the wrong function (kfree of vmalloc memory, a cache that is not the object's, the wrong order).</summary>
    public static void Mismatched(Machine machine, string function, ulong address, ObjectInfo? info, string reason) =>
        Raise(machine, BugKind.MismatchedFree, "mismatched-free", function, address, info, reason);

    private static void Raise(Machine machine, BugKind kind, string name, string function, ulong address, ObjectInfo? info, string? reason)
    {
        KTask task = machine.CurrentTask;
        var text = new StringBuilder();
        text.Append(KasanReport.Rule).Append('\n');
        text.Append("BUG: KASAN: ").Append(name).Append(" in ").Append(function).Append('\n');
        text.Append("Free of addr ").Append(address.ToString("x16")).Append(" by task ").Append(task.Comm).Append('/').Append(task.Pid).Append('\n');
        if (reason != null) text.Append(reason).Append('\n');
        text.Append('\n');
        KasanReport.AppendCpuLine(text, task);
        text.Append("Call Trace:\n").Append(StackDepot.Walk()).Append('\n');
        if (info != null)
        {
            KasanReport.AppendTracks(text, info);
            text.Append("The buggy address belongs to the object at ").Append(info.Start.ToString("x16")).Append('\n');
            text.Append(info.CacheName != null
                ? $" which belongs to the cache {info.CacheName} of size {info.CacheObjectSize}\n"
                : $" which belongs to {KasanReport.FamilyName(info.Family)}\n");
        }
        text.Append(KasanReport.Rule).Append('\n');
        machine.Reporter.Raise(kind, text.ToString(), address);
    }
}
