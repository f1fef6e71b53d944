using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

/// <summary>A tasklet: a function run once in softirq context after each tasklet_schedule.</summary>
public sealed class tasklet_struct
{
    internal Action<ulong>? Func;
    internal ulong Data;

    /// <summary>TASKLET_STATE_SCHED: queued and not yet started.</summary>
    internal bool Scheduled;

    /// <summary>TASKLET_STATE_RUN: the managed thread id running it, 0 when idle.</summary>
    internal int RunningThread;

    /// <summary>tasklet_disable depth: a disabled tasklet stays queued.</summary>
    internal int DisableCount;
}

/// <summary>
/// Softirq processing (kernel/softirq.c): expired timers and scheduled tasklets run in softirq
/// context (preempt_count with SOFTIRQ_OFFSET) on the CPU of the task that reaches a softirq
/// point, one host thread at a time. Softirq points: the end of Machine.RaiseIrq (irq_exit),
/// local_irq_enable that ran pending irqs, Machine.AdvanceJiffies, local_bh_enable and
/// spin_unlock_bh (when they re-enable bottom halves), tasklet_kill, and Machine.RunSoftirqs.
/// A context in an interrupt, with bottom halves or interrupts disabled, leaves them pending.
/// </summary>
internal sealed class SoftirqEngine
{
    // kernel/softirq.c: MAX_SOFTIRQ_RESTART. Work that keeps raising itself waits for the next point.
    private const int MaxRestart = 10;
    public const int TimerSoftirq = 1;
    public const int TaskletSoftirq = 6;

    private readonly object _runner = new();
    private readonly List<tasklet_struct> _tasklets = new();

    public void Schedule(tasklet_struct tasklet)
    {
        lock (_tasklets)
        {
            if (tasklet.Scheduled) return;
            tasklet.Scheduled = true;
            _tasklets.Add(tasklet);
        }
    }

    /// <summary>Takes a tasklet that has not started off the queue; false when it was not queued.</summary>
    public bool Unschedule(tasklet_struct tasklet)
    {
        lock (_tasklets)
        {
            if (!tasklet.Scheduled) return false;
            _tasklets.Remove(tasklet);
            tasklet.Scheduled = false;
            return true;
        }
    }

    /// <summary>A context may serve softirqs only outside interrupts, with bottom halves and interrupts on.</summary>
    public static bool CanServe(KTask current) =>
        (current.PreemptCount & (KTask.HardirqMask | KTask.SoftirqMask)) == 0 && !current.IrqsOff;

    private bool HasWork(Machine machine)
    {
        lock (_tasklets)
        {
            if (_tasklets.Count > 0) return true;
        }
        return machine.Timers.HasExpired(machine.Jiffies);
    }

    /// <summary>do_softirq: serves pending softirqs if this context may; false when it did not serve.</summary>
    public bool Run(Machine machine, CallSite site)
    {
        KTask current = machine.CurrentTask;
        if (!CanServe(current)) return false;
        bool served = false;
        for (int attempt = 0; attempt < 2 && HasWork(machine); attempt++)
        {
            if (!Monitor.TryEnter(_runner)) return served;
            try
            {
                Serve(machine, current, site);
                served = true;
            }
            finally
            {
                Monitor.Exit(_runner);
            }
        }
        return served;
    }

    private void Serve(Machine machine, KTask current, CallSite site)
    {
        KTask context = KTask.Context(current, current.CpuId, KTask.SoftirqOffset, irqsOff: false, machine.ContextOverride, site);
        if (!current.OwnsCpu)
        {
            machine.Scheduler.TakeCpu(context);
            context.TookCpu = true;
        }
        try
        {
            machine.RunInContext(context, () =>
            {
                for (int pass = 0; pass < MaxRestart && HasWork(machine); pass++)
                {
                    machine.Timers.RunExpired(machine, context);
                    RunTasklets(context);
                }
            });
        }
        finally
        {
            if (context.TookCpu) machine.Scheduler.ReleaseCpu(context);
        }
    }

    private void RunTasklets(KTask context)
    {
        tasklet_struct[] batch;
        lock (_tasklets)
        {
            batch = _tasklets.ToArray();
            _tasklets.Clear();
        }
        foreach (tasklet_struct tasklet in batch)
        {
            bool runnable;
            lock (_tasklets)
            {
                runnable = Volatile.Read(ref tasklet.DisableCount) == 0
                    && Interlocked.CompareExchange(ref tasklet.RunningThread, Environment.CurrentManagedThreadId, 0) == 0;
                if (runnable) tasklet.Scheduled = false;
                else _tasklets.Add(tasklet);
            }
            if (runnable) RunTasklet(context, tasklet);
        }
    }

    private static void RunTasklet(KTask context, tasklet_struct tasklet)
    {
        Action<ulong> func = tasklet.Func!;
        try
        {
            DebugPreempt.RunBalanced(context, KTask.SoftirqOffset, false, () => func(tasklet.Data), leaked =>
                $"huh, entered softirq {TaskletSoftirq} TASKLET {func.Method.Name} with preempt_count {KTask.SoftirqOffset:x8}, exited with {leaked:x8}?\n");
        }
        finally
        {
            Volatile.Write(ref tasklet.RunningThread, 0);
        }
    }
}

// kernel/softirq.c: bottom halves and tasklets.
public static partial class Kernel
{
    /// <summary>Disables softirqs on this CPU (nests); also disables preemption.</summary>
    [EntersSection(SectionKind.BottomHalvesDisabled)]
    public static void local_bh_disable([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        PreemptCountAdd(Machine.Current.CurrentTask, KTask.SoftirqDisableOffset, new CallSite(caller, file, line));

    /// <summary>Enables softirqs again; pending ones run when the last disable is undone.</summary>
    [LeavesSection(SectionKind.BottomHalvesDisabled)]
    public static void local_bh_enable([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        LocalBhEnable(Machine.Current.CurrentTask, new CallSite(caller, file, line));

    internal static void LocalBhEnable(KTask task, CallSite site)
    {
        if (PreemptCountSub(task, KTask.SoftirqDisableOffset, KTask.SoftirqMask, "local_bh_enable", site))
            task.Machine.Softirqs.Run(task.Machine, site);
    }

    /// <summary>Sets the tasklet up to run <paramref name="func"/>(<paramref name="data"/>).</summary>
    [RunsCallback("func", CallbackContext.SoftIrq)]
    public static void tasklet_init(tasklet_struct t, Action<ulong> func, ulong data)
    {
        ArgumentNullException.ThrowIfNull(func);
        t.Func = func;
        t.Data = data;
        t.DisableCount = 0;
    }

    /// <summary>Queues the tasklet (once until it starts); it runs at the next softirq point.</summary>
    public static void tasklet_schedule(tasklet_struct t)
    {
        if (t.Func is null) throw new InvalidOperationException("tasklet_schedule: the tasklet was not set up with tasklet_init.");
        Machine.Current.Softirqs.Schedule(t);
    }

    /// <summary>The high-priority queue: the same queue here.</summary>
    public static void tasklet_hi_schedule(tasklet_struct t) => tasklet_schedule(t);

    /// <summary>Keeps the tasklet from running (it stays queued) and waits for a running instance.</summary>
    public static void tasklet_disable(tasklet_struct t)
    {
        Interlocked.Increment(ref t.DisableCount);
        WaitTasklet(t);
    }

    public static void tasklet_enable(tasklet_struct t)
    {
        if (Interlocked.Decrement(ref t.DisableCount) < 0) Interlocked.Exchange(ref t.DisableCount, 0);
    }

    /// <summary>Waits until the tasklet is neither queued nor running; a queued one runs first (or is dropped where softirqs cannot run).</summary>
    [MaySleep]
    public static void tasklet_kill(tasklet_struct t, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = MightSleep(site);
        Machine machine = task.Machine;
        var spin = new SpinWait();
        while (Volatile.Read(ref t.Scheduled))
        {
            if (!SoftirqEngine.CanServe(task) || Volatile.Read(ref t.DisableCount) > 0) machine.Softirqs.Unschedule(t);
            else if (!machine.Softirqs.Run(machine, site)) spin.SpinOnce();
        }
        WaitTasklet(t);
    }

    private static void WaitTasklet(tasklet_struct t)
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref t.RunningThread) is int thread && thread != 0 && thread != Environment.CurrentManagedThreadId) spin.SpinOnce();
    }
}
