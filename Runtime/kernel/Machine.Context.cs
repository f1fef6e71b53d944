using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;

namespace KmemGuard;

// The execution context of a machine: which context a host thread runs in (its task, or an
// interrupt/softirq context on some CPU), the interrupt controller, timers, softirqs and the
// workqueue, and the machine's shutdown list.
public sealed partial class Machine
{
    /// <summary>The innermost irq/softirq context running on this host thread (they nest through <see cref="KTask.Interrupted"/>).</summary>
    [ThreadStatic] private static KTask? t_context;

    private readonly List<Action> _shutdownActions = new();
    private volatile bool _schedulerRunning;
    private KTask?[]? _idleTasks;

    internal IrqController Irqs { get; } = new();
    internal TimerBase Timers { get; } = new();
    internal SoftirqEngine Softirqs { get; } = new();
    private Workqueue? _workqueue;

    /// <summary>system_wq; its threads start with the first work item.</summary>
    internal Workqueue Workqueue => System.Threading.LazyInitializer.EnsureInitialized(ref _workqueue, () => new Workqueue(this));

    /// <summary>The context that overrides this thread's task while an interrupt or softirq runs on it.</summary>
    internal KTask? ContextOverride
    {
        get
        {
            KTask? context = t_context;
            while (context != null && context.Machine != this) context = context.Interrupted;
            return context;
        }
    }

    /// <summary>
    /// The kernel's system_state past SYSTEM_SCHEDULING: until then (early boot) might_sleep and
    /// DEBUG_PREEMPT stay quiet, as in the kernel, which boots with one task and interrupts off.
    /// </summary>
    internal bool SchedulerRunning => _schedulerRunning;

    /// <summary>swapper/N, the idle task that an interrupt on an idle CPU shows as.</summary>
    internal KTask IdleTask(int cpu)
    {
        KTask?[] idle = System.Threading.LazyInitializer.EnsureInitialized(ref _idleTasks, () => new KTask?[Cpus.Length]);
        return idle[cpu] ??= new KTask(this, 0, $"swapper/{cpu}", cpu);
    }

    partial void InitContext()
    {
        _schedulerRunning = true;
    }

    /// <summary>
    /// Registers something to do when the machine shuts down (after the workqueue's threads have
    /// stopped, so no kernel code runs concurrently). Actions run in reverse order of registration.
    /// </summary>
    internal void OnShutdown(Action action)
    {
        lock (_shutdownActions) _shutdownActions.Add(action);
    }

    partial void ShutdownSubsystems()
    {
        _workqueue?.Stop();
        Action[] actions;
        lock (_shutdownActions) actions = _shutdownActions.ToArray();
        for (int i = actions.Length - 1; i >= 0; i--) actions[i]();
    }

    /// <summary>Runs <paramref name="body"/> as <paramref name="context"/> on this host thread.</summary>
    internal void RunInContext(KTask context, Action body)
    {
        KTask? previous = t_context;
        t_context = context;
        try
        {
            body();
        }
        finally
        {
            t_context = previous;
        }
    }

    /// <summary>
    /// Raises interrupt <paramref name="irq"/> on the calling task's CPU: its handlers run now in
    /// hard-irq context, or as soon as that CPU enables interrupts (or the line is enabled again).
    /// Softirqs raised by the handlers run when it returns (irq_exit).
    /// </summary>
    public void RaiseIrq(int irq, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        RaiseIrqOn(irq, CurrentTask.CpuId, new CallSite(caller, file, line));

    /// <summary>Raises interrupt <paramref name="irq"/> on CPU <paramref name="cpu"/>.</summary>
    public void RaiseIrq(int irq, int cpu, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if ((uint)cpu >= (uint)Cpus.Length) throw new ArgumentOutOfRangeException(nameof(cpu), cpu, $"This machine has CPUs 0 to {Cpus.Length - 1}.");
        RaiseIrqOn(irq, cpu, new CallSite(caller, file, line));
    }

    private void RaiseIrqOn(int irq, int cpu, CallSite site)
    {
        ThrowIfDisposed();
        Irqs.Raise(this, irq, cpu, site);
        Softirqs.Run(this, site);
    }

    /// <summary>
    /// Lets <paramref name="n"/> jiffies pass: timers that expire run in softirq context, in
    /// expiry order, each with jiffies at its expiry time; then pending softirqs run.
    /// </summary>
    public void AdvanceJiffies(ulong n, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ThrowIfDisposed();
        Timers.Advance(this, n, new CallSite(caller, file, line));
    }

    /// <summary>Runs pending softirqs (expired timers, scheduled tasklets) now, if the calling context allows it.</summary>
    public void RunSoftirqs([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ThrowIfDisposed();
        Softirqs.Run(this, new CallSite(caller, file, line));
    }
}
