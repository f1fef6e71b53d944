using System.Runtime.CompilerServices;
using System.Text;

namespace KmemGuard;

// include/linux/preempt.h, kernel/sched/core.c (preempt_count_add/sub): the preemption count and
// what it makes of the task. Everything that disables preemption (spinlocks, get_cpu, bottom
// halves, RCU, the slab fast path) goes through PreemptCountAdd/PreemptCountSub.
public static partial class Kernel
{
    /// <summary>Disables preemption on the current CPU (nests).</summary>
    [EntersSection(SectionKind.PreemptDisabled)]
    public static void preempt_disable([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        PreemptDisableInternal(new CallSite(caller, file, line));

    /// <summary>Enables preemption again; at zero the task may be preempted (and migrate).</summary>
    [LeavesSection(SectionKind.PreemptDisabled)]
    public static void preempt_enable([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        PreemptEnableInternal(new CallSite(caller, file, line));

    /// <summary>True when preempt_count is not zero: preemption, softirqs or a hard irq (or a spinlock).</summary>
    public static bool in_atomic() => Machine.Current.CurrentTask.PreemptCount != 0;

    /// <summary>True in hard-irq or softirq context, or with bottom halves disabled.</summary>
    public static bool in_interrupt() => (Machine.Current.CurrentTask.PreemptCount & (KTask.HardirqMask | KTask.SoftirqMask)) != 0;

    /// <summary>True in hard-irq context.</summary>
    public static bool in_irq() => (Machine.Current.CurrentTask.PreemptCount & KTask.HardirqMask) != 0;

    /// <summary>The modern name of <see cref="in_irq"/>.</summary>
    public static bool in_hardirq() => in_irq();

    /// <summary>True while serving a softirq, or with bottom halves disabled (the kernel's softirq_count()).</summary>
    public static bool in_softirq() => (Machine.Current.CurrentTask.PreemptCount & KTask.SoftirqMask) != 0;

    /// <summary>True while a softirq (timer, tasklet) is being served.</summary>
    public static bool in_serving_softirq() => (Machine.Current.CurrentTask.PreemptCount & KTask.SoftirqOffset) != 0;

    /// <summary>True in process context (not in a hard irq, not serving a softirq).</summary>
    public static bool in_task() => (Machine.Current.CurrentTask.PreemptCount & (KTask.HardirqMask | KTask.SoftirqOffset)) == 0;

    /// <summary>True when the current CPU has interrupts disabled.</summary>
    public static bool irqs_disabled() => Machine.Current.CurrentTask.IrqsOff;

    /// <summary>True when the task may be preempted: preempt_count is zero and interrupts are on.</summary>
    public static bool preemptible() => Machine.Current.CurrentTask.Preemptible;

    /// <summary>The raw preempt_count (preemption depth, softirq and hardirq counts).</summary>
    public static int preempt_count() => Machine.Current.CurrentTask.PreemptCount;

    /// <summary>
    /// preempt_disable for the runtime's own code (get_cpu, the slab fast path): returns the current
    /// task, whose <see cref="KTask.CpuId"/> stays fixed until <see cref="PreemptEnableInternal"/>.
    /// </summary>
    internal static KTask PreemptDisableInternal(CallSite site)
    {
        KTask task = Machine.Current.CurrentTask;
        PreemptCountAdd(task, 1, site);
        return task;
    }

    /// <summary>preempt_enable for the runtime's own code (put_cpu, the slab fast path).</summary>
    internal static void PreemptEnableInternal(CallSite site) =>
        PreemptCountSub(Machine.Current.CurrentTask, 1, KTask.PreemptMask, "preempt_enable", site);

    /// <summary>
    /// preempt_enable_no_resched, for the runtime's own short, always balanced fast paths (the
    /// slab's per-CPU arrays): gives the CPU back without a preemption point, so an allocation
    /// pair does not pay for a host yield.
    /// </summary>
    internal static void PreemptEnableNoResched(KTask task)
    {
        task.PreemptCount--;
        if (task.Preemptible && task.OwnsCpu) task.Machine.Scheduler.ReleaseCpu(task);
    }

    /// <summary>Adds to preempt_count; a task that stops being preemptible takes its CPU first.</summary>
    internal static void PreemptCountAdd(KTask task, int value, CallSite site)
    {
        if (!task.OwnsCpu) task.Machine.Scheduler.TakeCpu(task);
        if (task.PreemptCount == 0) task.PreemptDisabledAt = site;
        task.PreemptCount += value;
    }

    /// <summary>
    /// Subtracts from preempt_count. An enable without a matching disable is reported and not
    /// done (the count never goes negative). A task that becomes preemptible gives its CPU back and
    /// passes a preemption point.
    /// </summary>
    internal static bool PreemptCountSub(KTask task, int value, int field, string function, CallSite site)
    {
        if ((task.PreemptCount & field) < value)
        {
            ReportUnderflow(task, function, site);
            return false;
        }
        task.PreemptCount -= value;
        if (task.Preemptible && task.OwnsCpu)
        {
            Scheduler scheduler = task.Machine.Scheduler;
            scheduler.ReleaseCpu(task);
            scheduler.PreemptionPoint(task);
        }
        return true;
    }

    private static void ReportUnderflow(KTask task, string function, CallSite site)
    {
        if (!task.Machine.IsChecking(Checks.DebugPreempt)) return;
        var text = new StringBuilder();
        text.Append("DEBUG_LOCKS_WARN_ON(val > preempt_count())\n");
        ContextReport.AppendWarning(text, task, site, function + "()");
        text.Append(function).Append("() without a matching disable: preempt_count: ").Append(task.PreemptCount.ToString("x8")).Append('\n');
        ContextReport.AppendTail(text, task);
        task.Machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
    }
}
