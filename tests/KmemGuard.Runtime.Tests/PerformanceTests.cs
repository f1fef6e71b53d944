using System;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

/// <summary>The options and fast paths the performance work added (no timing here: the figures are the benchmarks').</summary>
public class PerformanceTests
{
    private static Machine Boot(int preemptEvery, Checks checks = Checks.All) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 4, Checks = checks, PreemptEvery = preemptEvery });

    [Fact]
    public void PreemptEvery_defaults_to_16_and_must_not_be_negative()
    {
        Assert.Equal(16, new MachineOptions().PreemptEvery);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, PreemptEvery = -1 }));
        Assert.Equal("PreemptEvery", e.ParamName);
    }

    [Fact]
    public void PreemptEvery_0_never_forces_a_preemption_at_might_sleep()
    {
        using Machine m = Boot(0);
        Assert.Equal(0, m.Scheduler.PreemptEvery);
        int cpu = m.CurrentTask.CpuId;
        for (int i = 0; i < 256; i++)
        {
            might_sleep();
            Assert.Equal(0, cond_resched());
            kfree(kmalloc(64, GFP_KERNEL));
        }
        Assert.Equal(cpu, m.CurrentTask.CpuId);
    }

    [Fact]
    public void PreemptEvery_1_preempts_at_every_might_sleep()
    {
        using Machine m = Boot(1);
        Assert.Equal(1, m.Scheduler.PreemptEvery);
        for (int i = 0; i < 16; i++) Assert.Equal(1, cond_resched());
    }

    [Fact]
    public void A_slab_allocation_in_a_hard_irq_handler_uses_the_cpu_the_irq_runs_on()
    {
        using Machine m = Boot(0, Checks.None);
        kmem_cache_t cache = kmem_cache_create("irq_objs", 64, 0, 0, null)!;
        // Process context first, so that anything the allocator caches about this thread is its task.
        kmem_cache_free(cache, kmem_cache_alloc(cache, GFP_KERNEL));
        int taskCpu = m.CurrentTask.CpuId;
        int irqCpu = (taskCpu + 1) % 4;
        int before = cache.CpuCaches[irqCpu].Count;
        int seenCpu = -1;
        Assert.Equal(0, request_irq(7, (irq, dev) =>
        {
            KPtr p = kmem_cache_alloc(cache, GFP_ATOMIC);
            seenCpu = m.CurrentTask.CpuId;
            kmem_cache_free(cache, p);
            return IRQ_HANDLED;
        }, 0, "irqdev", null));
        m.RaiseIrq(7, irqCpu);
        Assert.Equal(irqCpu, seenCpu);
        // The handler allocated through the array of the CPU the irq ran on (refilled from the
        // node, then its object pushed back), not through the interrupted task's CPU.
        Assert.True(cache.CpuCaches[irqCpu].Count > before, $"cpu {irqCpu}'s array holds {cache.CpuCaches[irqCpu].Count} objects");
        Assert.Equal(taskCpu, m.CurrentTask.CpuId);
        free_irq(7, null);
        Assert.Equal(0, kmem_cache_destroy(cache));
    }
}
