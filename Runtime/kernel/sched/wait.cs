using System;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

/// <summary>A wait queue: tasks block in wait_event until a wake_up finds their condition true.</summary>
public sealed class wait_queue_head_t
{
    internal readonly object Gate = new();

    /// <summary>Counts wake-ups, so that a wake-up between a check and the wait is not lost.</summary>
    internal long Wakeups;
}

// kernel/sched/wait.c and include/linux/wait.h.
public static partial class Kernel
{
    /// <summary>Returned by the _interruptible waits when a signal arrives (none come here).</summary>
    public const int ERESTARTSYS = 512;

    public static void init_waitqueue_head(wait_queue_head_t wq_head)
    {
        ArgumentNullException.ThrowIfNull(wq_head);
        Interlocked.Exchange(ref wq_head.Wakeups, 0);
    }

    /// <summary>Sleeps until <paramref name="condition"/> is true; it is checked again after every wake-up.</summary>
    [MaySleep]
    public static void wait_event(wait_queue_head_t wq_head, Func<bool> condition, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Wait(wq_head, condition, Timeout.InfiniteTimeSpan, new CallSite(caller, file, line));

    /// <summary>wait_event that a signal could interrupt (none come here): returns 0.</summary>
    [MaySleep]
    public static int wait_event_interruptible(wait_queue_head_t wq_head, Func<bool> condition, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Wait(wq_head, condition, Timeout.InfiniteTimeSpan, new CallSite(caller, file, line));
        return 0;
    }

    /// <summary>
    /// Waits at most <paramref name="timeout"/> jiffies (each a millisecond of real time, HZ = 1000):
    /// 0 when the condition is still false at the end, else the jiffies left (at least 1).
    /// </summary>
    [MaySleep]
    public static long wait_event_timeout(wait_queue_head_t wq_head, Func<bool> condition, long timeout, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var budget = TimeSpan.FromMilliseconds(Math.Max(0, timeout) * 1000.0 / HZ);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        if (!Wait(wq_head, condition, budget, new CallSite(caller, file, line))) return 0;
        long left = timeout - (long)(clock.Elapsed.TotalMilliseconds * HZ / 1000);
        return Math.Max(1, left);
    }

    [MaySleep]
    public static long wait_event_interruptible_timeout(wait_queue_head_t wq_head, Func<bool> condition, long timeout, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        wait_event_timeout(wq_head, condition, timeout, caller, file, line);

    /// <summary>Wakes the tasks waiting on the queue (they re-check their conditions).</summary>
    public static void wake_up(wait_queue_head_t wq_head)
    {
        lock (wq_head.Gate)
        {
            wq_head.Wakeups++;
            Monitor.PulseAll(wq_head.Gate);
        }
    }

    public static void wake_up_all(wait_queue_head_t wq_head) => wake_up(wq_head);

    public static void wake_up_interruptible(wait_queue_head_t wq_head) => wake_up(wq_head);

    public static void wake_up_interruptible_all(wait_queue_head_t wq_head) => wake_up(wq_head);

    /// <summary>The wait loop of ___wait_event; false when the time ran out with the condition still false.</summary>
    private static bool Wait(wait_queue_head_t wq_head, Func<bool> condition, TimeSpan timeout, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(wq_head);
        ArgumentNullException.ThrowIfNull(condition);
        KTask task = MightSleep(site);
        if (condition()) return true;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (SleepScope.Enter(task))
        {
            while (true)
            {
                long seen;
                lock (wq_head.Gate) seen = wq_head.Wakeups;
                if (condition()) return true;
                lock (wq_head.Gate)
                {
                    while (wq_head.Wakeups == seen)
                    {
                        if (timeout == Timeout.InfiniteTimeSpan)
                        {
                            Monitor.Wait(wq_head.Gate);
                            continue;
                        }
                        TimeSpan left = timeout - clock.Elapsed;
                        if (left <= TimeSpan.Zero || !Monitor.Wait(wq_head.Gate, left)) return condition();
                    }
                }
            }
        }
    }
}
