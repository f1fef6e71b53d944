using System;
using System.Runtime.CompilerServices;

namespace KmemGuard;

/// <summary>What an interrupt handler says it did (include/linux/irqreturn.h).</summary>
public enum irqreturn_t
{
    IRQ_NONE = 0,
    IRQ_HANDLED = 1,
    IRQ_WAKE_THREAD = 2,
}

/// <summary>An interrupt handler: runs in hard-irq context with interrupts disabled.</summary>
public delegate irqreturn_t irq_handler_t(int irq, object? dev);

// kernel/irq/manage.c: registering handlers, masking lines.
public static partial class Kernel
{
    public const irqreturn_t IRQ_NONE = irqreturn_t.IRQ_NONE;
    public const irqreturn_t IRQ_HANDLED = irqreturn_t.IRQ_HANDLED;
    public const irqreturn_t IRQ_WAKE_THREAD = irqreturn_t.IRQ_WAKE_THREAD;

    /// <summary>Number of interrupt lines.</summary>
    public const int NR_IRQS = 1024;

    public const uint IRQF_TRIGGER_NONE = 0x00000000;
    public const uint IRQF_TRIGGER_RISING = 0x00000001;
    public const uint IRQF_TRIGGER_FALLING = 0x00000002;
    public const uint IRQF_TRIGGER_HIGH = 0x00000004;
    public const uint IRQF_TRIGGER_LOW = 0x00000008;
    /// <summary>The line may be shared by several devices (each passes its own dev).</summary>
    public const uint IRQF_SHARED = 0x00000080;
    public const uint IRQF_ONESHOT = 0x00002000;
    public const uint IRQF_NO_THREAD = 0x00010000;

    public const int EBUSY = 16;
    public const int EINVAL = 22;

    /// <summary>
    /// Installs <paramref name="handler"/> on line <paramref name="irq"/>: 0, -EINVAL (bad line,
    /// no handler, shared without dev) or -EBUSY (the line is taken and not shared by both).
    /// </summary>
    [MaySleep]
    [RunsCallback("handler", CallbackContext.HardIrq)]
    public static int request_irq(int irq, irq_handler_t handler, uint flags, string name, object? dev,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        KTask task = MightSleep(new CallSite(caller, file, line));
        return task.Machine.Irqs.Request(task.Machine, irq, handler, null, flags, name, dev);
    }

    /// <summary>
    /// Installs a threaded handler: <paramref name="handler"/> runs in hard-irq context (null: the
    /// default, which wakes the thread; needs IRQF_ONESHOT), and when it returns IRQ_WAKE_THREAD,
    /// <paramref name="thread_fn"/> runs in process context on the irq thread "irq/N-name".
    /// </summary>
    [MaySleep]
    [RunsCallback("handler", CallbackContext.HardIrq)]
    [RunsCallback("thread_fn", CallbackContext.Process)]
    public static int request_threaded_irq(int irq, irq_handler_t? handler, irq_handler_t? thread_fn, uint irqflags, string devname, object? dev_id,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        KTask task = MightSleep(new CallSite(caller, file, line));
        return task.Machine.Irqs.Request(task.Machine, irq, handler, thread_fn, irqflags, devname, dev_id);
    }

    /// <summary>Removes the handler that <paramref name="dev"/> installed, waiting for it to finish if it is running.</summary>
    [MaySleep]
    public static void free_irq(int irq, object? dev, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        MightSleep(site);
        Machine machine = Machine.Current;
        machine.Irqs.Free(machine, irq, dev, site);
    }

    /// <summary>Masks the line (nests) and waits for running handlers to finish.</summary>
    public static void disable_irq(int irq)
    {
        IrqController irqs = Machine.Current.Irqs;
        irqs.Disable(irq);
        irqs.WaitIdle(irq);
    }

    /// <summary>Masks the line (nests) without waiting.</summary>
    public static void disable_irq_nosync(int irq) => Machine.Current.Irqs.Disable(irq);

    /// <summary>Undoes one disable_irq; at depth 0 an interrupt that came meanwhile is replayed.</summary>
    public static void enable_irq(int irq, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Machine machine = Machine.Current;
        machine.Irqs.Enable(machine, irq, new CallSite(caller, file, line));
    }

    /// <summary>Waits until no handler of the line runs on any CPU.</summary>
    [MaySleep]
    public static void synchronize_irq(int irq, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        MightSleep(new CallSite(caller, file, line));
        Machine.Current.Irqs.WaitIdle(irq);
    }
}
