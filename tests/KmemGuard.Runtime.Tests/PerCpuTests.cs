using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class PerCpuTests
{
    private struct Stats
    {
        public long Packets;
        public int Errors;
        public short Flags;
    }

    private static readonly PerCpu<long> s_counter = DEFINE_PER_CPU<long>();
    private static readonly PerCpu<Stats> s_stats = DEFINE_PER_CPU<Stats>();
    private static readonly PerCpu<int> s_perMachine = DEFINE_PER_CPU<int>();
    private static readonly PerCpu<long> s_racy = DEFINE_PER_CPU<long>();
    private static readonly PerCpu<long> s_spread = DEFINE_PER_CPU<long>();
    private static readonly PerCpu<byte> s_unused = DEFINE_PER_CPU<byte>();

    private static Machine Boot(int cpus = 4, BugAction onBug = BugAction.Throw) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = cpus, OnBug = onBug });

    [Fact]
    public void Each_CPU_has_its_own_copy_of_a_static_variable()
    {
        using Machine m = Boot();
        for (int cpu = 0; cpu < 4; cpu++) Assert.Equal(0, per_cpu(s_stats, cpu).Packets);
        for (int cpu = 0; cpu < 4; cpu++)
        {
            per_cpu(s_stats, cpu).Packets = 100 + cpu;
            per_cpu(s_stats, cpu).Errors += cpu;
            per_cpu(s_stats, cpu).Flags = (short)-cpu;
        }
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Assert.Equal(100 + cpu, per_cpu(s_stats, cpu).Packets);
            Assert.Equal(cpu, per_cpu(s_stats, cpu).Errors);
            Assert.Equal(-cpu, per_cpu(s_stats, cpu).Flags);
        }
        KPtr cpu2 = per_cpu_ptr((PerCpu)s_stats, 2);
        Assert.Equal(102, cpu2.Read<long>());
        Assert.Equal(AddressLayout.PercpuUnitSize, (ulong)(per_cpu_ptr((PerCpu)s_stats, 3) - cpu2));
    }

    [Fact]
    public void A_bad_cpu_number_is_an_argument_error()
    {
        using Machine m = Boot(cpus: 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => per_cpu(s_counter, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => per_cpu(s_counter, -1));
        PerCpu raw = __alloc_percpu(8, 8)!;
        Assert.Throws<ArgumentOutOfRangeException>(() => per_cpu_ptr(raw, 5));
        free_percpu(raw);
    }

    [Fact]
    public void Machines_do_not_share_a_static_variables_storage()
    {
        using Machine a = Boot();
        per_cpu(s_perMachine, 1) = 5;
        using (Machine b = Boot())
        {
            Assert.Equal(0, per_cpu(s_perMachine, 1));
            per_cpu(s_perMachine, 1) = 7;
            a.MakeCurrent();
            Assert.Equal(5, per_cpu(s_perMachine, 1));
            b.MakeCurrent();
            Assert.Equal(7, per_cpu(s_perMachine, 1));
        }
        a.MakeCurrent();
        Assert.Equal(5, per_cpu(s_perMachine, 1));
        Parallel.For(0, 4, i =>
        {
            using Machine m = Boot(cpus: 2);
            for (int n = 0; n < 200; n++)
            {
                per_cpu(s_perMachine, 0) += i + 1;
                per_cpu(s_perMachine, 1) += 1;
            }
            Assert.Equal(200 * (i + 1), per_cpu(s_perMachine, 0));
            Assert.Equal(200, per_cpu(s_perMachine, 1));
        });
    }

    [Fact]
    public void alloc_percpu_is_zeroed_in_every_unit_also_when_reused()
    {
        using Machine m = Boot();
        PerCpu<long> first = alloc_percpu<long>()!;
        for (int cpu = 0; cpu < 4; cpu++) per_cpu_ptr(first, cpu) = -1;
        free_percpu(first);
        PerCpu<long> second = alloc_percpu<long>()!;
        Assert.Equal(first.Offset, second.Offset);
        for (int cpu = 0; cpu < 4; cpu++) Assert.Equal(0, per_cpu_ptr(second, cpu));
        free_percpu(second);
    }

    [Fact]
    public void __alloc_percpu_honours_alignment_and_gives_separate_memory()
    {
        using Machine m = Boot();
        PerCpu small = __alloc_percpu(3, 1)!;
        PerCpu aligned = __alloc_percpu(100, 64)!;
        PerCpu page = __alloc_percpu(PAGE_SIZE, PAGE_SIZE)!;
        Assert.Equal(0UL, (ulong)per_cpu_ptr(aligned, 1) % 64);
        Assert.Equal(0UL, (ulong)per_cpu_ptr(page, 3) % PAGE_SIZE);
        for (int cpu = 0; cpu < 4; cpu++) memset(per_cpu_ptr(aligned, cpu), cpu + 1, 100);
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Assert.True(per_cpu_ptr(aligned, cpu).AsSpan(100).ToArray().All(b => b == cpu + 1));
            Assert.True(per_cpu_ptr(page, cpu).AsSpan(PAGE_SIZE).ToArray().All(b => b == 0));
            Assert.Equal(0, per_cpu_ptr(small, cpu)[2]);
        }
        free_percpu(small);
        free_percpu(aligned);
        free_percpu(page);
    }

    [Fact]
    public void Illegal_size_or_alignment_gives_NULL_with_the_kernel_warning()
    {
        using Machine m = Boot();
        Assert.Null(__alloc_percpu(0, 8));
        Assert.Null(__alloc_percpu(64 << 10, 8));
        Assert.Null(__alloc_percpu(16, 3));
        Assert.Null(__alloc_percpu(16, 2 * PAGE_SIZE));
        Assert.Null(__alloc_percpu(-1, 8));
        Assert.Equal(5, m.Log.Count);
        Assert.EndsWith("mm/percpu.c pcpu_alloc\nillegal size (0) or align (8) for percpu allocation", m.Log[0]);
    }

    [Fact]
    public void Per_cpu_pages_come_from_the_buddy_allocator_and_say_what_they_hold()
    {
        using Machine m = Boot();
        long before = m.PageAllocator.FreePages;
        PerCpu<long> v = alloc_percpu<long>()!;
        int populated = m.PerCpuAreas.PopulatedPages;
        Assert.True(populated >= 4 && populated % 4 == 0);
        Assert.Equal(before - populated, m.PageAllocator.FreePages);
        KPtr slot = per_cpu_ptr((PerCpu)v, 2);
        page frame = m.Memory.PerCpu.FrameAt(slot.Address)!;
        Assert.True(frame.Has(PageFlags.PerCpu));
        foreach (ulong address in new[] { slot.Address + 3, PageAllocator.PageVirt(frame) + (slot.Address & 0xfff) + 3 })
        {
            ObjectInfo info = m.Memory.Describe(address)!;
            Assert.Equal(MemoryFamily.PerCpu, info.Family);
            Assert.Equal(slot.Address, info.Start);
            Assert.Equal(8UL, info.RequestedSize);
            Assert.True(info.Allocated);
        }
        free_percpu(v);
        Assert.False(m.Memory.Describe(slot.Address)!.Allocated);
    }

    [Fact]
    public void Scan_areas_cover_every_live_chunk_and_static_variable_in_every_unit()
    {
        using Machine m = Boot(cpus: 2);
        per_cpu(s_counter, 0) = 1;
        PerCpu raw = __alloc_percpu(24, 8)!;
        PerCpu gone = __alloc_percpu(16, 8)!;
        free_percpu(gone);
        var areas = m.PerCpuAreas.ScanAreas();
        Assert.Equal(4, areas.Length);
        Assert.Contains((per_cpu_ptr((PerCpu)s_counter, 1).Address, 8UL), areas);
        Assert.Contains((per_cpu_ptr(raw, 0).Address, 24UL), areas);
        Assert.Contains((per_cpu_ptr(raw, 1).Address, 24UL), areas);
        free_percpu(raw);
    }

    [Fact]
    public void Double_free_percpu_is_reported_and_not_done()
    {
        using Machine m = Boot(onBug: BugAction.Report);
        PerCpu<int> v = alloc_percpu<int>()!;
        free_percpu(v);
        free_percpu(v);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.DoubleFree, r.Kind);
        Assert.Contains("which belongs to a per-CPU allocation", r.Text);
        Assert.Contains("Freed by task", r.Text);
        PerCpu<int> again = alloc_percpu<int>()!;
        PerCpu<int> other = alloc_percpu<int>()!;
        Assert.NotEqual(again.Offset, other.Offset);
        free_percpu(null);
        Assert.Single(m.Reports);
    }

    [Fact]
    public void free_percpu_of_a_static_or_foreign_variable_is_a_mismatched_free()
    {
        using Machine a = Boot();
        PerCpu<long> mine = alloc_percpu<long>()!;
        using Machine b = Boot(onBug: BugAction.Report);
        per_cpu(s_unused, 0) = 1;
        free_percpu(s_unused);
        free_percpu(mine);
        Assert.Equal(2, b.Reports.Count);
        Assert.All(b.Reports, r => Assert.Equal(BugKind.MismatchedFree, r.Kind));
        Assert.Contains("DEFINE_PER_CPU", b.Reports[0].Text);
        Assert.Equal(1, per_cpu(s_unused, 0));
        Assert.Throws<InvalidOperationException>(() => per_cpu_ptr(mine, 0));
        a.MakeCurrent();
        per_cpu_ptr(mine, 0) = 3;
        free_percpu(mine);
    }

    [Fact]
    public void get_cpu_pins_the_task_until_put_cpu()
    {
        using Machine m = Boot();
        KTask task = m.CurrentTask;
        int cpu = get_cpu();
        Assert.Equal(task.CpuId, cpu);
        Assert.True(task.OwnsCpu);
        Assert.Same(task, m.Cpus[cpu].Owner);
        Assert.Equal(cpu, smp_processor_id());
        Assert.Equal(cpu, get_cpu());
        Assert.Equal(2, task.PreemptCount);
        put_cpu();
        Assert.True(task.OwnsCpu);
        put_cpu();
        Assert.False(task.OwnsCpu);
        Assert.Null(m.Cpus[cpu].Owner);
        Assert.Equal(0, task.PreemptCount);
        Assert.Equal(BugKind.UnbalancedPreempt, Assert.Throws<KernelBugException>(() => put_cpu()).Kind);
        Assert.Equal(0, task.PreemptCount);
    }

    [Fact]
    public void get_cpu_var_and_this_cpu_ops_use_the_current_CPUs_copy()
    {
        using Machine m = Boot();
        ref long mine = ref get_cpu_var(s_counter);
        int cpu = smp_processor_id();
        mine = 40;
        this_cpu_ptr(s_counter) += 1;
        __this_cpu_inc(s_counter);
        __this_cpu_add(s_counter, 10L);
        __this_cpu_dec(s_counter);
        __this_cpu_sub(s_counter, 5L);
        Assert.Equal(46, __this_cpu_read(s_counter));
        __this_cpu_write(s_counter, 50L);
        put_cpu_var(s_counter);
        Assert.Equal(50, per_cpu(s_counter, cpu));
        Assert.Equal(0, per_cpu(s_counter, (cpu + 1) % 4));
        this_cpu_inc(s_counter);
        this_cpu_add(s_counter, 9L);
        this_cpu_sub(s_counter, 4L);
        this_cpu_dec(s_counter);
        Assert.Equal(0, m.CurrentTask.PreemptCount);
        long total = Enumerable.Range(0, 4).Sum(c => per_cpu(s_counter, c));
        Assert.Equal(55, total);
        this_cpu_write(s_counter, 0L);
        Assert.Equal(0, this_cpu_read(s_counter));
    }

    private static readonly PerCpu<long> s_unpinned = DEFINE_PER_CPU<long>();

    /// <summary>Two tasks on a one-CPU machine that preempts at every preemption point, each bumping one per-CPU counter.</summary>
    private static long CountOnOneCpu(PerCpu<long> counter, bool pinned, int rounds)
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 1, Checks = Checks.All & ~Checks.DebugPreempt });
        m.Scheduler.PreemptEvery = 1;
        using var together = new Barrier(2);
        void Bump()
        {
            together.SignalAndWait(TimeSpan.FromSeconds(5));
            for (int i = 0; i < rounds; i++)
            {
                ref long c = ref pinned ? ref get_cpu_var(counter) : ref per_cpu(counter, raw_smp_processor_id());
                long seen = c;
                udelay(1); // a preemption point: only a preemptible task is switched out here
                c = seen + 1;
                if (pinned) put_cpu_var(counter);
            }
        }
        Thread a = Ctx.Start(m, Bump, "bump-a"), b = Ctx.Start(m, Bump, "bump-b");
        Assert.True(a.Join(TimeSpan.FromSeconds(10)) && b.Join(TimeSpan.FromSeconds(10)));
        return per_cpu(counter, 0);
    }

    [Fact]
    public void Two_tasks_on_one_CPU_keep_a_per_cpu_counter_exact_under_get_cpu_var()
    {
        Assert.Equal(2 * 300, CountOnOneCpu(s_racy, pinned: true, 300));
    }

    [Fact]
    public void Without_get_cpu_var_the_same_counter_loses_updates()
    {
        // The loss needs the two host threads to overlap, which a loaded host may not grant in one
        // short run: three runs without a single lost update would mean the preemption is not real.
        bool lost = false;
        for (int attempt = 0; attempt < 3 && !lost; attempt++) lost = CountOnOneCpu(s_unpinned, pinned: false, 2000) < 2 * 2000;
        Assert.True(lost, "a preemptible read-modify-write of per-CPU data must lose updates");
    }

    [Fact]
    public void Tasks_on_four_CPUs_count_on_their_own_CPU_and_the_sum_is_exact()
    {
        using Machine m = Boot();
        const int Rounds = 5000;
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (int i = 0; i < Rounds; i++)
            {
                int cpu = get_cpu();
                per_cpu(s_spread, cpu)++;
                put_cpu();
            }
        })).ToArray();
        foreach (Thread t in threads) t.Start();
        foreach (Thread t in threads) t.Join();
        Assert.Equal(4L * Rounds, Enumerable.Range(0, 4).Sum(c => per_cpu(s_spread, c)));
    }

    [Fact]
    public void Per_cpu_data_is_not_available_in_early_boot()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, EarlyBoot = true });
        Assert.Throws<InvalidOperationException>(() => per_cpu(s_counter, 0));
        Assert.Throws<InvalidOperationException>(() => alloc_percpu<int>());
    }
}
