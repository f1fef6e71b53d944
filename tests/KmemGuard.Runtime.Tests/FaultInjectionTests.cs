using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

// The allocators call Machine.ShouldFailSlab / ShouldFailPage first thing; these tests call them
// as the allocators do and check the decisions against Documentation/fault-injection.
public class FaultInjectionTests
{
    private static Machine Boot() => Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2 });

    private static bool[] Slab(Machine m, int calls, gfp_t gfp = GFP_ATOMIC, ulong size = 64) =>
        Enumerable.Range(0, calls).Select(_ => m.ShouldFailSlab(gfp, size)).ToArray();

    private static int[] Failed(bool[] decisions) => Enumerable.Range(0, decisions.Length).Where(i => decisions[i]).ToArray();

    [Fact]
    public void Defaults_are_the_kernels_and_inject_nothing()
    {
        using Machine m = Boot();
        Assert.Equal(0, m.FailSlab.Probability);
        Assert.Equal(1UL, m.FailSlab.Interval);
        Assert.Equal(1, m.FailSlab.Times);
        Assert.Equal(0, m.FailSlab.Space);
        Assert.Equal(2, m.FailSlab.Verbose);
        Assert.True(m.FailSlab.IgnoreGfpWait);
        Assert.True(m.FailPageAlloc.IgnoreGfpWait);
        Assert.True(m.FailPageAlloc.IgnoreGfpHighmem);
        Assert.Equal(1, m.FailPageAlloc.MinOrder);
        Assert.Equal("failslab", m.FailSlab.Name);
        Assert.Equal("fail_page_alloc", m.FailPageAlloc.Name);

        Assert.DoesNotContain(true, Slab(m, 1000));
        Assert.False(m.ShouldFailPage(GFP_ATOMIC, 3));
        Assert.Equal(0, m.FailSlab.Failures);
    }

    [Fact]
    public void Probability_100_with_times_1_fails_exactly_once()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;

        Assert.Equal(new[] { 0 }, Failed(Slab(m, 10)));
        Assert.Equal(0, m.FailSlab.Times);
        Assert.Equal(1, m.FailSlab.Failures);
    }

    [Fact]
    public void Times_minus_one_means_no_limit_and_counts_down_otherwise()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = -1;
        Assert.All(Slab(m, 50), Assert.True);
        Assert.Equal(-1, m.FailSlab.Times);

        m.FailSlab.Times = 3;
        Assert.Equal(new[] { 0, 1, 2 }, Failed(Slab(m, 6)));
        Assert.Equal(53, m.FailSlab.Failures);
    }

    [Fact]
    public void Interval_fails_every_nth_eligible_call()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = -1;
        m.FailSlab.Interval = 4;

        Assert.Equal(new[] { 3, 7, 11 }, Failed(Slab(m, 12)));
    }

    [Fact]
    public void Space_is_spent_before_failures_start()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = -1;
        m.FailSlab.Space = 200;

        // 200 > 64: spend (136 left); 136 > 64: spend (72); 72 > 64: spend (8); 8 > 64 is false: fail.
        Assert.Equal(new[] { 3, 4 }, Failed(Slab(m, 5, size: 64)));
        Assert.Equal(8, m.FailSlab.Space);
    }

    [Fact]
    public void The_same_seed_gives_the_same_failures_and_another_seed_others()
    {
        using Machine a = Boot();
        bool[] first = Sequence(a, 42);
        bool[] again = Sequence(a, 42);
        bool[] other = Sequence(a, 7);
        using Machine b = Boot();
        bool[] otherMachine = Sequence(b, 42);

        Assert.Equal(first, again);
        Assert.Equal(first, otherMachine);
        Assert.NotEqual(first, other);
        int failures = first.Count(f => f);
        Assert.InRange(failures, 100, 200); // 30 % of 500, give or take
    }

    private static bool[] Sequence(Machine m, ulong seed)
    {
        m.FailSlab.Probability = 30;
        m.FailSlab.Times = -1;
        m.FailSlab.Seed = seed;
        return Slab(m, 500);
    }

    [Fact]
    public void Ignore_gfp_wait_spares_allocations_that_may_sleep()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = -1;

        Assert.False(m.ShouldFailSlab(GFP_KERNEL, 64));
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
        Assert.True(m.ShouldFailSlab(GFP_NOWAIT, 64));

        m.FailSlab.IgnoreGfpWait = false;
        Assert.True(m.ShouldFailSlab(GFP_KERNEL, 64));
    }

    [Fact]
    public void GFP_NOFAIL_is_never_failed()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = -1;
        m.FailSlab.IgnoreGfpWait = false;
        m.FailPageAlloc.Probability = 100;
        m.FailPageAlloc.Times = -1;
        m.FailPageAlloc.IgnoreGfpWait = false;
        m.SetFailNth(1);

        Assert.False(m.ShouldFailSlab(GFP_KERNEL | __GFP_NOFAIL, 64));
        Assert.False(m.ShouldFailPage(GFP_KERNEL | __GFP_NOFAIL, 2));
        Assert.Equal(1, m.FailNth); // a __GFP_NOFAIL call does not reach the fail-nth count
    }

    [Fact]
    public void Page_faults_honour_min_order_and_ignore_gfp_highmem()
    {
        using Machine m = Boot();
        FaultAttr pages = m.FailPageAlloc;
        pages.Probability = 100;
        pages.Times = -1;

        Assert.False(m.ShouldFailPage(GFP_ATOMIC, 0)); // min-order 1
        Assert.True(m.ShouldFailPage(GFP_ATOMIC, 1));
        Assert.False(m.ShouldFailPage(GFP_ATOMIC | __GFP_HIGHMEM, 3));
        Assert.False(m.ShouldFailPage(GFP_KERNEL, 3));

        pages.MinOrder = 0;
        pages.IgnoreGfpHighmem = false;
        Assert.True(m.ShouldFailPage(GFP_ATOMIC, 0));
        Assert.True(m.ShouldFailPage(GFP_ATOMIC | __GFP_HIGHMEM, 3));
        Assert.False(m.ShouldFailSlab(GFP_ATOMIC, 64)); // failslab is its own point
    }

    [Fact]
    public void Page_space_is_counted_in_pages()
    {
        using Machine m = Boot();
        FaultAttr pages = m.FailPageAlloc;
        pages.Probability = 100;
        pages.Times = -1;
        pages.Space = 10;

        Assert.False(m.ShouldFailPage(GFP_ATOMIC, 3)); // 10 > 8: 2 left
        Assert.True(m.ShouldFailPage(GFP_ATOMIC, 1)); // 2 > 2 is false
        Assert.Equal(2, pages.Space);
    }

    [Fact]
    public void Fail_nth_fails_the_tasks_nth_call_even_with_probability_zero()
    {
        using Machine m = Boot();
        m.SetFailNth(3);
        Assert.Equal(3, m.FailNth);

        Assert.Equal(new[] { 2 }, Failed(Slab(m, 6)));
        Assert.Equal(0, m.FailNth);
        Assert.Equal(1, m.FailSlab.Failures);
    }

    [Fact]
    public void Fail_nth_counts_across_failslab_and_fail_page_alloc()
    {
        using Machine m = Boot();
        m.SetFailNth(2);

        Assert.False(m.ShouldFailPage(GFP_ATOMIC, 1));
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
        Assert.False(m.ShouldFailPage(GFP_ATOMIC, 1));
    }

    [Fact]
    public void Fail_nth_skips_calls_the_points_filter_out()
    {
        using Machine m = Boot();
        m.SetFailNth(1);

        Assert.False(m.ShouldFailSlab(GFP_KERNEL, 64)); // ignore-gfp-wait: never reaches should_fail
        Assert.False(m.ShouldFailPage(GFP_ATOMIC, 0)); // min-order
        Assert.Equal(1, m.FailNth);
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
    }

    [Fact]
    public void Fail_nth_belongs_to_the_task_that_set_it()
    {
        using Machine m = Boot();
        m.SetFailNth(1);
        bool otherFailed = true;
        var thread = new Thread(() =>
        {
            m.MakeCurrent();
            otherFailed = m.ShouldFailSlab(GFP_ATOMIC, 64);
        });
        thread.Start();
        thread.Join();

        Assert.False(otherFailed);
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
    }

    [Fact]
    public void Fail_nth_zero_cancels_and_negative_is_refused()
    {
        using Machine m = Boot();
        m.SetFailNth(2);
        m.SetFailNth(0);
        Assert.DoesNotContain(true, Slab(m, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.SetFailNth(-1));
    }

    [Fact]
    public void Fail_nth_is_not_spent_in_interrupt_context()
    {
        using Machine m = Boot();
        m.SetFailNth(1);
        KTask task = m.CurrentTask;
        task.PreemptCount += KTask.HardirqOffset;
        try
        {
            Assert.False(m.ShouldFailSlab(GFP_ATOMIC, 64));
        }
        finally
        {
            task.PreemptCount -= KTask.HardirqOffset;
        }
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
    }

    [Fact]
    public void Verbose_failures_print_the_kernels_message_with_a_stack_and_NOWARN_stays_quiet()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = 2;

        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC | __GFP_NOWARN, 64));

        string message = Assert.Single(m.FailSlab.Messages);
        Assert.StartsWith("FAULT_INJECTION: forcing a failure.\nname failslab, interval 1, probability 100, space 0, times 2\n", message);
        Assert.Contains("Call Trace:", message);
        Assert.Contains(nameof(Verbose_failures_print_the_kernels_message_with_a_stack_and_NOWARN_stays_quiet), message);
        Assert.Equal(2, m.FailSlab.Failures);

        m.FailSlab.Verbose = 1;
        m.FailSlab.Times = 1;
        Assert.True(m.ShouldFailSlab(GFP_ATOMIC, 64));
        Assert.DoesNotContain("Call Trace:", m.FailSlab.Messages[1]);
    }

    [Fact]
    public void Knobs_refuse_values_the_kernel_refuses()
    {
        using Machine m = Boot();
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailSlab.Probability = 101);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailSlab.Probability = -1);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailSlab.Times = -2);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailSlab.Space = -1);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailSlab.Verbose = 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.FailPageAlloc.MinOrder = -1);
    }

    [Fact]
    public void Machines_have_their_own_points()
    {
        using Machine a = Boot();
        using Machine b = Boot();
        a.FailSlab.Probability = 100;
        a.FailSlab.Times = -1;

        Assert.True(a.ShouldFailSlab(GFP_ATOMIC, 64));
        Assert.False(b.ShouldFailSlab(GFP_ATOMIC, 64));
    }

    [Fact]
    public void Times_is_exact_under_many_threads()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = 100;
        int failures = 0;

        Parallel.For(0, 4, _ =>
        {
            m.MakeCurrent();
            for (int i = 0; i < 1000; i++)
                if (m.ShouldFailSlab(GFP_ATOMIC, 64)) Interlocked.Increment(ref failures);
        });

        Assert.Equal(100, failures);
        Assert.Equal(100, m.FailSlab.Failures);
        Assert.Equal(0, m.FailSlab.Times);
    }
}

// Armed is the one-word gate every allocation reads: it must follow each knob both ways.
public class FaultInjectionArmedTests
{
    [Fact]
    public void Armed_follows_probabilities_and_fail_nth_counts_both_ways()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 1 });
        var points = new FaultInjection();
        Assert.False(points.Armed);

        points.FailSlab.Probability = 50;
        points.FailSlab.Probability = 60; // still one armed point, not two
        points.FailPageAlloc.Probability = 10;
        points.FailSlab.Probability = 0;
        Assert.True(points.Armed);
        points.FailPageAlloc.Probability = 0;
        Assert.False(points.Armed);

        points.SetFailNth(m.CurrentTask, 2);
        Assert.True(points.Armed);
        Assert.True(points.ConsumeFailNth(m.CurrentTask, out bool first) && !first);
        Assert.True(points.ConsumeFailNth(m.CurrentTask, out bool second) && second);
        Assert.False(points.Armed);

        points.SetFailNth(m.CurrentTask, 5);
        points.SetFailNth(m.CurrentTask, 0);
        Assert.False(points.Armed);
    }
}
