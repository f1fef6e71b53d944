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

internal sealed record IrqAction(irq_handler_t Handler, uint Flags, string Name, object? Dev);

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

    public int Request(int irq, irq_handler_t? handler, uint flags, string? name, object? dev)
    {
        if ((uint)irq >= (uint)_descs.Length || handler is null) return -Kernel.EINVAL;
        bool shared = (flags & Kernel.IRQF_SHARED) != 0;
        if (shared && dev is null) return -Kernel.EINVAL;
        IrqDesc desc = Get(irq);
        lock (_gate)
        {
            IrqAction[] actions = desc.Actions;
            if (actions.Length > 0 && (!shared || (actions[0].Flags & Kernel.IRQF_SHARED) == 0)) return -Kernel.EBUSY;
            var grown = new IrqAction[actions.Length + 1];
            actions.CopyTo(grown, 0);
            grown[^1] = new IrqAction(handler, flags, name ?? "", dev);
            desc.Actions = grown;
        }
        return 0;
    }

    public void Free(Machine machine, int irq, object? dev, CallSite site)
    {
        IrqDesc? desc = Find(irq);
        bool removed = false;
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
                    removed = true;
                }
            }
        }
        if (!removed)
        {
            ReportMisuse(machine, $"Trying to free already-free IRQ {irq}", site);
            return;
        }
        WaitIdle(irq);
    }

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
        if (unbalanced) ReportMisuse(machine, $"Unbalanced enable for IRQ {irq}", site);
        else if (replay) Raise(machine, irq, machine.CurrentTask.CpuId, site);
    }

    /// <summary>Waits until no handler of the line runs (a handler waiting for itself would deadlock: it does not wait).</summary>
    public void WaitIdle(int irq)
    {
        IrqDesc? desc = Find(irq);
        if (desc == null || Machine.Current.ContextOverride is { } context && IsHandling(context, irq)) return;
        var spin = new SpinWait();
        while (Volatile.Read(ref desc.Running) != 0) spin.SpinOnce();
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
            machine.RunInContext(context, () => RunHandlers(machine, desc, context));
        }
        finally
        {
            Interlocked.Decrement(ref desc.Running);
            if (context.TookCpu) machine.Scheduler.ReleaseCpu(context);
            // The handler ran with interrupts off (restored if it turned them on): what arrived meanwhile runs now.
            EnableCpuIrqs(machine, cpu, context, site);
        }
    }

    private static void RunHandlers(Machine machine, IrqDesc desc, KTask context)
    {
        bool handled = false;
        foreach (IrqAction action in desc.Actions)
        {
            irqreturn_t result;
            try
            {
                result = action.Handler(desc.Irq, action.Dev);
            }
            catch
            {
                DebugPreempt.Restore(context, KTask.HardirqOffset, true, 0, 0);
                throw;
            }
            DebugPreempt.CheckBalanced(context, KTask.HardirqOffset, true, 0, 0, leaked =>
                $"BUG: irq {desc.Irq} handler {action.Name} ({action.Handler.Method.Name}) returned with preemption imbalance: " +
                $"entered with preempt_count 0x{KTask.HardirqOffset:x8}, exited with 0x{leaked:x8}{(context.IrqsOff ? "" : ", interrupts enabled")}?\n");
            handled |= result != irqreturn_t.IRQ_NONE;
        }
        if (!handled) Interlocked.Increment(ref desc.Unhandled);
    }

    private static void ReportMisuse(Machine machine, string message, CallSite site)
    {
        KTask task = machine.CurrentTask;
        var text = new StringBuilder();
        text.Append(message).Append('\n');
        ContextReport.AppendWarning(text, task, site, "");
        ContextReport.AppendTail(text, task);
        machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
    }
}
