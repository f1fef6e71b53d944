namespace KmemGuard;

// The three places where per-CPU code meets the context model. The context engineer owns
// preemption and DEBUG_PREEMPT: when their preempt_disable/preempt_enable are merged, the two
// helpers below become one-line calls to them, and CheckPreemptDisabled gets its body (in their
// own file: it is a partial method, so until then the calls to it compile away).
public static partial class Kernel
{
    /// <summary>preempt_disable for get_cpu/get_cpu_var: the first level takes the task's CPU for it alone.</summary>
    internal static void PreemptDisableInternal(KTask task)
    {
        if (task.PreemptCount++ == 0 && !task.OwnsCpu) task.Machine.Scheduler.TakeCpu(task);
    }

    /// <summary>preempt_enable for put_cpu/put_cpu_var: the last level gives the CPU back.</summary>
    internal static void PreemptEnableInternal(KTask task)
    {
        // An unmatched put_cpu is DEBUG_PREEMPT's UnbalancedPreempt report (preempt_enable's); here
        // it must at least not drive the count negative.
        if (task.PreemptCount == 0) return;
        if (--task.PreemptCount == 0) task.Machine.Scheduler.ReleaseCpu(task);
    }

    /// <summary>DEBUG_PREEMPT's check_preemption_disabled: "BUG: using <paramref name="function"/>() in preemptible [...] code".</summary>
    static partial void CheckPreemptDisabled(string function);
}
