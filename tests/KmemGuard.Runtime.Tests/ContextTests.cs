using System;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

/// <summary>Small machines and helpers for the execution-context tests.</summary>
internal static class Ctx
{
    public static Machine Boot(int cpus = 2, BugAction onBug = BugAction.Throw, Checks checks = Checks.All) =>
        Machine.Boot(new MachineOptions { Cpus = cpus, MemoryBytes = 32L << 20, OnBug = onBug, Checks = checks });

    /// <summary>A page of kernel memory (the buddy allocator is all this branch has).</summary>
    public static KPtr Page(Machine m) => new(PageAllocator.PageVirt(m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!));

    /// <summary>Runs <paramref name="body"/> on a new thread of machine <paramref name="m"/> and waits for it.</summary>
    public static void OnThread(Machine m, Action body, string name = "other")
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                m.MakeCurrent();
                body();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { Name = name };
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(10)), "the thread did not finish");
        if (failure != null) throw new Exception("thread failed", failure);
    }

    public static Thread Start(Machine m, Action body, string name = "other")
    {
        var thread = new Thread(() =>
        {
            m.MakeCurrent();
            body();
        }) { Name = name, IsBackground = true };
        thread.Start();
        return thread;
    }

    public static KernelBugReport Single(Machine m, BugKind kind)
    {
        KernelBugReport report = Assert.Single(m.Reports);
        Assert.Equal(kind, report.Kind);
        return report;
    }
}

public class ContextTests
{
    [Fact]
    public void The_contract_context_calls_run_clean()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        spinlock_t lk = new spinlock_t();
        spin_lock_init(lk);
        spin_lock(lk); spin_unlock(lk);
        spin_lock_irqsave(lk, out ulong flags);
        spin_unlock_irqrestore(lk, flags);
        spin_lock_irq(lk); spin_unlock_irq(lk);
        spin_lock_bh(lk); spin_unlock_bh(lk);
        if (spin_trylock(lk)) spin_unlock(lk);
        mutex mx = new mutex();
        mutex_init(mx);
        mutex_lock(mx); mutex_unlock(mx);
        if (mutex_trylock(mx)) mutex_unlock(mx);
        preempt_disable(); preempt_enable();
        local_irq_disable(); local_irq_enable();
        local_irq_save(out ulong f2); local_irq_restore(f2);
        local_bh_disable(); local_bh_enable();
        rcu_read_lock(); rcu_read_unlock();
        Assert.False(in_atomic() || in_interrupt() || irqs_disabled());
        might_sleep(); msleep(1); usleep_range(10, 20); udelay(5); mdelay(1); schedule(); cond_resched();
        bool ready = false;
        wait_queue_head_t wq = new wait_queue_head_t();
        init_waitqueue_head(wq);
        ready = true;
        wake_up(wq);
        wait_event(wq, () => ready);
        byte[] user = new byte[16];
        KPtr buf = Ctx.Page(m);
        Assert.Equal(0UL, copy_from_user(buf, user, 16) + copy_to_user(user, buf, 16));
        int hits = 0;
        Assert.Equal(0, request_irq(17, (irq, dev) => { hits++; return IRQ_HANDLED; }, 0, "probe", null));
        m.RaiseIrq(17);
        disable_irq(17); enable_irq(17); synchronize_irq(17);
        free_irq(17, null);
        timer_list t = new timer_list();
        int fired = 0;
        timer_setup(t, tl => fired++, 0);
        mod_timer(t, jiffies + 10);
        m.AdvanceJiffies(10);
        del_timer(t); del_timer_sync(t);
        tasklet_struct ts = new tasklet_struct();
        tasklet_init(ts, data => { }, 0);
        tasklet_schedule(ts);
        tasklet_kill(ts);
        work_struct w = new work_struct();
        INIT_WORK(w, work => msleep(1));
        schedule_work(w);
        flush_work(w);
        cancel_work_sync(w);
        Assert.Equal(1, hits);
        Assert.Equal(1, fired);
        Assert.Empty(m.Reports);
        Assert.True(preemptible());
    }

    [Fact]
    public void Each_thread_is_a_task_named_after_its_thread()
    {
        using Machine m = Ctx.Boot();
        KTask mine = m.CurrentTask;
        KTask? other = null;
        Ctx.OnThread(m, () => other = m.CurrentTask, "probe-thread");
        Assert.NotNull(other);
        Assert.NotEqual(mine.Pid, other!.Pid);
        Assert.Equal("probe-thread", other.Comm);
        Assert.Same(mine, m.CurrentTask);
    }

    [Fact]
    public void Preempt_disable_nests_and_owns_the_cpu_until_the_last_enable()
    {
        using Machine m = Ctx.Boot();
        KTask task = m.CurrentTask;
        preempt_disable();
        preempt_disable();
        Assert.True(in_atomic());
        Assert.False(preemptible());
        Assert.Equal(2, preempt_count());
        Assert.Same(task, m.Cpus[task.CpuId].Owner);
        preempt_enable();
        Assert.Same(task, m.Cpus[task.CpuId].Owner);
        preempt_enable();
        Assert.True(preemptible());
        Assert.All(m.Cpus, cpu => Assert.Null(cpu.Owner));
    }

    [Fact]
    public void Two_tasks_are_never_both_non_preemptible_on_one_cpu()
    {
        using Machine m = Ctx.Boot(cpus: 1);
        preempt_disable();
        bool entered = false;
        Thread other = Ctx.Start(m, () =>
        {
            preempt_disable();
            Volatile.Write(ref entered, true);
            preempt_enable();
        });
        Thread.Sleep(50);
        Assert.False(Volatile.Read(ref entered));
        preempt_enable();
        Assert.True(other.Join(TimeSpan.FromSeconds(5)));
        Assert.True(entered);
    }

    [Fact]
    public void Preemptible_tasks_migrate_at_preemption_points()
    {
        using Machine m = Ctx.Boot(cpus: 4);
        m.Scheduler.PreemptEvery = 1;
        KTask task = m.CurrentTask;
        var seen = new bool[4];
        for (int i = 0; i < 100; i++)
        {
            cond_resched();
            seen[task.CpuId] = true;
        }
        Assert.True(Array.TrueForAll(seen, s => s), "a preemptible task should visit every CPU");
        preempt_disable();
        int pinned = task.CpuId;
        for (int i = 0; i < 50; i++) udelay(0);
        Assert.Equal(pinned, task.CpuId);
        preempt_enable();
    }

    private static long CountPerCpu(bool pinned, int iterations)
    {
        using Machine m = Ctx.Boot(cpus: 1, checks: Checks.All & ~Checks.DebugPreempt);
        m.Scheduler.PreemptEvery = 1;
        KPtr counters = Ctx.Page(m);
        using var together = new Barrier(2);
        void Bump()
        {
            together.SignalAndWait(TimeSpan.FromSeconds(5));
            for (int i = 0; i < iterations; i++)
            {
                int cpu = pinned ? PreemptDisableInternal(default).CpuId : DebugPreempt.CheckPreemptDisabled("smp_processor_id");
                KPtr slot = counters + cpu * sizeof(long);
                long value = slot.Read<long>(0);
                udelay(1);
                slot.Write(0, value + 1);
                if (pinned) PreemptEnableInternal(default);
            }
        }
        Thread a = Ctx.Start(m, Bump, "bump-a");
        Thread b = Ctx.Start(m, Bump, "bump-b");
        Assert.True(a.Join(TimeSpan.FromSeconds(10)) && b.Join(TimeSpan.FromSeconds(10)));
        return counters.Read<long>(0);
    }

    [Fact]
    public void Two_tasks_one_cpu_one_per_cpu_counter_correct_under_get_cpu_and_wrong_without()
    {
        Assert.Equal(2 * 300, CountPerCpu(pinned: true, 300));
        // The loss needs the two host threads to overlap, which a loaded host may not grant in one
        // short run: three runs without a single lost update would mean the preemption is not real.
        bool lost = false;
        for (int attempt = 0; attempt < 3 && !lost; attempt++) lost = CountPerCpu(pinned: false, 2000) < 2 * 2000;
        Assert.True(lost, "a preemptible read-modify-write of per-CPU data must lose updates");
    }

    [Fact]
    public void Context_queries_follow_the_context()
    {
        using Machine m = Ctx.Boot();
        Assert.True(in_task());
        local_bh_disable();
        Assert.True(in_softirq() && in_interrupt() && !in_serving_softirq() && in_task());
        local_bh_enable();
        local_irq_disable();
        Assert.True(irqs_disabled() && !in_atomic() && !preemptible());
        local_irq_enable();
        Assert.True(preemptible());
    }

    [Fact]
    public void Shutdown_actions_run_in_reverse_order_when_the_machine_is_disposed()
    {
        var order = new System.Collections.Generic.List<int>();
        Machine m = Ctx.Boot();
        m.OnShutdown(() => order.Add(1));
        m.OnShutdown(() => order.Add(2));
        m.Dispose();
        Assert.Equal(new[] { 2, 1 }, order);
    }

    [Fact]
    public void Early_boot_is_quiet_about_sleeping_until_the_scheduler_runs()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, EarlyBoot = true });
        preempt_disable();
        might_sleep();
        preempt_enable();
        m.FinishBoot();
        preempt_disable();
        Assert.Equal(BugKind.SleepInAtomic, Assert.Throws<KernelBugException>(() => might_sleep()).Kind);
        preempt_enable();
    }
}
