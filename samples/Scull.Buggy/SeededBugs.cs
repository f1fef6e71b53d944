using System.Collections.Generic;
using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull.Buggy;

/// <summary>Every seeded bug of the twin, in the order the demo shows them.</summary>
public static class SeededBugs
{
    private const Checks WithoutKasan = Checks.All & ~Checks.Kasan;

    public static IReadOnlyList<SeededBug> All { get; } = new SeededBug[]
    {
        new("sleep under a spinlock", "KMG0001", BugKind.SleepInAtomic,
            "kmalloc(GFP_KERNEL) three calls below spin_lock", RefillUnderLock),
        new("vmalloc freed with kfree", "KMG0002", BugKind.MismatchedFree,
            "a vmalloc'd staging buffer given to kfree", scullb.scullb_staging),
        new("smp_processor_id while preemptible", "KMG0003", BugKind.PreemptibleCpuAccess,
            "a per-CPU hit counter indexed by a CPU the task may leave", scullb.scullb_count_hit),
        new("get_cpu without put_cpu", "KMG0004", BugKind.UnbalancedPreempt,
            "an early return skips put_cpu; the timer callback returns with preemption disabled", RunInTimer),
        new("off-by-one on a slab object", null, BugKind.SlabOutOfBounds,
            "`<=` in a loop over a 115-byte kmalloc block", scullb_runtime.header_off_by_one),
        new("use after free", null, BugKind.SlabUseAfterFree,
            "a stale pointer to a freed quantum set", scullb_runtime.stale_qset_after_trim),
        new("double free", null, BugKind.DoubleFree,
            "an error path frees what the normal path freed", scullb_runtime.trim_twice),
        new("free of an interior pointer", null, BugKind.InvalidFree,
            "kfree of a pointer 8 bytes into the block", scullb_runtime.free_from_the_middle),
        new("page used after free_page", null, BugKind.UseAfterFree,
            "a write to a page given back to the buddy allocator", scullb_runtime.page_after_free_pages),
        new("vmalloc out of bounds", null, BugKind.VmallocOutOfBounds,
            "a write into the guard page after a vmalloc area", scullb_runtime.vmalloc_past_the_end),
        new("NULL dereference", null, BugKind.NullPtrDeref,
            "scull_follow's NULL used unchecked", scullb_runtime.unchecked_follow),
        new("wild pointer", null, BugKind.WildAccess,
            "a read through LIST_POISON1", scullb_runtime.poisoned_list_pointer),
        new("memory leak", null, BugKind.Leak,
            "a kmalloc block nothing points to (found by a kmemleak scan)", scullb_runtime.lost_message),
        new("red zone overwritten", null, BugKind.RedzoneOverwritten,
            "a span longer than the block (slub_debug, no KASAN)", scullb_runtime.span_past_the_object) { Checks = WithoutKasan },
        new("poison overwritten", null, BugKind.PoisonOverwritten,
            "a write into a freed object of a SLAB_POISON cache (slub_debug, no KASAN)", scullb_runtime.write_after_free_in_poisoned_cache) { Checks = WithoutKasan },
        new("bootmem after boot", null, BugKind.BootmemAfterBoot,
            "alloc_bootmem called by a module", scullb_runtime.bootmem_from_a_module),
        new("invalid GFP flags", null, BugKind.InvalidFlags,
            "__GFP_HIGHMEM passed to kmalloc", scullb_runtime.highmem_for_kmalloc),
        new("kernel memory exposure", null, BugKind.UsercopyExposure,
            "copy_to_user of 256 bytes from a 128-byte object (hardened usercopy, no KASAN)", scullb_runtime.read_too_much) { Checks = WithoutKasan },
        new("destroying a cache in use", null, BugKind.CacheNotEmpty,
            "kmem_cache_destroy before the devices were trimmed", scullb_runtime.destroy_before_trim),
        new("past the end of a large buffer", null, BugKind.OutOfBounds,
            "a NUL one past a 10000-byte kmalloc block, which the page allocator backs", scullb_runtime.large_buffer_past_the_end),
        new("a slab page freed as a page", null, BugKind.BadPageState,
            "__free_page(virt_to_page(buf)) of a kmalloc buffer", scullb_runtime.free_page_of_a_kmalloc_buffer),
    };

    private static void RefillUnderLock()
    {
        var dev = new scullb_dev();
        scullb.scullb_refill_locked(dev);
        kfree(dev.spare);
    }

    /// <summary>Timer callbacks run in softirq context, which checks the preempt count they return with.</summary>
    private static void RunInTimer()
    {
        var timer = new timer_list();
        timer_setup(timer, scullb.scullb_stats_timer, 0);
        mod_timer(timer, jiffies + 1);
        Machine.Current.AdvanceJiffies(1);
        del_timer_sync(timer);
    }
}
