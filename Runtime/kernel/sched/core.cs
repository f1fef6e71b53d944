using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;

namespace KmemGuard;

// kernel/sched/core.c: might_sleep (CONFIG_DEBUG_ATOMIC_SLEEP), schedule, cond_resched.
public static partial class Kernel
{
    /// <summary>Says that the caller may sleep: reports if it is in atomic context, and is a preemption point.</summary>
    [MaySleep]
    public static void might_sleep([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        MightSleep(new CallSite(caller, file, line));

    /// <summary><see cref="might_sleep"/> when <paramref name="cond"/> holds (an allocation with a sleeping mask).</summary>
    public static void might_sleep_if(bool cond, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (cond) MightSleep(new CallSite(caller, file, line));
    }

    /// <summary>Gives the CPU up: a preemption point. Calling it in atomic context is a bug ("scheduling while atomic").</summary>
    [MaySleep]
    public static void schedule([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Machine machine = Machine.Current;
        KTask task = machine.CurrentTask;
        if (task.PreemptCount != 0 && machine.IsChecking(Checks.MightSleep) && machine.SchedulerRunning)
            ReportSchedulingWhileAtomic(task, new CallSite(caller, file, line));
        using (SleepScope.Enter(task)) Thread.Yield();
        machine.Scheduler.PreemptionPoint(task);
    }

    /// <summary>Yields if another task wants the CPU; returns 1 when it did. A might_sleep point.</summary>
    [MaySleep]
    public static int cond_resched([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Machine machine = Machine.Current;
        KTask task = machine.CurrentTask;
        CheckMightSleep(machine, task, new CallSite(caller, file, line));
        return machine.Scheduler.PreemptionPoint(task) ? 1 : 0;
    }

    /// <summary>might_sleep_if for the runtime's own code: allocators pass gfpflags_allow_blocking(flags).</summary>
    internal static void MightSleepIf(bool cond, CallSite site)
    {
        if (cond) MightSleep(site);
    }

    /// <summary>
    /// __might_sleep: in atomic context (preempt_count not zero or interrupts off) reports
    /// SleepInAtomic with the kernel's text; then, preemptible or not, it is a preemption point.
    /// In Report mode the caller goes on and sleeps, as the kernel does.
    /// </summary>
    internal static KTask MightSleep(CallSite site)
    {
        Machine machine = Machine.Current;
        return MightSleep(machine, machine.CurrentTask, site);
    }

    /// <summary><see cref="MightSleep(CallSite)"/> for a caller that already has the machine and its task (the allocators' fast paths).</summary>
    internal static KTask MightSleep(Machine machine, KTask task, CallSite site)
    {
        CheckMightSleep(machine, task, site);
        machine.Scheduler.PreemptionPoint(task);
        return task;
    }

    private static void CheckMightSleep(Machine machine, KTask task, CallSite site)
    {
        if ((task.PreemptCount != 0 || task.IrqsOff) && machine.IsChecking(Checks.MightSleep) && machine.SchedulerRunning)
            ReportSleepInAtomic(task, site);
    }

    private static void ReportSleepInAtomic(KTask task, CallSite site)
    {
        var text = new StringBuilder();
        text.Append("BUG: sleeping function called from invalid context at ").Append(ContextReport.FileLine(site)).Append('\n');
        text.Append("in_atomic(): ").Append(task.PreemptCount != 0 ? 1 : 0).Append(", irqs_disabled(): ").Append(task.IrqsOff ? 1 : 0)
            .Append(", non_block: 0, pid: ").Append(task.Pid).Append(", name: ").Append(task.Comm).Append('\n');
        text.Append("preempt_count: ").Append(task.PreemptCount.ToString("x")).Append(", expected: 0\n");
        text.Append("RCU nest depth: ").Append(task.RcuDepth).Append(", expected: 0\n");
        ContextReport.AppendHeldLocks(text, task);
        if (task.IrqsOff) text.Append("hardirqs last disabled at: ").Append(task.IrqsDisabledAt).Append('\n');
        if (task.PreemptCount != 0) text.Append("Preemption disabled at:\n ").Append(task.PreemptDisabledAt).Append('\n');
        ContextReport.AppendTail(text, task);
        task.Machine.Reporter.Raise(BugKind.SleepInAtomic, text.ToString());
    }

    private static void ReportSchedulingWhileAtomic(KTask task, CallSite site)
    {
        var text = new StringBuilder();
        text.Append("BUG: scheduling while atomic: ").Append(task.Comm).Append('/').Append(task.Pid).Append("/0x")
            .Append(task.PreemptCount.ToString("x8")).Append('\n');
        text.Append("schedule() called at ").Append(site).Append('\n');
        ContextReport.AppendHeldLocks(text, task);
        text.Append("Preemption disabled at:\n ").Append(task.PreemptDisabledAt).Append('\n');
        ContextReport.AppendTail(text, task);
        task.Machine.Reporter.Raise(BugKind.SleepInAtomic, text.ToString());
    }
}

/// <summary>
/// While a task blocks, the CPU it holds is free for others, as schedule() switches away even
/// from a task that (wrongly) sleeps in atomic context; it takes a CPU again when it wakes.
/// Interrupt contexts and tasks with interrupts off keep theirs (their CPU state cannot move).
/// </summary>
internal readonly struct SleepScope : System.IDisposable
{
    private readonly KTask? _released;

    private SleepScope(KTask? released) => _released = released;

    public static SleepScope Enter(KTask task)
    {
        if (task.IsContext || !task.OwnsCpu || task.IrqsOff) return default;
        task.Machine.Scheduler.ReleaseCpu(task);
        return new SleepScope(task);
    }

    public void Dispose()
    {
        if (_released != null) _released.Machine.Scheduler.TakeCpu(_released);
    }
}
