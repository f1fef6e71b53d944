using System;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class IrqTests
{
    [Fact]
    public void A_raised_irq_runs_its_handler_in_hard_irq_context_with_its_dev()
    {
        using Machine m = Ctx.Boot();
        var dev = new object();
        object? seenDev = null;
        bool inIrq = false, irqsOff = false, atomic = false, task = true;
        int seenIrq = -1, cpu = -1;
        Assert.Equal(0, request_irq(5, (irq, d) =>
        {
            seenIrq = irq;
            seenDev = d;
            inIrq = in_irq() && in_interrupt();
            irqsOff = irqs_disabled();
            atomic = in_atomic();
            task = in_task();
            cpu = m.CurrentTask.CpuId;
            return IRQ_HANDLED;
        }, 0, "mydev", dev));
        m.RaiseIrq(5, 1);
        Assert.Equal(5, seenIrq);
        Assert.Same(dev, seenDev);
        Assert.True(inIrq && irqsOff && atomic && !task);
        Assert.Equal(1, cpu);
        Assert.True(preemptible());
        Assert.Null(m.Cpus[1].Owner);
    }

    [Fact]
    public void Request_irq_refuses_bad_lines_and_unshared_sharing()
    {
        using Machine m = Ctx.Boot();
        irq_handler_t h = (irq, dev) => IRQ_HANDLED;
        Assert.Equal(-EINVAL, request_irq(-1, h, 0, "bad", null));
        Assert.Equal(-EINVAL, request_irq(NR_IRQS, h, 0, "bad", null));
        Assert.Equal(-EINVAL, request_irq(3, null!, 0, "bad", null));
        Assert.Equal(-EINVAL, request_irq(3, h, IRQF_SHARED, "nodev", null));
        Assert.Equal(0, request_irq(3, h, 0, "first", null));
        Assert.Equal(-EBUSY, request_irq(3, h, 0, "second", null));
        Assert.Equal(-EBUSY, request_irq(3, h, IRQF_SHARED, "second", new object()));
    }

    [Fact]
    public void Shared_handlers_all_run_and_free_irq_removes_only_its_dev()
    {
        using Machine m = Ctx.Boot();
        object a = new(), b = new();
        int hitsA = 0, hitsB = 0;
        Assert.Equal(0, request_irq(9, (irq, dev) => { hitsA++; return IRQ_HANDLED; }, IRQF_SHARED, "a", a));
        Assert.Equal(0, request_irq(9, (irq, dev) => { hitsB++; return IRQ_NONE; }, IRQF_SHARED, "b", b));
        m.RaiseIrq(9);
        free_irq(9, a);
        m.RaiseIrq(9);
        Assert.Equal(1, hitsA);
        Assert.Equal(2, hitsB);
    }

    [Fact]
    public void An_irq_waits_while_its_cpu_has_interrupts_disabled()
    {
        using Machine m = Ctx.Boot();
        int hits = 0;
        request_irq(11, (irq, dev) => { hits++; return IRQ_HANDLED; }, 0, "dev", null);
        local_irq_disable();
        m.RaiseIrq(11);
        m.RaiseIrq(11);
        Assert.Equal(0, hits);
        local_irq_enable();
        Assert.Equal(2, hits);
    }

    [Fact]
    public void An_irq_on_another_cpu_is_not_held_back_by_this_cpus_interrupt_flag()
    {
        using Machine m = Ctx.Boot(cpus: 2);
        int hits = 0;
        request_irq(11, (irq, dev) => { hits++; return IRQ_HANDLED; }, 0, "dev", null);
        local_irq_save(out ulong flags);
        int other = 1 - m.CurrentTask.CpuId;
        m.RaiseIrq(11, other);
        Assert.Equal(1, hits);
        local_irq_restore(flags);
    }

    [Fact]
    public void An_irq_pending_under_spin_lock_irqsave_runs_at_the_restore()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        int hits = 0;
        bool lockFreeInHandler = false;
        request_irq(12, (irq, dev) =>
        {
            hits++;
            lockFreeInHandler = !spin_is_locked(lk);
            return IRQ_HANDLED;
        }, 0, "dev", null);
        spin_lock_irqsave(lk, out ulong flags);
        m.RaiseIrq(12);
        Assert.Equal(0, hits);
        spin_unlock_irqrestore(lk, flags);
        Assert.Equal(1, hits);
        Assert.True(lockFreeInHandler);
    }

    [Fact]
    public void Disable_irq_nests_and_enable_irq_replays_what_came_meanwhile()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        int hits = 0;
        request_irq(13, (irq, dev) => { hits++; return IRQ_HANDLED; }, 0, "dev", null);
        disable_irq(13);
        disable_irq(13);
        m.RaiseIrq(13);
        enable_irq(13);
        Assert.Equal(0, hits);
        enable_irq(13);
        Assert.Equal(1, hits);
        enable_irq(13);
        Assert.StartsWith("Unbalanced enable for IRQ 13", Ctx.Single(m, BugKind.UnbalancedPreempt).Title);
    }

    [Fact]
    public void A_handler_that_returns_holding_a_lock_is_reported_and_the_lock_is_released()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        request_irq(14, (irq, dev) => { spin_lock(lk); return IRQ_HANDLED; }, 0, "leaky", null);
        m.RaiseIrq(14);
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.StartsWith("BUG: irq 14 handler leaky", report.Title);
        Assert.Contains("entered with preempt_count 0x00010000, exited with 0x00010001?", report.Text);
        Assert.Contains("(&lk){+.+.}-{2:2}", report.Text);
        Assert.False(spin_is_locked(lk));
        Assert.True(preemptible());
        Assert.All(m.Cpus, cpu => Assert.Null(cpu.Owner));
    }

    [Fact]
    public void A_handler_taking_a_lock_its_interrupted_task_holds_is_reported_not_deadlocked()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        request_irq(15, (irq, dev) => { spin_lock(lk); spin_unlock(lk); return IRQ_HANDLED; }, 0, "dev", null);
        spin_lock(lk);
        m.RaiseIrq(15);
        Assert.StartsWith("BUG: spinlock cpu recursion on CPU#", Ctx.Single(m, BugKind.UnbalancedPreempt).Title);
        Assert.True(spin_is_locked(lk));
        spin_unlock(lk);
        Assert.False(spin_is_locked(lk));
        Assert.True(preemptible());
    }

    [Fact]
    public void Synchronize_irq_waits_for_a_handler_running_elsewhere()
    {
        using Machine m = Ctx.Boot();
        using var started = new ManualResetEventSlim();
        bool finished = false;
        request_irq(16, (irq, dev) =>
        {
            started.Set();
            mdelay(100);
            Volatile.Write(ref finished, true);
            return IRQ_HANDLED;
        }, 0, "slow", null);
        Thread raiser = Ctx.Start(m, () => m.RaiseIrq(16));
        Assert.True(started.Wait(TimeSpan.FromSeconds(5)));
        synchronize_irq(16);
        Assert.True(Volatile.Read(ref finished));
        Assert.True(raiser.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Freeing_an_irq_that_is_not_requested_is_reported()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        free_irq(20, null);
        Assert.StartsWith("Trying to free already-free IRQ 20", Ctx.Single(m, BugKind.UnbalancedPreempt).Title);
    }

    [Fact]
    public void A_tasklet_scheduled_by_a_handler_runs_in_softirq_context_when_the_irq_returns()
    {
        using Machine m = Ctx.Boot();
        var tasklet = new tasklet_struct();
        ulong seenData = 0;
        bool serving = false, inIrq = true;
        tasklet_init(tasklet, data =>
        {
            seenData = data;
            serving = in_serving_softirq();
            inIrq = in_irq();
        }, 42);
        request_irq(21, (irq, dev) => { tasklet_schedule(tasklet); return IRQ_HANDLED; }, 0, "dev", null);
        m.RaiseIrq(21);
        Assert.Equal(42UL, seenData);
        Assert.True(serving);
        Assert.False(inIrq);
    }

    [Fact]
    public void A_handler_shows_as_the_task_it_interrupts()
    {
        using Machine m = Ctx.Boot();
        int pid = -1;
        request_irq(22, (irq, dev) => { pid = m.CurrentTask.Pid; return IRQ_HANDLED; }, 0, "dev", null);
        m.RaiseIrq(22);
        Assert.Equal(m.CurrentTask.Pid, pid);
    }

    [Fact]
    public void A_bug_in_a_handler_throws_from_RaiseIrq_and_leaves_the_cpu_usable()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        bool fail = true;
        int hits = 0;
        request_irq(23, (irq, dev) =>
        {
            hits++;
            spin_lock(lk);
            if (fail) might_sleep();
            spin_unlock(lk);
            return IRQ_HANDLED;
        }, 0, "dev", null);
        Assert.Equal(BugKind.SleepInAtomic, Assert.Throws<KernelBugException>(() => m.RaiseIrq(23, 0)).Kind);
        Assert.False(spin_is_locked(lk));
        Assert.Equal(0, m.Cpus[0].IrqsOffCount);
        Assert.Null(m.Cpus[0].Owner);
        fail = false;
        m.RaiseIrq(23, 0);
        Assert.Equal(2, hits);
    }

    [Fact]
    public void A_threaded_handler_runs_in_process_context_on_its_irq_thread()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        string? thread = null;
        bool task = false;
        int primary = 0;
        Assert.Equal(0, request_threaded_irq(30, (irq, dev) => { primary++; return IRQ_WAKE_THREAD; }, (irq, dev) =>
        {
            msleep(1);
            thread = Thread.CurrentThread.Name;
            task = in_task() && !in_atomic();
            return IRQ_HANDLED;
        }, 0, "mydev", null));
        m.RaiseIrq(30);
        synchronize_irq(30);
        Assert.Equal(1, primary);
        Assert.Equal("irq/30-mydev", thread);
        Assert.True(task);
        Assert.Empty(m.Reports);
        free_irq(30, null);
        m.RaiseIrq(30);
        Assert.Equal(1, primary);
    }

    [Fact]
    public void A_oneshot_line_stays_masked_until_its_thread_has_run()
    {
        using Machine m = Ctx.Boot();
        Assert.Equal(-EINVAL, request_threaded_irq(31, null, (irq, dev) => IRQ_HANDLED, 0, "dev", null));
        using var inThread = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int runs = 0;
        Assert.Equal(0, request_threaded_irq(31, null, (irq, dev) =>
        {
            Interlocked.Increment(ref runs);
            inThread.Set();
            release.Wait(TimeSpan.FromSeconds(5));
            return IRQ_HANDLED;
        }, IRQF_ONESHOT, "dev", null));
        m.RaiseIrq(31);
        Assert.True(inThread.Wait(TimeSpan.FromSeconds(5)));
        m.RaiseIrq(31);
        Assert.Equal(1, m.Irqs.Depth(31));
        inThread.Reset();
        release.Set();
        Assert.True(inThread.Wait(TimeSpan.FromSeconds(5)), "the interrupt that came while masked is replayed");
        synchronize_irq(31);
        Assert.Equal(2, runs);
        Assert.Equal(0, m.Irqs.Depth(31));
    }
}
