using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;

namespace KmemGuard;

/// <summary>One interrupt line (struct irq_desc) and its handlers (struct irqaction).</summary>
internal sealed class IrqDesc
{
    public IrqDesc(int irq) => Irq = irq;

    public int Irq { get; }

    /// <summary>The handlers, replaced (never changed in place) so that a delivery can run a snapshot.</summary>
    public IrqAction[] Actions = Array.Empty<IrqAction>();

    /// <summary>disable_irq nesting depth.</summary>
    public int Depth;

    /// <summary>An interrupt came while the line was disabled (IRQS_PENDING): replayed by enable_irq.</summary>
    public bool Replay;

    /// <summary>Handlers of this line running now, on any CPU.</summary>
    public int Running;

    /// <summary>Interrupts no handler claimed (the kernel's "nobody cared" accounting).</summary>
    public long Unhandled;
}

/// <summary>One handler of a line; a threaded one also has its irq thread (irq/N-name) and the work that runs thread_fn there.</summary>
internal sealed record IrqAction(irq_handler_t Handler, uint Flags, string Name, object? Dev)
{
    public Worker? Thread { get; init; }
    public work_struct? ThreadWork { get; init; }
}

/// <summary>
/// The interrupt controller. A raised interrupt runs on the raising host thread, in a hard-irq
/// context bound to the target CPU (preempt_count with HARDIRQ_OFFSET, interrupts off), and
/// shows as the task it interrupts. It waits while the CPU has interrupts off or the line is
/// disabled.
/// </summary>
internal sealed class IrqController
{
    private readonly IrqDesc?[] _descs = new IrqDesc?[Kernel.NR_IRQS];
    private readonly object _gate = new();

    private IrqDesc? Find(int irq) => (uint)irq < (uint)_descs.Length ? Volatile.Read(ref _descs[irq]) : null;

    private IrqDesc Get(int irq)
    {
        if ((uint)irq >= (uint)_descs.Length) throw new ArgumentOutOfRangeException(nameof(irq), irq, $"Interrupt lines are 0 to {Kernel.NR_IRQS - 1}.");
        IrqDesc? desc = Volatile.Read(ref _descs[irq]);
        if (desc != null) return desc;
        lock (_gate) return _descs[irq] ??= new IrqDesc(irq);
    }

    public int Request(Machine machine, int irq, irq_handler_t? handler, irq_handler_t? threadFn, uint flags, string? name, object? dev)
    {
        if ((uint)irq >= (uint)_descs.Length || handler is null && threadFn is null) return -Kernel.EINVAL;
        // __setup_irq: a line whose primary handler is the default must stay masked until the thread ran.
        if (handler is null && (flags & Kernel.IRQF_ONESHOT) == 0) return -Kernel.EINVAL;
        bool shared = (flags & Kernel.IRQF_SHARED) != 0;
        if (shared && dev is null) return -Kernel.EINVAL;
        IrqDesc desc = Get(irq);
        lock (_gate)
        {
            IrqAction[] actions = desc.Actions;
            if (actions.Length > 0 && (!shared || (actions[0].Flags & Kernel.IRQF_SHARED) == 0)) return -Kernel.EBUSY;
            IrqAction action = new(handler ?? ((_, _) => irqreturn_t.IRQ_WAKE_THREAD), flags, name ?? "", dev);
            if (threadFn != null) action = Threaded(machine, irq, action, threadFn);
            var grown = new IrqAction[actions.Length + 1];
            actions.CopyTo(grown, 0);
            grown[^1] = action;
            desc.Actions = grown;
        }
        return 0;
    }

    private IrqAction Threaded(Machine machine, int irq, IrqAction action, irq_handler_t threadFn)
    {
        var work = new work_struct();
        Kernel.INIT_WORK(work, _ =>
        {
            threadFn(irq, action.Dev);
            if ((action.Flags & Kernel.IRQF_ONESHOT) != 0) Enable(machine, irq, default);
        });
        return action with { Thread = machine.Workqueue.StartKthread($"irq/{irq}-{action.Name}"), ThreadWork = work };
    }

    /// <summary>IRQ_WAKE_THREAD: the thread function runs on the irq thread; a oneshot line stays masked meanwhile.</summary>
    private void WakeThread(IrqDesc desc, IrqAction action)
    {
        if (action.Thread is null || action.ThreadWork is null) return;
        bool oneshot = (action.Flags & Kernel.IRQF_ONESHOT) != 0;
        if (oneshot) Disable(desc.Irq);
        if (!Workqueue.Queue(action.ThreadWork, action.Thread) && oneshot)
        {
            lock (_gate) desc.Depth--;
        }
    }

    public void Free(Machine machine, int irq, object? dev, CallSite site)
    {
        IrqDesc? desc = Find(irq);
        IrqAction? removed = null;
        if (desc != null)
        {
            lock (_gate)
            {
                IrqAction[] actions = desc.Actions;
                int index = Array.FindIndex(actions, a => ReferenceEquals(a.Dev, dev));
                if (index >= 0)
                {
                    var shrunk = new IrqAction[actions.Length - 1];
                    Array.Copy(actions, 0, shrunk, 0, index);
                    Array.Copy(actions, index + 1, shrunk, index, shrunk.Length - index);
                    desc.Actions = shrunk;
                    removed = actions[index];
                }
            }
        }
        if (removed == null)
        {
            ReportMisuse(machine, $"Trying to free already-free IRQ {irq}", "free_irq()", site);
            return;
        }
        WaitIdle(irq);
        if (removed.Thread is { } thread)
        {
            Workqueue.Flush(removed.ThreadWork!, machine.CurrentTask);
            machine.Workqueue.StopKthread(thread);
        }
    }

    /// <summary>The line's disable depth (0: enabled).</summary>
    public int Depth(int irq) => Find(irq)?.Depth ?? 0;

    public void Disable(int irq)
    {
        IrqDesc desc = Get(irq);
        lock (_gate) desc.Depth++;
    }

    public void Enable(Machine machine, int irq, CallSite site)
    {
        IrqDesc desc = Get(irq);
        bool unbalanced, replay = false;
        lock (_gate)
        {
            unbalanced = desc.Depth == 0;
            if (!unbalanced)
            {
                replay = --desc.Depth == 0 && desc.Replay;
                if (replay) desc.Replay = false;
            }
        }
        if (unbalanced) ReportMisuse(machine, $"Unbalanced enable for IRQ {irq}", "enable_irq()", site);
        else if (replay) Raise(machine, irq, machine.CurrentTask.CpuId, site);
    }

    /// <summary>
    /// Waits until no handler of the line runs, and no thread function of it (a handler waiting
    /// for itself would deadlock: it does not wait).
    /// </summary>
    public void WaitIdle(int irq)
    {
        IrqDesc? desc = Find(irq);
        Machine machine = Machine.Current;
        if (desc == null || machine.ContextOverride is { } context && IsHandling(context, irq)) return;
        var spin = new SpinWait();
        while (Volatile.Read(ref desc.Running) != 0) spin.SpinOnce();
        foreach (IrqAction action in desc.Actions)
            if (action.ThreadWork is { } work && action.Thread?.Thread != Thread.CurrentThread) Workqueue.Flush(work, machine.CurrentTask);
    }

    private static bool IsHandling(KTask context, int irq)
    {
        for (KTask? c = context; c != null; c = c.Interrupted)
            if (c.HandlingIrq == irq) return true;
        return false;
    }

    public void Raise(Machine machine, int irq, int cpu, CallSite site)
    {
        IrqDesc desc = Get(irq);
        lock (_gate)
        {
            if (desc.Depth > 0)
            {
                desc.Replay = true;
                return;
            }
        }
        Deliver(machine, desc, machine.Cpus[cpu], site);
    }

    /// <summary>local_irq_enable on <paramref name="cpu"/>: interrupts that waited run now, in arrival order.</summary>
    public void EnableCpuIrqs(Machine machine, Cpu cpu, KTask task, CallSite site)
    {
        int[]? pending = null;
        lock (cpu.IrqLock)
        {
            task.IrqsOff = false;
            if (--cpu.IrqsOffCount == 0 && cpu.PendingIrqs.Count > 0)
            {
                pending = cpu.PendingIrqs.ToArray();
                cpu.PendingIrqs.Clear();
            }
        }
        if (pending == null) return;
        foreach (int irq in pending) Raise(machine, irq, cpu.Id, site);
        machine.Softirqs.Run(machine, site);
    }

    private void Deliver(Machine machine, IrqDesc desc, Cpu cpu, CallSite site)
    {
        lock (cpu.IrqLock)
        {
            if (cpu.IrqsOffCount > 0)
            {
                cpu.PendingIrqs.Enqueue(desc.Irq);
                return;
            }
            cpu.IrqsOffCount++;
        }
        KTask current = machine.CurrentTask;
        KTask shownAs = Volatile.Read(ref cpu.Owner) ?? (current.CpuId == cpu.Id ? current : machine.IdleTask(cpu.Id));
        KTask context = KTask.Context(shownAs, cpu.Id, KTask.HardirqOffset, irqsOff: true, machine.ContextOverride, site);
        context.HandlingIrq = desc.Irq;
        context.TookCpu = machine.Scheduler.TryTakeCpu(context, cpu.Id);
        Interlocked.Increment(ref desc.Running);
        try
        {
            machine.RunInContext(context, () => RunHandlers(desc, context));
        }
        finally
        {
            Interlocked.Decrement(ref desc.Running);
            if (context.TookCpu) machine.Scheduler.ReleaseCpu(context);
            // The handler ran with interrupts off (restored if it turned them on): what arrived meanwhile runs now.
            EnableCpuIrqs(machine, cpu, context, site);
        }
    }

    private void RunHandlers(IrqDesc desc, KTask context)
    {
        bool handled = false;
        foreach (IrqAction action in desc.Actions)
        {
            irqreturn_t result = irqreturn_t.IRQ_NONE;
            DebugPreempt.RunBalanced(context, KTask.HardirqOffset, true, () => result = action.Handler(desc.Irq, action.Dev), leaked =>
                $"BUG: irq {desc.Irq} handler {action.Name} ({action.Handler.Method.Name}) returned with preemption imbalance: " +
                $"entered with preempt_count 0x{KTask.HardirqOffset:x8}, exited with 0x{leaked:x8}{(context.IrqsOff ? "" : ", interrupts enabled")}?\n");
            if (result == irqreturn_t.IRQ_WAKE_THREAD) WakeThread(desc, action);
            handled |= result != irqreturn_t.IRQ_NONE;
        }
        if (!handled) Interlocked.Increment(ref desc.Unhandled);
    }

    private static void ReportMisuse(Machine machine, string message, string function, CallSite site)
    {
        KTask task = machine.CurrentTask;
        var text = new StringBuilder();
        text.Append(message).Append('\n');
        ContextReport.AppendWarning(text, task, site, function);
        ContextReport.AppendTail(text, task);
        machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
    }
}
