using System;
using System.Collections.Generic;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class TimerTests
{
    [Fact]
    public void Jiffies_conversions_use_HZ_1000()
    {
        using Machine m = Ctx.Boot();
        Assert.Equal(1000, HZ);
        Assert.Equal(250UL, msecs_to_jiffies(250));
        Assert.Equal(250U, jiffies_to_msecs(250));
        Assert.Equal(1UL, usecs_to_jiffies(1));
        Assert.True(time_after(5, 3) && time_before(3, 5) && time_after(1, ulong.MaxValue));
        ulong start = jiffies;
        m.AdvanceJiffies(7);
        Assert.Equal(start + 7, jiffies);
    }

    [Fact]
    public void Expired_timers_run_in_expiry_order_each_at_its_own_jiffies()
    {
        using Machine m = Ctx.Boot();
        var fired = new List<(string, ulong)>();
        timer_list Make(string name)
        {
            var t = new timer_list();
            timer_setup(t, _ => fired.Add((name, jiffies)), 0);
            return t;
        }
        ulong now = jiffies;
        timer_list late = Make("late"), early = Make("early"), middle = Make("middle"), never = Make("never");
        mod_timer(late, now + 30);
        mod_timer(early, now + 10);
        mod_timer(middle, now + 20);
        mod_timer(never, now + 100);
        m.AdvanceJiffies(50);
        Assert.Equal(new[] { ("early", now + 10), ("middle", now + 20), ("late", now + 30) }, fired);
        Assert.True(timer_pending(never));
        Assert.False(timer_pending(early));
    }

    [Fact]
    public void Mod_timer_says_whether_it_was_pending_and_del_timer_disarms()
    {
        using Machine m = Ctx.Boot();
        int fired = 0;
        var t = new timer_list();
        timer_setup(t, _ => fired++, 0);
        Assert.Equal(0, mod_timer(t, jiffies + 5));
        Assert.Equal(1, mod_timer(t, jiffies + 10));
        m.AdvanceJiffies(5);
        Assert.Equal(0, fired);
        Assert.Equal(1, del_timer(t));
        Assert.Equal(0, del_timer(t));
        m.AdvanceJiffies(20);
        Assert.Equal(0, fired);
        t.expires = jiffies + 1;
        add_timer(t);
        Assert.Throws<InvalidOperationException>(() => add_timer(t));
        m.AdvanceJiffies(1);
        Assert.Equal(1, fired);
    }

    [Fact]
    public void Timer_callbacks_run_in_softirq_context()
    {
        using Machine m = Ctx.Boot();
        bool serving = false, irq = true, atomic = false, irqsOff = true;
        var t = new timer_list();
        timer_setup(t, _ =>
        {
            serving = in_serving_softirq() && in_interrupt();
            irq = in_irq();
            atomic = in_atomic();
            irqsOff = irqs_disabled();
        }, 0);
        mod_timer(t, jiffies + 1);
        m.AdvanceJiffies(1);
        Assert.True(serving && atomic);
        Assert.False(irq || irqsOff);
        Assert.True(preemptible());
    }

    [Fact]
    public void A_periodic_timer_fires_once_per_period()
    {
        using Machine m = Ctx.Boot();
        int fired = 0;
        var t = new timer_list();
        timer_setup(t, self =>
        {
            fired++;
            mod_timer(self, jiffies + 10);
        }, 0);
        mod_timer(t, jiffies + 10);
        m.AdvanceJiffies(100);
        Assert.Equal(10, fired);
        del_timer_sync(t);
    }

    [Fact]
    public void Timers_wait_while_bottom_halves_are_disabled()
    {
        using Machine m = Ctx.Boot();
        int fired = 0;
        var t = new timer_list();
        timer_setup(t, _ => fired++, 0);
        mod_timer(t, jiffies + 1);
        local_bh_disable();
        m.AdvanceJiffies(5);
        Assert.Equal(0, fired);
        local_bh_enable();
        Assert.Equal(1, fired);
    }

    [Fact]
    public void Del_timer_sync_waits_for_a_running_callback()
    {
        using Machine m = Ctx.Boot();
        using var started = new ManualResetEventSlim();
        bool finished = false;
        var t = new timer_list();
        timer_setup(t, _ =>
        {
            started.Set();
            mdelay(100);
            Volatile.Write(ref finished, true);
        }, 0);
        mod_timer(t, jiffies + 1);
        Thread ticker = Ctx.Start(m, () => m.AdvanceJiffies(1));
        Assert.True(started.Wait(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, del_timer_sync(t));
        Assert.True(Volatile.Read(ref finished));
        Assert.True(ticker.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void A_timer_that_leaks_a_lock_is_reported_and_the_lock_released()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        var t = new timer_list();
        timer_setup(t, _ => spin_lock(lk), 0);
        mod_timer(t, jiffies + 1);
        m.AdvanceJiffies(1);
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.Contains("preempt leak: 00000100 -> 00000101", report.Title);
        Assert.False(spin_is_locked(lk));
        Assert.True(preemptible());
    }

    [Fact]
    public void A_tasklet_runs_once_per_schedule_and_tasklet_kill_runs_a_queued_one()
    {
        using Machine m = Ctx.Boot();
        int runs = 0;
        var t = new tasklet_struct();
        tasklet_init(t, _ => runs++, 0);
        tasklet_schedule(t);
        tasklet_schedule(t);
        m.RunSoftirqs();
        Assert.Equal(1, runs);
        tasklet_schedule(t);
        tasklet_kill(t);
        Assert.Equal(2, runs);
        m.RunSoftirqs();
        Assert.Equal(2, runs);
    }

    [Fact]
    public void A_disabled_tasklet_stays_queued_until_enabled()
    {
        using Machine m = Ctx.Boot();
        int runs = 0;
        var t = new tasklet_struct();
        tasklet_init(t, _ => runs++, 0);
        tasklet_disable(t);
        tasklet_schedule(t);
        m.RunSoftirqs();
        Assert.Equal(0, runs);
        tasklet_enable(t);
        m.RunSoftirqs();
        Assert.Equal(1, runs);
    }

    [Fact]
    public void A_tasklet_that_leaves_preemption_disabled_is_reported()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var t = new tasklet_struct();
        tasklet_init(t, _ => preempt_disable(), 0);
        tasklet_schedule(t);
        m.RunSoftirqs();
        Assert.StartsWith("huh, entered softirq 6 TASKLET", Ctx.Single(m, BugKind.UnbalancedPreempt).Title);
        Assert.True(preemptible());
    }

    [Fact]
    public void Time_advanced_from_a_callback_adds_up_and_later_timers_still_fire()
    {
        using Machine m = Ctx.Boot();
        ulong start = jiffies;
        var fired = new List<ulong>();
        var first = new timer_list();
        var second = new timer_list();
        timer_setup(first, _ => { fired.Add(jiffies); m.AdvanceJiffies(5); }, 0);
        timer_setup(second, _ => fired.Add(jiffies), 0);
        mod_timer(first, start + 2);
        mod_timer(second, start + 8);
        m.AdvanceJiffies(10);
        Assert.Equal(start + 15, jiffies);
        Assert.Equal(2, fired.Count);
        Assert.Equal(start + 2, fired[0]);
    }
}
