using System;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

/// <summary>vmalloc, ioremap and per-CPU data against the execution context: might_sleep, DEBUG_PREEMPT, interrupts, /proc.</summary>
public class VmallocContextTests
{
    private static readonly PerCpu<long> s_hits = DEFINE_PER_CPU<long>();

    private static Machine Boot(BugAction onBug = BugAction.Throw) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, OnBug = onBug });

    [Fact]
    public void vmalloc_ioremap_and_alloc_percpu_may_sleep_so_they_are_bugs_under_get_cpu()
    {
        using Machine m = Boot(BugAction.Report);
        m.MapDevice(0xfe000000, 0x1000, new NullDevice());
        get_cpu();
        KPtr v = vmalloc(100);
        IoMem regs = ioremap(0xfe000000, 0x1000);
        PerCpu<int>? pc = alloc_percpu<int>();
        put_cpu();
        Assert.Equal(3, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.SleepInAtomic, r.Kind));
        Assert.StartsWith("BUG: sleeping function called from invalid context at VmallocContextTests.cs:", m.Reports[0].Text);
        Assert.Contains("Preemption disabled at:", m.Reports[0].Text);
        vfree(v);
        iounmap(regs);
        free_percpu(pc);
        Assert.Equal(3, m.Reports.Count);
    }

    [Fact]
    public void An_atomic_mask_to___vmalloc_and_free_percpu_under_get_cpu_are_silent()
    {
        using Machine m = Boot();
        PerCpu<int> pc = alloc_percpu<int>()!;
        get_cpu();
        KPtr v = __vmalloc(PAGE_SIZE, GFP_ATOMIC);
        free_percpu(pc);
        put_cpu();
        Assert.False(v.IsNull);
        vfree(v);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void vfree_in_process_context_may_sleep_even_for_NULL()
    {
        using Machine m = Boot(BugAction.Report);
        KPtr v = vmalloc(64);
        get_cpu();
        vfree(v);
        vfree(NULL);
        put_cpu();
        Assert.Equal(2, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.SleepInAtomic, r.Kind));
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
    }

    [Fact]
    public void vfree_from_an_interrupt_handler_is_allowed()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(3 * PAGE_SIZE);
        bool ran = false;
        Assert.Equal(0, request_irq(11, (irq, dev) =>
        {
            vfree(v);
            ran = true;
            return IRQ_HANDLED;
        }, 0, "vfree-test", null));
        m.RaiseIrq(11);
        free_irq(11, null);
        Assert.True(ran);
        Assert.Empty(m.Reports);
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
    }

    [Fact]
    public void smp_processor_id_this_cpu_ptr_and___this_cpu_ops_while_preemptible_are_reported()
    {
        using Machine m = Boot(BugAction.Report);
        _ = smp_processor_id();
        this_cpu_ptr(s_hits)++;
        __this_cpu_inc(s_hits);
        _ = __this_cpu_read(s_hits);
        Assert.Equal(4, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.PreemptibleCpuAccess, r.Kind));
        Assert.StartsWith("BUG: using smp_processor_id() in preemptible [00000000] code: ", m.Reports[0].Text);
        Assert.StartsWith("BUG: using smp_processor_id() in preemptible", m.Reports[1].Text);
        Assert.StartsWith("BUG: using __this_cpu_inc() in preemptible", m.Reports[2].Text);
        Assert.StartsWith("BUG: using __this_cpu_read() in preemptible", m.Reports[3].Text);
        Assert.Contains("caller is " + nameof(smp_processor_id_this_cpu_ptr_and___this_cpu_ops_while_preemptible_are_reported), m.Reports[3].Text);
    }

    [Fact]
    public void Per_cpu_with_an_explicit_CPU_this_cpu_ops_and_accesses_under_get_cpu_are_silent()
    {
        using Machine m = Boot();
        per_cpu(s_hits, 1) += 5;
        this_cpu_inc(s_hits);
        this_cpu_add(s_hits, 2L);
        int cpu = get_cpu();
        Assert.Equal(cpu, smp_processor_id());
        this_cpu_ptr(s_hits) += 10;
        __this_cpu_dec(s_hits);
        put_cpu();
        Assert.Empty(m.Reports);
        Assert.Equal(5 + 3 + 9, per_cpu(s_hits, 0) + per_cpu(s_hits, 1));
    }

    [Fact]
    public void ReadProc_serves_vmallocinfo_and_meminfo_counts_vmalloc_and_percpu_pages()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(4 * PAGE_SIZE);
        PerCpu<long> pc = alloc_percpu<long>()!;
        Assert.Equal(m.RenderVmallocinfo(), m.ReadProc("/proc/vmallocinfo"));
        Assert.Contains($"0x{v.Address:x16}-0x{v.Address + 5 * PAGE_SIZE:x16}   20480 ", m.ReadProc("/proc/vmallocinfo"));
        string meminfo = m.ReadProc("/proc/meminfo");
        Assert.Contains("VmallocUsed:          16 kB\n", meminfo);
        Assert.Contains($"Percpu:         {m.PerCpuAreas.PopulatedPages * 4,8} kB\n", meminfo);
        vfree(v);
        Assert.Contains("VmallocUsed:           0 kB\n", m.ReadProc("/proc/meminfo"));
        free_percpu(pc);
    }

    private static readonly PerCpu<ulong> s_stash = DEFINE_PER_CPU<ulong>();

    private sealed class Holder
    {
        public KPtr Kept;
    }

    [Fact]
    public void kmemleak_reports_a_lost_vmalloc_area_and_not_one_that_is_still_referenced()
    {
        using Machine m = Boot();
        KPtr lost = vmalloc(100);
        var holder = new Holder { Kept = vmalloc(3 * PAGE_SIZE) };
        KPtr inner = vmalloc(50);
        holder.Kept.Write(2 * PAGE_SIZE + 8, inner.Address); // reachable only through simulated memory
        KPtr stashed = vmalloc(10);
        per_cpu(s_stash, 1) = stashed.Address;              // the per-CPU areas are roots
        KernelBugReport leak = Assert.Single(m.ScanLeaks(holder));
        Assert.Equal(BugKind.Leak, leak.Kind);
        Assert.StartsWith($"unreferenced object 0x{lost.Address:x16} (size 100):", leak.Text);
        vfree(lost);
        Assert.Empty(m.ScanLeaks(holder));
        vfree(inner);
        vfree(holder.Kept);
        vfree(stashed);
    }

    private sealed class NullDevice : IMmioDevice
    {
        public ulong Read(ulong offset, int size) => 0;
        public void Write(ulong offset, int size, ulong value) { }
    }
}
