using System;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// A spinlock: real mutual exclusion between host threads, taken with preemption disabled (the
/// holder owns its CPU). It records its holder and where it was taken, for reports.
/// </summary>
public sealed class spinlock_t : ILeakableLock
{
    internal int State;
    internal KTask? Owner;
    internal int OwnerThread;
    internal CallSite TakenAt;

    /// <summary>Reported recursive acquisitions still to be undone by their unlocks (never really nested).</summary>
    internal int Recursion;

    public spinlock_t() : this("spinlock_t") { }

    public spinlock_t(string name) => Name = name;

    /// <summary>lockdep's class name (from spin_lock_init's argument).</summary>
    public string Name { get; internal set; }

    void ILeakableLock.ForceRelease(KTask holder)
    {
        if (Recursion > 0)
        {
            Recursion--;
            return;
        }
        if (Owner != holder) return;
        Owner = null;
        Volatile.Write(ref State, 0);
    }

    public override string ToString() => Name;
}

// kernel/locking/spinlock.c and spinlock_debug.c.
public static partial class Kernel
{
    internal const string SpinlockUsage = "{+.+.}-{2:2}";

    /// <summary>Initialises (unlocks) the lock; lockdep names it after the argument.</summary>
    public static void spin_lock_init(spinlock_t @lock, [CallerArgumentExpression(nameof(@lock))] string name = "")
    {
        @lock.Name = "&" + name;
        @lock.Owner = null;
        @lock.Recursion = 0;
        Volatile.Write(ref @lock.State, 0);
    }

    [EntersSection(SectionKind.Spinlock, LockParameter = "lock")]
    public static void spin_lock(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SpinLock(Machine.Current.CurrentTask, @lock, new CallSite(caller, file, line), irqsOff: false, bottomHalvesOff: false);

    [LeavesSection(SectionKind.Spinlock, LockParameter = "lock")]
    public static void spin_unlock(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SpinUnlock(Machine.Current.CurrentTask, @lock, new CallSite(caller, file, line));

    /// <summary>Takes the lock if it is free; true when taken.</summary>
    [EntersSectionIfTrue(SectionKind.Spinlock, LockParameter = "lock")]
    public static bool spin_trylock(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        PreemptCountAdd(task, 1, site);
        if (Interlocked.CompareExchange(ref @lock.State, 1, 0) == 0)
        {
            Acquired(task, @lock, site);
            return true;
        }
        PreemptCountSub(task, 1, KTask.PreemptMask, "spin_trylock", site);
        return false;
    }

    [EntersSection(SectionKind.Spinlock, LockParameter = "lock")]
    [EntersSection(SectionKind.IrqsDisabled)]
    public static void spin_lock_irqsave(spinlock_t @lock, out ulong flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        KTask task = Machine.Current.CurrentTask;
        flags = task.IrqsOff ? 0 : X86_EFLAGS_IF;
        SpinLock(task, @lock, new CallSite(caller, file, line), irqsOff: true, bottomHalvesOff: false);
    }

    [LeavesSection(SectionKind.Spinlock, LockParameter = "lock")]
    [LeavesSection(SectionKind.IrqsDisabled)]
    public static void spin_unlock_irqrestore(spinlock_t @lock, ulong flags, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        SpinUnlock(task, @lock, site);
        SetIrqsOff(task, irqs_disabled_flags(flags), site);
    }

    [EntersSection(SectionKind.Spinlock, LockParameter = "lock")]
    [EntersSection(SectionKind.IrqsDisabled)]
    public static void spin_lock_irq(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SpinLock(Machine.Current.CurrentTask, @lock, new CallSite(caller, file, line), irqsOff: true, bottomHalvesOff: false);

    [LeavesSection(SectionKind.Spinlock, LockParameter = "lock")]
    [LeavesSection(SectionKind.IrqsDisabled)]
    public static void spin_unlock_irq(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        SpinUnlock(task, @lock, site);
        SetIrqsOff(task, false, site);
    }

    [EntersSection(SectionKind.Spinlock, LockParameter = "lock")]
    [EntersSection(SectionKind.BottomHalvesDisabled)]
    public static void spin_lock_bh(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        SpinLock(Machine.Current.CurrentTask, @lock, new CallSite(caller, file, line), irqsOff: false, bottomHalvesOff: true);

    [LeavesSection(SectionKind.Spinlock, LockParameter = "lock")]
    [LeavesSection(SectionKind.BottomHalvesDisabled)]
    public static void spin_unlock_bh(spinlock_t @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        SpinUnlock(task, @lock, site);
        LocalBhEnable(task, site);
    }

    /// <summary>True while somebody holds the lock.</summary>
    public static bool spin_is_locked(spinlock_t @lock) => Volatile.Read(ref @lock.State) != 0;

    /// <summary>The spin_lock family: interrupts or bottom halves off first, then preemption, then the lock.</summary>
    private static void SpinLock(KTask task, spinlock_t @lock, CallSite site, bool irqsOff, bool bottomHalvesOff)
    {
        if (irqsOff) SetIrqsOff(task, true, site);
        if (bottomHalvesOff) PreemptCountAdd(task, KTask.SoftirqDisableOffset, site);
        PreemptCountAdd(task, 1, site);
        AcquireSpin(task, @lock, site);
    }

    private static void Acquired(KTask task, spinlock_t @lock, CallSite site)
    {
        @lock.Owner = task;
        @lock.OwnerThread = Environment.CurrentManagedThreadId;
        @lock.TakenAt = site;
        task.HeldLocks.Add(new HeldLock(@lock, @lock.Name, SpinlockUsage, site));
    }

    /// <summary>
    /// do_raw_spin_lock with spinlock debugging: taking a lock that this CPU already holds would
    /// spin forever. When the holder is on this host thread (the same task, or the task an irq or
    /// softirq interrupted) it is reported and counted instead; when it is on another thread (an
    /// irq delivered to its CPU from elsewhere) it is reported and then waited for.
    /// </summary>
    private static void AcquireSpin(KTask task, spinlock_t @lock, CallSite site)
    {
        if (Interlocked.CompareExchange(ref @lock.State, 1, 0) == 0)
        {
            Acquired(task, @lock, site);
            return;
        }
        KTask? owner = @lock.Owner;
        if (owner != null && owner.CpuId == task.CpuId && Volatile.Read(ref @lock.State) != 0)
        {
            bool sameThread = owner == task || @lock.OwnerThread == Environment.CurrentManagedThreadId;
            ReportSpinBug(task, @lock, owner == task ? "spinlock recursion" : "spinlock cpu recursion", owner, site);
            if (sameThread)
            {
                @lock.Recursion++;
                task.HeldLocks.Add(new HeldLock(@lock, @lock.Name, SpinlockUsage, site));
                return;
            }
        }
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref @lock.State, 1, 0) != 0) spin.SpinOnce();
        Acquired(task, @lock, site);
    }

    private static void SpinUnlock(KTask task, spinlock_t @lock, CallSite site)
    {
        int held = LastHeld(task, @lock);
        if (held < 0 || Volatile.Read(ref @lock.State) == 0)
        {
            ReportSpinBug(task, @lock, Volatile.Read(ref @lock.State) == 0 ? "spinlock already unlocked" : "spinlock wrong owner", @lock.Owner, site);
            return;
        }
        if (@lock.Recursion > 0 && (@lock.Owner != task || held != FirstHeld(task, @lock)))
        {
            @lock.Recursion--;
        }
        else
        {
            @lock.Owner = null;
            Volatile.Write(ref @lock.State, 0);
        }
        task.HeldLocks.RemoveAt(held);
        PreemptCountSub(task, 1, KTask.PreemptMask, "spin_unlock", site);
    }

    internal static int LastHeld(KTask task, object @lock) => task.HeldLocks.FindLastIndex(h => h.Lock == @lock);

    private static int FirstHeld(KTask task, object @lock) => task.HeldLocks.FindIndex(h => h.Lock == @lock);

    private static void ReportSpinBug(KTask task, spinlock_t @lock, string message, KTask? owner, CallSite site)
    {
        if (!task.Machine.IsChecking(Checks.DebugPreempt)) return;
        var text = new StringBuilder();
        text.Append("BUG: ").Append(message).Append(" on CPU#").Append(task.CpuId).Append(", ").Append(task.Comm).Append('/').Append(task.Pid).Append('\n');
        text.Append(" lock: ").Append(@lock.Name).Append(", .magic: dead4ead, .owner: ")
            .Append(owner != null ? $"{owner.Comm}/{owner.Pid}" : "<none>/-1").Append(", .owner_cpu: ").Append(owner?.CpuId ?? -1).Append('\n');
        if (owner != null) text.Append(" taken at: ").Append(@lock.TakenAt).Append('\n');
        text.Append(" at: ").Append(site).Append('\n');
        ContextReport.AppendTail(text, task);
        task.Machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
    }
}
