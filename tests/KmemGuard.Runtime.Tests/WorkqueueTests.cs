using System;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class WorkqueueTests
{
    [Fact]
    public void Work_runs_on_a_kworker_in_process_context_and_may_sleep()
    {
        using Machine m = Ctx.Boot();
        string? thread = null;
        bool task = false, atomic = true;
        var w = new work_struct();
        INIT_WORK(w, _ =>
        {
            msleep(5);
            might_sleep();
            thread = Thread.CurrentThread.Name;
            task = in_task();
            atomic = in_atomic();
        });
        Assert.True(schedule_work(w));
        flush_work(w);
        Assert.StartsWith("kworker/", thread);
        Assert.True(task);
        Assert.False(atomic);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Scheduling_a_pending_work_again_returns_false()
    {
        using Machine m = Ctx.Boot();
        using var gate = new ManualResetEventSlim();
        int runs = 0;
        var blocker = new work_struct();
        INIT_WORK(blocker, _ => gate.Wait(TimeSpan.FromSeconds(5)));
        var w = new work_struct();
        INIT_WORK(w, _ => Interlocked.Increment(ref runs));
        Assert.True(schedule_work_on(0, blocker));
        Assert.True(schedule_work_on(0, w));
        Assert.False(schedule_work_on(0, w));
        Assert.True(work_pending(w));
        gate.Set();
        flush_scheduled_work();
        Assert.Equal(1, runs);
        Assert.False(work_pending(w));
    }

    [Fact]
    public void Cancel_work_sync_takes_queued_work_off_the_queue()
    {
        using Machine m = Ctx.Boot();
        using var gate = new ManualResetEventSlim();
        int runs = 0;
        var blocker = new work_struct();
        INIT_WORK(blocker, _ => gate.Wait(TimeSpan.FromSeconds(5)));
        var w = new work_struct();
        INIT_WORK(w, _ => runs++);
        schedule_work_on(1, blocker);
        schedule_work_on(1, w);
        Assert.True(cancel_work_sync(w));
        gate.Set();
        flush_work(blocker);
        Assert.Equal(0, runs);
        Assert.False(cancel_work_sync(w));
    }

    [Fact]
    public void Work_that_leaks_preemption_is_reported_and_the_worker_goes_on()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var leaky = new work_struct();
        INIT_WORK(leaky, _ => preempt_disable());
        schedule_work_on(0, leaky);
        flush_work(leaky);
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.StartsWith("BUG: workqueue leaked atomic, lock or RCU: kworker/0:0", report.Title);
        Assert.Contains("preempt=0x00000001", report.Text);
        bool clean = false;
        var next = new work_struct();
        INIT_WORK(next, _ => clean = preemptible());
        schedule_work_on(0, next);
        flush_work(next);
        Assert.True(clean);
        Assert.All(m.Cpus, cpu => Assert.Null(cpu.Owner));
    }

    [Fact]
    public void A_bug_a_work_item_hits_in_throw_mode_is_rethrown_by_flush_work()
    {
        using Machine m = Ctx.Boot();
        var w = new work_struct();
        INIT_WORK(w, _ =>
        {
            preempt_disable();
            msleep(1);
        });
        schedule_work(w);
        Assert.Equal(BugKind.SleepInAtomic, Assert.Throws<KernelBugException>(() => flush_work(w)).Kind);
    }

    [Fact]
    public void Smp_processor_id_is_fine_in_a_bound_kworker()
    {
        using Machine m = Ctx.Boot();
        int cpu = -1;
        var w = new work_struct();
        INIT_WORK(w, _ => cpu = DebugPreempt.CheckPreemptDisabled("smp_processor_id"));
        schedule_work_on(1, w);
        flush_work(w);
        Assert.Equal(1, cpu);
    }

    [Fact]
    public void Worker_threads_stop_when_the_machine_is_disposed()
    {
        Machine m = Ctx.Boot();
        Thread? worker = null;
        var w = new work_struct();
        INIT_WORK(w, _ => worker = Thread.CurrentThread);
        schedule_work(w);
        flush_work(w);
        m.Dispose();
        Assert.NotNull(worker);
        Assert.True(worker!.Join(TimeSpan.FromSeconds(2)));
    }
}

public class DelayedWorkTests
{
    [Fact]
    public void Delayed_work_runs_when_its_jiffies_have_passed()
    {
        using Machine m = Ctx.Boot();
        int runs = 0;
        var dwork = new delayed_work();
        INIT_DELAYED_WORK(dwork, w =>
        {
            Assert.Same(dwork, to_delayed_work(w));
            Interlocked.Increment(ref runs);
        });
        Assert.True(schedule_delayed_work(dwork, 10));
        Assert.False(schedule_delayed_work(dwork, 10));
        m.AdvanceJiffies(9);
        flush_scheduled_work();
        Assert.Equal(0, runs);
        m.AdvanceJiffies(1);
        flush_work(dwork.work);
        Assert.Equal(1, runs);
    }

    [Fact]
    public void Cancelled_delayed_work_never_runs_and_flush_runs_it_now()
    {
        using Machine m = Ctx.Boot();
        int runs = 0;
        var dwork = new delayed_work();
        INIT_DELAYED_WORK(dwork, _ => Interlocked.Increment(ref runs));
        schedule_delayed_work(dwork, 5);
        Assert.True(cancel_delayed_work_sync(dwork));
        m.AdvanceJiffies(10);
        flush_scheduled_work();
        Assert.Equal(0, runs);
        schedule_delayed_work(dwork, 1000);
        flush_delayed_work(dwork);
        Assert.Equal(1, runs);
        Assert.False(cancel_delayed_work(dwork));
    }
}
