using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class DebugPreemptTests
{
    [Fact]
    public void Smp_processor_id_while_preemptible_is_reported()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        int cpu = DebugPreempt.CheckPreemptDisabled("smp_processor_id", new CallSite("driver_poll", "drv.cs", 12));
        KTask task = m.CurrentTask;
        KernelBugReport report = Ctx.Single(m, BugKind.PreemptibleCpuAccess);
        Assert.Equal($"BUG: using smp_processor_id() in preemptible [00000000] code: {task.Comm}/{task.Pid}", report.Title);
        Assert.Contains("caller is driver_poll (drv.cs:12)\n", report.Text);
        Assert.Contains("Call Trace:", report.Text);
        Assert.Equal(task.CpuId, cpu);
    }

    [Fact]
    public void This_cpu_operations_name_themselves()
    {
        using Machine m = Ctx.Boot();
        var e = Assert.Throws<KernelBugException>(() => DebugPreempt.CheckPreemptDisabled("__this_cpu_read"));
        Assert.StartsWith("BUG: using __this_cpu_read() in preemptible [00000000] code:", e.Report);
    }

    [Fact]
    public void Non_preemptible_contexts_are_silent()
    {
        using Machine m = Ctx.Boot();
        preempt_disable();
        DebugPreempt.CheckPreemptDisabled("smp_processor_id");
        preempt_enable();
        var lk = new spinlock_t();
        spin_lock(lk);
        DebugPreempt.CheckPreemptDisabled("smp_processor_id");
        spin_unlock(lk);
        local_irq_disable();
        DebugPreempt.CheckPreemptDisabled("smp_processor_id");
        local_irq_enable();
        rcu_read_lock();
        DebugPreempt.CheckPreemptDisabled("smp_processor_id");
        rcu_read_unlock();
        request_irq(3, (irq, dev) => { DebugPreempt.CheckPreemptDisabled("smp_processor_id"); return IRQ_HANDLED; }, 0, "d", null);
        m.RaiseIrq(3);
    }

    [Fact]
    public void An_unmatched_preempt_enable_is_reported_and_the_count_stays_at_zero()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        preempt_enable();
        KernelBugReport report = Ctx.Single(m, BugKind.UnbalancedPreempt);
        Assert.Equal("DEBUG_LOCKS_WARN_ON(val > preempt_count())", report.Title);
        Assert.Contains("preempt_enable() without a matching disable", report.Text);
        Assert.Equal(0, preempt_count());
        Assert.True(preemptible());
        preempt_disable();
        Assert.Equal(1, preempt_count());
        preempt_enable();
    }

    [Fact]
    public void An_unmatched_put_cpu_style_enable_is_reported()
    {
        using Machine m = Ctx.Boot();
        PreemptDisableInternal(default);
        PreemptEnableInternal(default);
        Assert.Equal(BugKind.UnbalancedPreempt, Assert.Throws<KernelBugException>(() => PreemptEnableInternal(default)).Kind);
        Assert.Equal(0, preempt_count());
    }

    [Fact]
    public void An_unmatched_local_bh_enable_is_reported()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        preempt_disable();
        local_bh_enable();
        Assert.Contains("local_bh_enable() without a matching disable", Ctx.Single(m, BugKind.UnbalancedPreempt).Text);
        Assert.Equal(1, preempt_count());
        preempt_enable();
    }

    [Fact]
    public void Switched_off_it_is_silent_but_still_never_goes_negative()
    {
        using Machine m = Ctx.Boot(checks: Checks.All & ~Checks.DebugPreempt);
        DebugPreempt.CheckPreemptDisabled("smp_processor_id");
        preempt_enable();
        Assert.Equal(0, preempt_count());
        Assert.Empty(m.Reports);
    }
}
