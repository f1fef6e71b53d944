using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

// kernel/time/sleep_timeout.c (msleep and friends: they really block) and include/linux/delay.h
// (udelay and friends: busy waits that never sleep).
public static partial class Kernel
{
    /// <summary>Sleeps at least <paramref name="msecs"/> milliseconds.</summary>
    [MaySleep]
    public static void msleep(uint msecs, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Sleep(new CallSite(caller, file, line), TimeSpan.FromMilliseconds(msecs));

    /// <summary>msleep that a signal could cut short (none come here): returns the milliseconds left, 0.</summary>
    [MaySleep]
    public static uint msleep_interruptible(uint msecs, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Sleep(new CallSite(caller, file, line), TimeSpan.FromMilliseconds(msecs));
        return 0;
    }

    [MaySleep]
    public static void ssleep(uint seconds, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Sleep(new CallSite(caller, file, line), TimeSpan.FromSeconds(seconds));

    /// <summary>Sleeps between <paramref name="min"/> and <paramref name="max"/> microseconds.</summary>
    [MaySleep]
    public static void usleep_range(ulong min, ulong max, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (max < min) throw new ArgumentException($"usleep_range: max ({max}) is below min ({min}).", nameof(max));
        Sleep(new CallSite(caller, file, line), TimeSpan.FromTicks((long)Math.Min(min, (ulong)int.MaxValue) * 10));
    }

    /// <summary>Busy-waits <paramref name="usecs"/> microseconds; never sleeps.</summary>
    public static void udelay(ulong usecs) => Delay(usecs * 1000);

    /// <summary>Busy-waits <paramref name="msecs"/> milliseconds; never sleeps.</summary>
    public static void mdelay(ulong msecs) => Delay(msecs * 1_000_000);

    /// <summary>Busy-waits <paramref name="nsecs"/> nanoseconds; never sleeps.</summary>
    public static void ndelay(ulong nsecs) => Delay(nsecs);

    private static void Sleep(CallSite site, TimeSpan duration)
    {
        KTask task = MightSleep(site);
        using (SleepScope.Enter(task)) Thread.Sleep(duration);
    }

    /// <summary>
    /// Spins for the time. A preemptible task passes a preemption point after it, as a timer tick
    /// on a preemptible kernel may preempt a busy wait; a non-preemptible one only spins.
    /// </summary>
    private static void Delay(ulong nsecs)
    {
        long end = Stopwatch.GetTimestamp() + (long)Math.Min(nsecs * (double)Stopwatch.Frequency / 1e9, long.MaxValue / 2);
        while (Stopwatch.GetTimestamp() < end) Thread.SpinWait(16);
        Machine machine = Machine.Current;
        machine.Scheduler.PreemptionPoint(machine.CurrentTask);
    }
}
