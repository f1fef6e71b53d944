using System;
using System.Diagnostics;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class MightSleepTests
{
    [Fact]
    public void Msleep_under_a_spinlock_reports_the_kernel_text()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        spin_lock(lk);
        var clock = Stopwatch.StartNew();
        msleep(20);
        long slept = clock.ElapsedMilliseconds;
        spin_unlock(lk);
        KernelBugReport report = Ctx.Single(m, BugKind.SleepInAtomic);
        KTask task = m.CurrentTask;
        Assert.Equal($"BUG: sleeping function called from invalid context at MightSleepTests.cs:{LineOf("msleep(20);")}", report.Title);
        Assert.Contains($"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {task.Pid}, name: {task.Comm}\n", report.Text);
        Assert.Contains("preempt_count: 1, expected: 0\n", report.Text);
        Assert.Contains("RCU nest depth: 0, expected: 0\n", report.Text);
        Assert.Contains($"1 lock held by {task.Comm}/{task.Pid}:\n #0: ", report.Text);
        Assert.Contains("(&lk){+.+.}-{2:2}, at: Msleep_under_a_spinlock_reports_the_kernel_text (MightSleepTests.cs:", report.Text);
        Assert.Contains("Preemption disabled at:\n Msleep_under_a_spinlock_reports_the_kernel_text (MightSleepTests.cs:", report.Text);
        Assert.Contains($"CPU: {task.CpuId} PID: {task.Pid}", report.Text);
        Assert.Contains("Call Trace:\n", report.Text);
        Assert.True(slept >= 15, "in Report mode the sleep happens, as in the kernel");
        Assert.True(preemptible());
        Assert.False(spin_is_locked(lk));
    }

    private static int LineOf(string code)
    {
        string[] lines = System.IO.File.ReadAllLines(SourcePath());
        return Array.FindIndex(lines, l => l.Trim() == code) + 1;
    }

    private static string SourcePath([System.Runtime.CompilerServices.CallerFilePath] string file = "") => file;

    [Fact]
    public void Might_sleep_in_process_context_is_silent()
    {
        using Machine m = Ctx.Boot();
        might_sleep();
        msleep(1);
        usleep_range(100, 200);
        cond_resched();
        schedule();
        might_sleep_if(true);
    }

    [Fact]
    public void Spinning_delays_never_count_as_sleeping()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        spin_lock_irqsave(lk, out ulong flags);
        udelay(10);
        mdelay(1);
        ndelay(100);
        spin_unlock_irqrestore(lk, flags);
    }

    [Fact]
    public void Mutex_lock_under_a_spinlock_is_a_sleep_in_atomic()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        var mx = new mutex();
        spin_lock(lk);
        Assert.Equal(BugKind.SleepInAtomic, Assert.Throws<KernelBugException>(() => mutex_lock(mx)).Kind);
        Assert.False(mutex_is_locked(mx));
        spin_unlock(lk);
    }

    [Fact]
    public void Sleeping_with_interrupts_off_says_so()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        local_irq_disable();
        might_sleep();
        local_irq_enable();
        KernelBugReport report = Ctx.Single(m, BugKind.SleepInAtomic);
        Assert.Contains("in_atomic(): 0, irqs_disabled(): 1,", report.Text);
        Assert.Contains("preempt_count: 0, expected: 0", report.Text);
        Assert.Contains("no locks held by", report.Text);
        Assert.Contains("hardirqs last disabled at: Sleeping_with_interrupts_off_says_so", report.Text);
    }

    [Fact]
    public void Msleep_in_a_timer_callback_is_a_sleep_in_atomic()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var t = new timer_list();
        timer_setup(t, _ => msleep(1), 0);
        mod_timer(t, jiffies + 1);
        m.AdvanceJiffies(1);
        KernelBugReport report = Ctx.Single(m, BugKind.SleepInAtomic);
        Assert.Contains("in_atomic(): 1, irqs_disabled(): 0,", report.Text);
        Assert.Contains("preempt_count: 100, expected: 0", report.Text);
    }

    [Fact]
    public void Msleep_in_an_irq_handler_is_a_sleep_in_atomic()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        request_irq(7, (irq, dev) => { msleep(1); return IRQ_HANDLED; }, 0, "dev", null);
        m.RaiseIrq(7);
        KernelBugReport report = Ctx.Single(m, BugKind.SleepInAtomic);
        Assert.Contains("in_atomic(): 1, irqs_disabled(): 1,", report.Text);
        Assert.Contains("preempt_count: 10000, expected: 0", report.Text);
    }

    [Fact]
    public void Msleep_in_a_work_item_is_clean()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var w = new work_struct();
        INIT_WORK(w, _ => msleep(1));
        schedule_work(w);
        flush_work(w);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void An_allocation_helper_reports_only_when_its_mask_may_sleep()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        spin_lock(new spinlock_t());
        MightSleepIf(gfpflags_allow_blocking(GFP_ATOMIC), new CallSite("kmalloc", "slab.c", 10));
        Assert.Empty(m.Reports);
        MightSleepIf(gfpflags_allow_blocking(GFP_KERNEL), new CallSite("kmalloc", "slab.c", 10));
        Assert.Equal("BUG: sleeping function called from invalid context at slab.c:10", Ctx.Single(m, BugKind.SleepInAtomic).Title);
        preempt_enable();
    }

    [Fact]
    public void Schedule_while_atomic_has_its_own_text()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        preempt_disable();
        schedule();
        preempt_enable();
        KTask task = m.CurrentTask;
        Assert.Equal($"BUG: scheduling while atomic: {task.Comm}/{task.Pid}/0x00000001", Ctx.Single(m, BugKind.SleepInAtomic).Title);
    }

    [Fact]
    public void The_check_can_be_switched_off()
    {
        using Machine m = Ctx.Boot(checks: Checks.All & ~Checks.MightSleep);
        preempt_disable();
        might_sleep();
        cond_resched();
        preempt_enable();
    }

    [Fact]
    public void A_task_sleeping_in_atomic_lets_others_use_the_cpu_meanwhile()
    {
        using Machine m = Ctx.Boot(cpus: 1, onBug: BugAction.Report);
        var lk = new spinlock_t();
        bool otherRan = false;
        preempt_disable();
        var other = Ctx.Start(m, () =>
        {
            spin_lock(lk);
            otherRan = true;
            spin_unlock(lk);
        });
        msleep(200);
        Assert.True(other.Join(TimeSpan.FromSeconds(5)));
        preempt_enable();
        Assert.True(otherRan);
        Ctx.Single(m, BugKind.SleepInAtomic);
    }

    [Fact]
    public void Wait_event_really_blocks_until_wake_up()
    {
        using Machine m = Ctx.Boot();
        var wq = new wait_queue_head_t();
        init_waitqueue_head(wq);
        bool flag = false;
        var clock = Stopwatch.StartNew();
        var waker = Ctx.Start(m, () =>
        {
            msleep(100);
            flag = true;
            wake_up(wq);
        });
        wait_event(wq, () => flag);
        Assert.True(clock.ElapsedMilliseconds >= 80, $"returned after {clock.ElapsedMilliseconds} ms");
        Assert.True(waker.Join(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, wait_event_timeout(wq, () => false, 20));
        Assert.True(wait_event_timeout(wq, () => true, 20) >= 1);
        Assert.Equal(0, wait_event_interruptible(wq, () => true));
    }

    [Fact]
    public void Wait_event_in_atomic_context_is_reported()
    {
        using Machine m = Ctx.Boot();
        var wq = new wait_queue_head_t();
        rcu_read_lock();
        KernelBugException e = Assert.Throws<KernelBugException>(() => wait_event(wq, () => true));
        rcu_read_unlock();
        Assert.Equal(BugKind.SleepInAtomic, e.Kind);
        Assert.Contains("RCU nest depth: 1, expected: 0", e.Report);
        Assert.Contains("(rcu_read_lock){....}-{1:2}", e.Report);
    }
}
