using System;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

/// <summary>
/// The checks where subsystems meet: an allocator's sleeping mask in atomic context, hardened
/// usercopy and kmemleak over real kmalloc objects, fault injection driving an allocator's
/// failure path. Each bug has its silent twin.
/// </summary>
public class AllocatorCheckerTests
{
    private static Machine Boot(BugAction onBug = BugAction.Report) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, OnBug = onBug });

    public static TheoryData<string> SleepingAllocations => new() { "kmalloc", "kzalloc", "kmem_cache_alloc", "mempool_alloc", "alloc_pages", "__get_free_pages", "kvmalloc" };

    private static void Allocate(string function, gfp_t gfp, kmem_cache_t cache, mempool_t pool)
    {
        switch (function)
        {
            case "kmalloc": kfree(kmalloc(100, gfp)); break;
            case "kzalloc": kfree(kzalloc(100, gfp)); break;
            case "kmem_cache_alloc": kmem_cache_free(cache, kmem_cache_alloc(cache, gfp)); break;
            case "mempool_alloc": mempool_free(mempool_alloc(pool, gfp), pool); break;
            case "alloc_pages": __free_pages(alloc_pages(gfp, 1)!, 1); break;
            case "__get_free_pages": free_pages(__get_free_pages(gfp, 0), 0); break;
            case "kvmalloc": kvfree(kvmalloc(3 * PAGE_SIZE, gfp)); break;
            default: throw new ArgumentOutOfRangeException(nameof(function), function, null);
        }
    }

    [Theory]
    [MemberData(nameof(SleepingAllocations))]
    public void A_sleeping_mask_under_a_spinlock_is_reported_once_and_GFP_ATOMIC_is_silent(string function)
    {
        using Machine m = Boot();
        kmem_cache_t cache = kmem_cache_create("ctx", 64, 0, 0, null)!;
        mempool_t pool = mempool_create_kmalloc_pool(2, 64)!;
        var lk = new spinlock_t();
        spin_lock_init(lk);

        spin_lock(lk);
        Allocate(function, GFP_ATOMIC, cache, pool);
        spin_unlock(lk);
        Assert.Empty(m.Reports);

        spin_lock(lk);
        Allocate(function, GFP_KERNEL | __GFP_NOWARN, cache, pool);
        spin_unlock(lk);
        KernelBugReport report = Assert.Single(m.Reports);
        Assert.Equal(BugKind.SleepInAtomic, report.Kind);
        Assert.StartsWith("BUG: sleeping function called from invalid context at AllocatorCheckerTests.cs:", report.Text);
        Assert.Contains("in_atomic(): 1", report.Text);
        mempool_destroy(pool);
        kmem_cache_destroy(cache);
    }

    [Fact]
    public void GFP_KERNEL_in_a_work_item_is_silent_and_in_a_timer_it_is_a_bug()
    {
        using Machine m = Boot();
        var work = new work_struct();
        INIT_WORK(work, _ => kfree(kmalloc(64, GFP_KERNEL)));
        schedule_work(work);
        flush_work(work);
        Assert.Empty(m.Reports);

        var timer = new timer_list();
        timer_setup(timer, _ => kfree(kmalloc(64, GFP_KERNEL)), 0);
        mod_timer(timer, jiffies + 1);
        m.AdvanceJiffies(1);
        Assert.Equal(BugKind.SleepInAtomic, Assert.Single(m.Reports).Kind);
    }

    [Fact]
    public void Copying_past_a_kmalloc_object_to_user_space_is_an_exposure_and_within_it_is_not()
    {
        using Machine m = Boot();
        KPtr p = kmalloc(64, GFP_KERNEL);
        var user = new byte[128];
        Assert.Equal(0UL, copy_to_user(user, p, 64));
        Assert.Empty(m.Reports);

        ulong left = copy_to_user(user, p, 128);
        KernelBugReport report = Assert.Single(m.Reports);
        Assert.Equal(BugKind.UsercopyExposure, report.Kind);
        Assert.Contains("usercopy: Kernel memory exposure attempt detected from SLUB object 'kmalloc-64' (offset 0, size 128)!", report.Text);
        Assert.Equal(128UL, left);
        kfree(p);
    }

    [Fact]
    public void A_dropped_kmalloc_block_is_a_leak_and_a_held_one_is_not()
    {
        using Machine m = Boot();
        var device = new HoldsOne { Buffer = kmalloc(100, GFP_KERNEL) };
        KPtr dropped = kmalloc(200, GFP_KERNEL);
        dropped.Write(0, 0x6867666564636261UL);

        KernelBugReport leak = Assert.Single(m.ScanLeaks(device));
        Assert.Equal(BugKind.Leak, leak.Kind);
        Assert.Contains($"unreferenced object 0x{dropped.Address:x} (size 256):", leak.Text);
        Assert.Contains("abcdefgh", leak.Text);
        Assert.Contains(nameof(A_dropped_kmalloc_block_is_a_leak_and_a_held_one_is_not), leak.Text);

        // A pointer stored in simulated memory keeps a block reachable too.
        device.Buffer.Write(0, dropped.Address);
        Assert.Empty(m.ScanLeaks(device));
        kfree(dropped);
        kfree(device.Buffer);
    }

    private sealed class HoldsOne
    {
        public KPtr Buffer;
    }

    [Fact]
    public void Failslab_drives_kmalloc_into_its_failure_path_deterministically()
    {
        using Machine m = Boot();
        m.FailSlab.Probability = 100;
        m.FailSlab.Times = 2;
        m.FailSlab.IgnoreGfpWait = false;
        Assert.True(kmalloc(32, GFP_KERNEL).IsNull);
        Assert.True(kmalloc(32, GFP_ATOMIC).IsNull);
        KPtr third = kmalloc(32, GFP_KERNEL);
        Assert.False(third.IsNull);
        kfree(third);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void A_bad_free_in_throw_mode_leaves_the_allocator_as_it_was()
    {
        using Machine m = Boot(BugAction.Throw);
        KPtr p = kmalloc(100, GFP_KERNEL);
        string before = m.ReadProc("/proc/slabinfo");
        Assert.Equal(BugKind.MismatchedFree, Assert.Throws<KernelBugException>(() => vfree(p)).Kind);
        Assert.Equal(BugKind.InvalidFree, Assert.Throws<KernelBugException>(() => kfree(p + 8)).Kind);
        Assert.Equal(before, m.ReadProc("/proc/slabinfo"));
        p[99] = 7;
        Assert.Equal(7, p[99]);
        kfree(p);
        Assert.Equal(BugKind.DoubleFree, Assert.Throws<KernelBugException>(() => kfree(p)).Kind);
    }
}
