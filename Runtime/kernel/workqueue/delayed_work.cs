using System;
using System.Runtime.CompilerServices;

namespace KmemGuard;

/// <summary>A work item queued when its timer fires (jiffies move with Machine.AdvanceJiffies).</summary>
public sealed class delayed_work
{
    public readonly work_struct work = new();
    public readonly timer_list timer = new();

    /// <summary>The CPU whose kworker gets the work when the timer fires.</summary>
    internal int Cpu;

    public delayed_work() => work.Delayed = this;
}

// kernel/workqueue.c: delayed work on the system workqueue.
public static partial class Kernel
{
    [RunsCallback("func", CallbackContext.Process)]
    public static void INIT_DELAYED_WORK(delayed_work dwork, Action<work_struct> func)
    {
        INIT_WORK(dwork.work, func);
        timer_setup(dwork.timer, timer => QueueDelayed(dwork), 0);
    }

    /// <summary>The delayed_work a work item belongs to (container_of), or null.</summary>
    public static delayed_work? to_delayed_work(work_struct work) => work.Delayed;

    /// <summary>Queues the work after <paramref name="delay"/> jiffies; false when it was already pending.</summary>
    public static bool schedule_delayed_work(delayed_work dwork, ulong delay)
    {
        Machine machine = Machine.Current;
        if (work_pending(dwork.work) || timer_pending(dwork.timer)) return false;
        dwork.Cpu = machine.CurrentTask.CpuId;
        if (delay == 0) return machine.Workqueue.Queue(dwork.work, dwork.Cpu);
        mod_timer(dwork.timer, machine.Jiffies + delay);
        return true;
    }

    /// <summary>Cancels a pending delayed work without waiting; true when it was pending.</summary>
    public static bool cancel_delayed_work(delayed_work dwork)
    {
        if (del_timer(dwork.timer) != 0) return true;
        return Workqueue.TryUnqueue(dwork.work);
    }

    /// <summary>Cancels the timer and the work and waits for a running instance; true when it was pending.</summary>
    [MaySleep]
    public static bool cancel_delayed_work_sync(delayed_work dwork, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        bool timerPending = del_timer_sync(dwork.timer, caller, file, line) != 0;
        return cancel_work_sync(dwork.work, caller, file, line) || timerPending;
    }

    /// <summary>Queues a delayed work now if its timer is pending, and waits for it to finish.</summary>
    [MaySleep]
    public static bool flush_delayed_work(delayed_work dwork, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (del_timer_sync(dwork.timer, caller, file, line) != 0) QueueDelayed(dwork);
        return flush_work(dwork.work, caller, file, line);
    }

    private static void QueueDelayed(delayed_work dwork) => Machine.Current.Workqueue.Queue(dwork.work, dwork.Cpu);
}
