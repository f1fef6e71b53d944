using System;
using System.Text;

namespace KmemGuard;

/// <summary>
/// CONFIG_DEBUG_PREEMPT (lib/smp_processor_id.c): code that asks for "this CPU" must not be
/// preemptible, or the answer may be stale before it is used.
/// </summary>
internal static class DebugPreempt
{
    /// <summary>
    /// check_preemption_disabled: returns the current CPU; reports PreemptibleCpuAccess first when
    /// the task is preemptible. <paramref name="function"/> is what the report names, without
    /// parentheses: "smp_processor_id", "__this_cpu_read", ...
    /// </summary>
    public static int CheckPreemptDisabled(string function, CallSite caller = default)
    {
        Machine machine = Machine.Current;
        KTask task = machine.CurrentTask;
        if (task.Preemptible && !task.Bound && machine.IsChecking(Checks.DebugPreempt) && machine.SchedulerRunning)
        {
            var text = new StringBuilder();
            text.Append("BUG: using ").Append(function).Append("() in preemptible [").Append(task.PreemptCount.ToString("x8"))
                .Append("] code: ").Append(task.Comm).Append('/').Append(task.Pid).Append('\n');
            text.Append("caller is ").Append(caller).Append('\n');
            ContextReport.AppendTail(text, task);
            machine.Reporter.Raise(BugKind.PreemptibleCpuAccess, text.ToString());
        }
        return task.CpuId;
    }

    /// <summary>
    /// Runs a callback (irq handler, timer, tasklet, work item) in <paramref name="context"/> and
    /// checks that it left the context as it found it (see <see cref="CheckBalanced"/>); if it
    /// throws, the context is restored silently and the exception goes on.
    /// </summary>
    public static void RunBalanced(KTask context, int expectedCount, bool expectedIrqsOff, Action callback, Func<int, string> describe)
    {
        try
        {
            callback();
        }
        catch
        {
            Restore(context, expectedCount, expectedIrqsOff, 0, 0);
            throw;
        }
        CheckBalanced(context, expectedCount, expectedIrqsOff, 0, 0, describe);
    }

    /// <summary>
    /// What a callback (irq handler, timer, tasklet, work item) must leave as it found it: the
    /// preempt count, the interrupt state, the locks held. A leak is reported with
    /// <paramref name="describe"/>'s text and then undone, so the machine goes on consistently.
    /// </summary>
    public static void CheckBalanced(KTask task, int expectedCount, bool expectedIrqsOff, int expectedLocks, int expectedRcu, Func<int, string> describe)
    {
        int leaked = task.PreemptCount;
        if (leaked == expectedCount && task.IrqsOff == expectedIrqsOff && task.HeldLocks.Count == expectedLocks && task.RcuDepth == expectedRcu) return;
        try
        {
            if (task.Machine.IsChecking(Checks.DebugPreempt))
            {
                var text = new StringBuilder(describe(leaked));
                ContextReport.AppendHeldLocks(text, task);
                ContextReport.AppendTail(text, task);
                task.Machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
            }
        }
        finally
        {
            Restore(task, expectedCount, expectedIrqsOff, expectedLocks, expectedRcu);
        }
    }

    /// <summary>Puts a context back as it was entered (also after a callback threw).</summary>
    public static void Restore(KTask task, int count, bool irqsOff, int locks, int rcu)
    {
        while (task.HeldLocks.Count > locks)
        {
            HeldLock held = task.HeldLocks[^1];
            task.HeldLocks.RemoveAt(task.HeldLocks.Count - 1);
            if (held.Lock is ILeakableLock leakable) leakable.ForceRelease(task);
        }
        task.RcuDepth = rcu;
        task.PreemptCount = count;
        if (task.IrqsOff != irqsOff) Kernel.SetIrqsOff(task, irqsOff, default);
        if (task.Preemptible && task.OwnsCpu) task.Machine.Scheduler.ReleaseCpu(task);
    }
}

/// <summary>A lock that a leaking callback left held: released by force when the leak is undone.</summary>
internal interface ILeakableLock
{
    void ForceRelease(KTask holder);
}
