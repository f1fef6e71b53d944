using System.Runtime.CompilerServices;

namespace KmemGuard;

// include/linux/rcupdate.h, non-preemptible RCU: a read-side section disables preemption.
public static partial class Kernel
{
    /// <summary>What lockdep lists for an RCU read-side section ("(rcu_read_lock){....}-{1:2}").</summary>
    private sealed class RcuReadLock
    {
        public override string ToString() => "rcu_read_lock";
    }

    private static readonly RcuReadLock s_rcuReadLock = new();

    [EntersSection(SectionKind.RcuRead)]
    public static void rcu_read_lock([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        PreemptCountAdd(task, 1, site);
        task.RcuDepth++;
        task.HeldLocks.Add(new HeldLock(s_rcuReadLock, "rcu_read_lock", "{....}-{1:2}", site));
    }

    [LeavesSection(SectionKind.RcuRead)]
    public static void rcu_read_unlock([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        int held = LastHeld(task, s_rcuReadLock);
        if (task.RcuDepth == 0 || held < 0)
        {
            ReportBadUnlock(task, s_rcuReadLock, site);
            return;
        }
        if (!PreemptCountSub(task, 1, KTask.PreemptMask, "rcu_read_unlock", site)) return;
        task.RcuDepth--;
        task.HeldLocks.RemoveAt(held);
    }

    /// <summary>True inside an RCU read-side section.</summary>
    public static bool rcu_read_lock_held() => Machine.Current.CurrentTask.RcuDepth > 0;
}
