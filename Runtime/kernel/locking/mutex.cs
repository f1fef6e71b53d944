using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;

namespace KmemGuard;

/// <summary>A sleeping lock: a contended mutex_lock blocks the task (its CPU is free meanwhile).</summary>
public sealed class mutex : ILeakableLock
{
    internal readonly object Gate = new();
    internal KTask? Owner;
    internal CallSite TakenAt;

    /// <summary>Reported recursive acquisitions still to be undone by their unlocks (never really nested).</summary>
    internal int Recursion;

    public mutex() : this("mutex") { }

    public mutex(string name) => Name = name;

    /// <summary>lockdep's class name (from mutex_init's argument).</summary>
    public string Name { get; internal set; }

    void ILeakableLock.ForceRelease(KTask holder)
    {
        lock (Gate)
        {
            if (Owner != holder) return;
            if (Recursion > 0)
            {
                Recursion--;
                return;
            }
            Owner = null;
            Monitor.PulseAll(Gate);
        }
    }

    public override string ToString() => Name;
}

// kernel/locking/mutex.c (with CONFIG_DEBUG_MUTEXES and lockdep's checks).
public static partial class Kernel
{
    internal const string MutexUsage = "{+.+.}-{3:3}";

    public static void mutex_init(mutex @lock, [CallerArgumentExpression(nameof(@lock))] string name = "")
    {
        lock (@lock.Gate)
        {
            @lock.Name = "&" + name;
            @lock.Owner = null;
            @lock.Recursion = 0;
        }
    }

    /// <summary>Takes the mutex, sleeping while another task holds it.</summary>
    [MaySleep]
    [EntersSection(SectionKind.Mutex, LockParameter = "lock")]
    public static void mutex_lock(mutex @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = MightSleep(site);
        while (true)
        {
            lock (@lock.Gate)
            {
                if (@lock.Owner == null) break;
                if (@lock.Owner == task)
                {
                    ReportRecursiveMutex(task, @lock, site);
                    @lock.Recursion++;
                    task.HeldLocks.Add(new HeldLock(@lock, @lock.Name, MutexUsage, site));
                    return;
                }
            }
            task.Machine.Scheduler.PreemptionPoint(task);
            using (SleepScope.Enter(task))
            {
                lock (@lock.Gate)
                {
                    while (@lock.Owner != null) Monitor.Wait(@lock.Gate);
                }
            }
        }
        Acquired(task, @lock, site);
    }

    /// <summary>Takes the mutex if it is free; true when taken (the kernel's 1).</summary>
    [EntersSectionIfTrue(SectionKind.Mutex, LockParameter = "lock")]
    public static bool mutex_trylock(mutex @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        KTask task = Machine.Current.CurrentTask;
        lock (@lock.Gate)
        {
            if (@lock.Owner != null) return false;
            Acquired(task, @lock, new CallSite(caller, file, line));
            return true;
        }
    }

    [LeavesSection(SectionKind.Mutex, LockParameter = "lock")]
    public static void mutex_unlock(mutex @lock, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        KTask task = Machine.Current.CurrentTask;
        lock (@lock.Gate)
        {
            int held = LastHeld(task, @lock);
            if (@lock.Owner != task || held < 0)
            {
                ReportBadUnlock(task, @lock, site);
                return;
            }
            task.HeldLocks.RemoveAt(held);
            if (@lock.Recursion > 0)
            {
                @lock.Recursion--;
                return;
            }
            @lock.Owner = null;
            Monitor.PulseAll(@lock.Gate);
        }
    }

    public static bool mutex_is_locked(mutex @lock) => Volatile.Read(ref @lock.Owner) != null;

    private static void Acquired(KTask task, mutex @lock, CallSite site)
    {
        lock (@lock.Gate)
        {
            @lock.Owner = task;
            @lock.TakenAt = site;
        }
        task.HeldLocks.Add(new HeldLock(@lock, @lock.Name, MutexUsage, site));
    }

    private static void ReportRecursiveMutex(KTask task, mutex @lock, CallSite site)
    {
        if (!task.Machine.IsChecking(Checks.DebugPreempt)) return;
        var text = new StringBuilder();
        text.Append("WARNING: possible recursive locking detected\n--------------------------------------------\n");
        text.Append(task.Comm).Append('/').Append(task.Pid).Append(" is trying to acquire lock:\n ")
            .Append(ContextReport.LockAddress(@lock)).Append(" (").Append(@lock.Name).Append("){+.+.}-{3:3}, at: ").Append(site).Append("\n\n");
        text.Append("but task is already holding lock:\n ").Append(ContextReport.LockAddress(@lock)).Append(" (").Append(@lock.Name)
            .Append("){+.+.}-{3:3}, at: ").Append(@lock.TakenAt).Append("\n\n *** DEADLOCK ***\n\n");
        ContextReport.AppendHeldLocks(text, task);
        ContextReport.AppendTail(text, task);
        task.Machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
    }

    /// <summary>lockdep's "bad unlock balance": releasing a lock the task does not hold.</summary>
    internal static void ReportBadUnlock(KTask task, object @lock, CallSite site)
    {
        if (!task.Machine.IsChecking(Checks.DebugPreempt)) return;
        var text = new StringBuilder();
        text.Append("WARNING: bad unlock balance detected!\n-------------------------------------\n");
        text.Append(task.Comm).Append('/').Append(task.Pid).Append(" is trying to release lock (").Append(@lock).Append(") at:\n ")
            .Append(site).Append('\n');
        text.Append(@lock is mutex { Owner: { } owner } && owner != task
            ? $"but the lock is held by {owner.Comm}/{owner.Pid}\n"
            : "but there are no more locks to release!\n");
        text.Append("\nother info that might help us debug this:\n");
        ContextReport.AppendHeldLocks(text, task);
        ContextReport.AppendTail(text, task);
        task.Machine.Reporter.Raise(BugKind.UnbalancedPreempt, text.ToString());
    }
}
