using System;
using System.Diagnostics;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class LockingTests
{
    [Fact]
    public void Spinlock_excludes_four_threads_and_the_counter_is_exact()
    {
        using Machine m = Ctx.Boot(cpus: 4);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        long counter = 0;
        int inside = 0, overlaps = 0;
        var threads = new Thread[4];
        for (int t = 0; t < threads.Length; t++)
        {
            threads[t] = Ctx.Start(m, () =>
            {
                for (int i = 0; i < 5000; i++)
                {
                    spin_lock(lk);
                    if (Interlocked.Increment(ref inside) != 1) Interlocked.Increment(ref overlaps);
                    long v = counter;
                    Thread.SpinWait(5);
                    counter = v + 1;
                    Interlocked.Decrement(ref inside);
                    spin_unlock(lk);
                }
            }, $"locker-{t}");
        }
        foreach (Thread thread in threads) Assert.True(thread.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(20000, counter);
        Assert.Equal(0, overlaps);
        Assert.False(spin_is_locked(lk));
    }

    [Fact]
    public void Spin_lock_disables_preemption_and_records_its_holder()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        spin_lock_init(lk);
        spin_lock(lk);
        Assert.True(in_atomic());
        Assert.Same(m.CurrentTask, lk.Owner);
        Assert.Equal("&lk", lk.Name);
        Assert.Equal(nameof(Spin_lock_disables_preemption_and_records_its_holder), lk.TakenAt.Member);
        spin_unlock(lk);
        Assert.True(preemptible());
        Assert.Null(lk.Owner);
    }

    [Fact]
    public void Spin_trylock_fails_while_another_task_holds_the_lock()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        spin_lock_init(lk);
        bool otherGot = true;
        spin_lock(lk);
        Ctx.OnThread(m, () => otherGot = spin_trylock(lk));
        Assert.False(otherGot);
        spin_unlock(lk);
        Ctx.OnThread(m, () =>
        {
            otherGot = spin_trylock(lk);
            Assert.True(in_atomic());
            spin_unlock(lk);
            Assert.False(in_atomic());
        });
        Assert.True(otherGot);
        Assert.True(spin_trylock(lk));
        spin_unlock(lk);
        Assert.True(preemptible());
    }

    [Fact]
    public void Unlocking_a_free_spinlock_is_reported_and_nothing_changes()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        spin_unlock(lk);
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.StartsWith("BUG: spinlock already unlocked on CPU#", report.Title);
        Assert.Equal(0, preempt_count());
        Assert.True(spin_trylock(lk));
        spin_unlock(lk);
    }

    [Fact]
    public void Unlocking_a_spinlock_held_by_another_task_is_reported_and_the_lock_stays_held()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        spin_lock(lk);
        Ctx.OnThread(m, () => spin_unlock(lk));
        Assert.StartsWith("BUG: spinlock wrong owner", Ctx.Single(m, BugKind.UnbalancedPreempt).Title);
        Assert.True(spin_is_locked(lk));
        spin_unlock(lk);
        Assert.True(preemptible());
    }

    [Fact]
    public void Spinlock_recursion_is_reported_instead_of_hanging()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var lk = new spinlock_t();
        spin_lock_init(lk);
        spin_lock(lk);
        spin_lock(lk);
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.StartsWith("BUG: spinlock recursion on CPU#", report.Title);
        Assert.Contains(".magic: dead4ead", report.Text);
        spin_unlock(lk);
        Assert.True(spin_is_locked(lk));
        spin_unlock(lk);
        Assert.False(spin_is_locked(lk));
        Assert.True(preemptible());
    }

    [Fact]
    public void Spinlock_recursion_throws_in_throw_mode_without_changing_the_count()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        spin_lock_init(lk);
        spin_lock(lk);
        Assert.Equal(BugKind.UnbalancedPreempt, Assert.Throws<KernelBugException>(() => spin_lock(lk)).Kind);
        Assert.Equal(2, preempt_count()); // the kernel's spin_lock disabled preemption before it found the bug
        preempt_enable();
        spin_unlock(lk);
        Assert.True(preemptible());
    }

    [Fact]
    public void Irqsave_saves_and_restores_the_interrupt_state()
    {
        using Machine m = Ctx.Boot();
        var a = new spinlock_t();
        var b = new spinlock_t();
        spin_lock_irqsave(a, out ulong outer);
        Assert.True(irqs_disabled());
        Assert.False(irqs_disabled_flags(outer));
        spin_lock_irqsave(b, out ulong inner);
        Assert.True(irqs_disabled_flags(inner));
        spin_unlock_irqrestore(b, inner);
        Assert.True(irqs_disabled());
        spin_unlock_irqrestore(a, outer);
        Assert.False(irqs_disabled());
        spin_lock_irq(a);
        Assert.True(irqs_disabled() && in_atomic());
        spin_unlock_irq(a);
        Assert.True(preemptible());
    }

    [Fact]
    public void Spin_lock_bh_disables_bottom_halves()
    {
        using Machine m = Ctx.Boot();
        var lk = new spinlock_t();
        spin_lock_bh(lk);
        Assert.True(in_softirq() && in_atomic() && !in_serving_softirq());
        Assert.Equal(KTask.SoftirqDisableOffset + 1, preempt_count());
        spin_unlock_bh(lk);
        Assert.Equal(0, preempt_count());
    }

    [Fact]
    public void Mutex_excludes_and_the_waiter_sleeps_preemptibly()
    {
        using Machine m = Ctx.Boot(cpus: 1);
        var mx = new mutex();
        mutex_init(mx);
        mutex_lock(mx);
        Assert.True(preemptible());
        Assert.True(mutex_is_locked(mx));
        long waitedMs = -1;
        bool otherWasPreemptible = false;
        Thread other = Ctx.Start(m, () =>
        {
            var clock = Stopwatch.StartNew();
            mutex_lock(mx);
            waitedMs = clock.ElapsedMilliseconds;
            otherWasPreemptible = preemptible();
            mutex_unlock(mx);
        });
        Thread.Sleep(100);
        // The waiter blocks without holding the (only) CPU: this task can still disable preemption.
        preempt_disable();
        preempt_enable();
        Assert.Equal(-1, Volatile.Read(ref waitedMs));
        mutex_unlock(mx);
        Assert.True(other.Join(TimeSpan.FromSeconds(5)));
        Assert.True(waitedMs >= 80, $"waited {waitedMs} ms");
        Assert.True(otherWasPreemptible);
        Assert.False(mutex_is_locked(mx));
    }

    [Fact]
    public void Mutex_trylock_fails_while_held()
    {
        using Machine m = Ctx.Boot();
        var mx = new mutex();
        mutex_init(mx);
        Assert.True(mutex_trylock(mx));
        bool other = true;
        Ctx.OnThread(m, () => other = mutex_trylock(mx));
        Assert.False(other);
        mutex_unlock(mx);
        Ctx.OnThread(m, () =>
        {
            other = mutex_trylock(mx);
            mutex_unlock(mx);
        });
        Assert.True(other);
    }

    [Fact]
    public void Mutex_unlock_by_a_non_owner_is_reported_and_the_mutex_stays_held()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var mx = new mutex();
        mutex_init(mx);
        mutex_lock(mx);
        Ctx.OnThread(m, () => mutex_unlock(mx), "intruder");
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.StartsWith("WARNING: bad unlock balance detected!", report.Title);
        Assert.Contains("intruder/", report.Text);
        Assert.Contains("but the lock is held by", report.Text);
        Assert.True(mutex_is_locked(mx));
        mutex_unlock(mx);
        Assert.False(mutex_is_locked(mx));
    }

    [Fact]
    public void Recursive_mutex_lock_is_reported_as_a_deadlock_instead_of_hanging()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var mx = new mutex();
        mutex_init(mx);
        mutex_lock(mx);
        mutex_lock(mx);
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.StartsWith("WARNING: possible recursive locking detected", report.Title);
        Assert.Contains("(&mx){+.+.}-{3:3}", report.Text);
        Assert.Contains("*** DEADLOCK ***", report.Text);
        mutex_unlock(mx);
        Assert.True(mutex_is_locked(mx));
        mutex_unlock(mx);
        Assert.False(mutex_is_locked(mx));
    }

    [Fact]
    public void Rcu_read_lock_is_atomic_and_an_unmatched_unlock_is_reported()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        rcu_read_lock();
        Assert.True(in_atomic() && rcu_read_lock_held());
        rcu_read_unlock();
        Assert.True(preemptible());
        Assert.Empty(m.Reports);
        rcu_read_unlock();
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.Contains("is trying to release lock (rcu_read_lock)", report.Text);
        Assert.Contains("but there are no more locks to release!", report.Text);
        Assert.Equal(0, preempt_count());
    }
}
