using System.Runtime.CompilerServices;

namespace KmemGuard;

// include/linux/irqflags.h: the current CPU's interrupt flag. Interrupts raised while it is off
// wait in the CPU's pending queue and run as soon as it is turned on again.
public static partial class Kernel
{
    /// <summary>x86's EFLAGS.IF: set in saved flags when interrupts were enabled.</summary>
    internal const ulong X86_EFLAGS_IF = 0x200;

    /// <summary>Disables interrupts on the current CPU (does not nest: see local_irq_save).</summary>
    [EntersSection(SectionKind.IrqsDisabled)]
    public static void local_irq_disable([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SetIrqsOff(Machine.Current.CurrentTask, true, new CallSite(caller, file, line));

    /// <summary>Enables interrupts on the current CPU; interrupts that arrived meanwhile run now.</summary>
    [LeavesSection(SectionKind.IrqsDisabled)]
    public static void local_irq_enable([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SetIrqsOff(Machine.Current.CurrentTask, false, new CallSite(caller, file, line));

    /// <summary>Saves the interrupt state in <paramref name="flags"/> and disables interrupts.</summary>
    [EntersSection(SectionKind.IrqsDisabled)]
    public static void local_irq_save(out ulong flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        KTask task = Machine.Current.CurrentTask;
        flags = task.IrqsOff ? 0 : X86_EFLAGS_IF;
        SetIrqsOff(task, true, new CallSite(caller, file, line));
    }

    /// <summary>Restores the interrupt state saved by local_irq_save.</summary>
    [LeavesSection(SectionKind.IrqsDisabled)]
    public static void local_irq_restore(ulong flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SetIrqsOff(Machine.Current.CurrentTask, (flags & X86_EFLAGS_IF) == 0, new CallSite(caller, file, line));

    /// <summary>True when saved <paramref name="flags"/> say interrupts were disabled.</summary>
    public static bool irqs_disabled_flags(ulong flags) => (flags & X86_EFLAGS_IF) == 0;

    /// <summary>
    /// Turns the task's CPU's interrupts off or on. Off makes the task non-preemptible (it takes its
    /// CPU); on runs the interrupts that became pending, and may make the task preemptible again.
    /// </summary>
    internal static void SetIrqsOff(KTask task, bool off, CallSite site)
    {
        if (task.IrqsOff == off) return;
        Machine machine = task.Machine;
        if (off)
        {
            if (!task.OwnsCpu) machine.Scheduler.TakeCpu(task);
            Cpu cpu = machine.Cpus[task.CpuId];
            lock (cpu.IrqLock)
            {
                cpu.IrqsOffCount++;
                task.IrqsOff = true;
            }
            task.IrqsDisabledAt = site;
            return;
        }
        machine.Irqs.EnableCpuIrqs(machine, machine.Cpus[task.CpuId], task, site);
        if (task.Preemptible && task.OwnsCpu)
        {
            machine.Scheduler.ReleaseCpu(task);
            machine.Scheduler.PreemptionPoint(task);
        }
    }
}
