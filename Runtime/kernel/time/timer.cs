using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

/// <summary>A kernel timer: <see cref="function"/> runs in softirq context once jiffies reach <see cref="expires"/>.</summary>
public sealed class timer_list
{
    /// <summary>When the timer fires, in jiffies (LDD3 sets it before add_timer).</summary>
    public ulong expires;

    /// <summary>The callback (timer_setup sets it).</summary>
    public Action<timer_list>? function;

    public uint flags;

    internal bool Pending;
    internal long Sequence;

    /// <summary>The managed thread id running the callback, 0 when idle.</summary>
    internal int RunningThread;
}

/// <summary>
/// The timer wheel of a machine: pending timers in expiry order (ties in arming order). Jiffies
/// move only through Machine.AdvanceJiffies, which steps from one expiry to the next so that each
/// callback sees jiffies at its own expiry (a periodic timer fires once per period).
/// </summary>
internal sealed class TimerBase
{
    private static readonly Comparer<timer_list> s_order = Comparer<timer_list>.Create((a, b) =>
    {
        int c = a.expires.CompareTo(b.expires);
        return c != 0 ? c : a.Sequence.CompareTo(b.Sequence);
    });

    private readonly object _gate = new();
    private readonly object _clock = new();
    private readonly SortedSet<timer_list> _pending = new(s_order);
    private long _sequence;

    /// <summary>Where the clock is going: the jiffies every AdvanceJiffies so far adds up to.</summary>
    private ulong _target;

    public int Modify(timer_list timer, ulong expires)
    {
        if (timer.function is null) throw new InvalidOperationException("mod_timer: the timer has no function (call timer_setup first).");
        lock (_gate)
        {
            bool wasPending = timer.Pending && _pending.Remove(timer);
            timer.expires = expires;
            timer.Sequence = ++_sequence;
            _pending.Add(timer);
            timer.Pending = true;
            return wasPending ? 1 : 0;
        }
    }

    public int Delete(timer_list timer)
    {
        lock (_gate)
        {
            if (!timer.Pending) return 0;
            _pending.Remove(timer);
            timer.Pending = false;
            return 1;
        }
    }

    public bool HasExpired(ulong now)
    {
        lock (_gate) return _pending.Count > 0 && _pending.Min!.expires <= now;
    }

    private ulong? NextExpiry()
    {
        lock (_gate) return _pending.Count > 0 ? _pending.Min!.expires : null;
    }

    /// <summary>The earliest timer expired at <paramref name="now"/> and armed before this pass began, marked running.</summary>
    private timer_list? TakeExpired(ulong now, long armedBefore)
    {
        lock (_gate)
        {
            if (_pending.Count == 0) return null;
            timer_list first = _pending.Min!;
            if (first.expires > now || first.Sequence > armedBefore) return null;
            _pending.Remove(first);
            first.Pending = false;
            first.RunningThread = Environment.CurrentManagedThreadId;
            return first;
        }
    }

    /// <summary>
    /// Ticks: each step goes to the next expiry (at least one jiffy on) and serves softirqs there.
    /// The clock lock is not held while callbacks run, so a callback or another thread may advance
    /// time too: the advances add up in <see cref="_target"/>. Where softirqs cannot be served
    /// (the caller has bottom halves off, or another thread is serving them), the clock jumps to
    /// the target and the timers run at the next softirq point.
    /// </summary>
    public void Advance(Machine machine, ulong n, CallSite site)
    {
        lock (_clock) _target = Math.Max(_target, machine.Jiffies) + n;
        while (true)
        {
            lock (_clock)
            {
                ulong at = NextExpiry() is ulong next ? Math.Max(next, machine.Jiffies + 1) : ulong.MaxValue;
                if (at > _target)
                {
                    Volatile.Write(ref machine.JiffiesCounter, Math.Max(machine.Jiffies, _target));
                    break;
                }
                Volatile.Write(ref machine.JiffiesCounter, at);
            }
            if (!machine.Softirqs.Run(machine, site))
            {
                lock (_clock) Volatile.Write(ref machine.JiffiesCounter, Math.Max(machine.Jiffies, _target));
                break;
            }
        }
        machine.Softirqs.Run(machine, site);
    }

    /// <summary>The timer softirq: runs every timer expired now, earliest first, in <paramref name="context"/>.</summary>
    public void RunExpired(Machine machine, KTask context)
    {
        long armedBefore = Interlocked.Read(ref _sequence);
        while (TakeExpired(machine.Jiffies, armedBefore) is { } timer)
        {
            Action<timer_list> function = timer.function!;
            try
            {
                DebugPreempt.RunBalanced(context, KTask.SoftirqOffset, false, () => function(timer), leaked =>
                    $"timer: {function.Method.Name} preempt leak: {KTask.SoftirqOffset:x8} -> {leaked:x8}\n");
            }
            finally
            {
                Volatile.Write(ref timer.RunningThread, 0);
            }
        }
    }
}

// kernel/time/timer.c and include/linux/jiffies.h.
public static partial class Kernel
{
    /// <summary>Ticks per second.</summary>
    public const int HZ = 1000;

    /// <summary>The current machine's tick count (advanced by Machine.AdvanceJiffies).</summary>
    public static ulong jiffies => Machine.Current.Jiffies;

    public static ulong msecs_to_jiffies(uint m) => (ulong)m * HZ / 1000;

    public static ulong usecs_to_jiffies(uint u) => ((ulong)u * HZ + 999_999) / 1_000_000;

    public static uint jiffies_to_msecs(ulong j) => (uint)(j * 1000 / HZ);

    /// <summary>True when <paramref name="a"/> is after <paramref name="b"/>, across wrap-around.</summary>
    public static bool time_after(ulong a, ulong b) => (long)(b - a) < 0;

    public static bool time_before(ulong a, ulong b) => time_after(b, a);

    public static bool time_after_eq(ulong a, ulong b) => (long)(a - b) >= 0;

    public static bool time_before_eq(ulong a, ulong b) => time_after_eq(b, a);

    /// <summary>Sets the timer up to call <paramref name="callback"/> (in softirq context) when it fires.</summary>
    [RunsCallback("callback", CallbackContext.SoftIrq)]
    public static void timer_setup(timer_list timer, Action<timer_list> callback, uint flags)
    {
        ArgumentNullException.ThrowIfNull(callback);
        Machine.Current.Timers.Delete(timer);
        timer.function = callback;
        timer.flags = flags;
    }

    /// <summary>(Re)arms the timer for <paramref name="expires"/>; 1 when it was pending, 0 otherwise.</summary>
    public static int mod_timer(timer_list timer, ulong expires) => Machine.Current.Timers.Modify(timer, expires);

    /// <summary>Arms a timer that is not pending, for its <see cref="timer_list.expires"/> (the kernel BUGs on a pending one).</summary>
    public static void add_timer(timer_list timer)
    {
        if (timer.Pending) throw new InvalidOperationException("add_timer: the timer is already pending (the kernel BUGs here; use mod_timer).");
        Machine.Current.Timers.Modify(timer, timer.expires);
    }

    /// <summary>True while the timer is armed and has not fired.</summary>
    public static bool timer_pending(timer_list timer) => Volatile.Read(ref timer.Pending);

    /// <summary>Disarms the timer; 1 when it was pending. A running callback is not waited for.</summary>
    public static int del_timer(timer_list timer) => Machine.Current.Timers.Delete(timer);

    public static int timer_delete(timer_list timer) => del_timer(timer);

    /// <summary>Disarms the timer and waits until its callback is not running on another CPU; 1 when it was pending.</summary>
    [MaySleep]
    public static int del_timer_sync(timer_list timer, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        MightSleep(new CallSite(caller, file, line));
        TimerBase timers = Machine.Current.Timers;
        int wasPending = 0;
        var spin = new SpinWait();
        while (true)
        {
            wasPending |= timers.Delete(timer);
            int running = Volatile.Read(ref timer.RunningThread);
            if (running == 0 || running == Environment.CurrentManagedThreadId) return wasPending;
            spin.SpinOnce();
        }
    }

    [MaySleep]
    public static int timer_delete_sync(timer_list timer, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        del_timer_sync(timer, caller, file, line);
}
