using System.Text;

namespace KmemGuard;

/// <summary>The parts that the scheduler's, lockdep's and DEBUG_PREEMPT's reports share.</summary>
internal static class ContextReport
{
    /// <summary>"file:line", as the kernel names the place of a might_sleep.</summary>
    public static string FileLine(CallSite site) =>
        site.IsKnown ? $"{System.IO.Path.GetFileName(site.File)}:{site.Line}" : "<unknown>";

    /// <summary>lockdep's held-locks list ("1 lock held by insmod/123:" and one line per lock).</summary>
    public static void AppendHeldLocks(StringBuilder text, KTask task)
    {
        int n = task.HeldLocks.Count;
        if (n == 0)
        {
            text.Append("no locks held by ").Append(task.Comm).Append('/').Append(task.Pid).Append(".\n");
            return;
        }
        text.Append(n).Append(n == 1 ? " lock held by " : " locks held by ").Append(task.Comm).Append('/').Append(task.Pid).Append(":\n");
        for (int i = 0; i < n; i++)
        {
            HeldLock held = task.HeldLocks[i];
            text.Append(" #").Append(i).Append(": ").Append(LockAddress(held.Lock)).Append(" (").Append(held.Name).Append(')')
                .Append(held.Usage).Append(", at: ").Append(held.At).Append('\n');
        }
    }

    /// <summary>A stable pseudo address for a managed lock object, in the direct map's range.</summary>
    public static string LockAddress(object lockObject) =>
        (0xffff888000000000UL | ((ulong)(uint)System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(lockObject) << 4)).ToString("x16");

    /// <summary>The CPU line and the C# call trace that end every report.</summary>
    public static void AppendTail(StringBuilder text, KTask task)
    {
        KasanReport.AppendCpuLine(text, task);
        text.Append("Call Trace:\n").Append(StackDepot.Walk());
    }

    /// <summary>The kernel's WARN() header: "WARNING: CPU: 0 PID: 12 at site function".</summary>
    public static void AppendWarning(StringBuilder text, KTask task, CallSite site, string function) =>
        text.Append("WARNING: CPU: ").Append(task.CpuId).Append(" PID: ").Append(task.Pid).Append(" at ").Append(FileLine(site))
            .Append(' ').Append(function).Append('\n');
}
