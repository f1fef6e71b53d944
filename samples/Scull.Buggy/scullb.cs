using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull.Buggy;

/// <summary>
/// scullb: a scull whose author made the four mistakes the KMG rules exist for. Each is also a
/// runtime bug: building shows the warning, running shows the debug kernel's report for the same line.
/// </summary>
public sealed class scullb_dev
{
    public int quantum = scull_dev.SCULL_QUANTUM;

    /// <summary>Protects <see cref="spare"/>, which the interrupt path takes without allocating.</summary>
    public readonly spinlock_t @lock = new();

    /// <summary>A quantum kept ready for the interrupt path.</summary>
    public KPtr spare;

    public scullb_dev() => spin_lock_init(@lock);
}

public static class scullb
{
    private static readonly PerCpu<long> scullb_hits = DEFINE_PER_CPU<long>();
    private static readonly PerCpu<long> scullb_bytes = DEFINE_PER_CPU<long>();

    /// <summary>Tops up the spare quantum under the lock the interrupt path takes.</summary>
    public static void scullb_refill_locked(scullb_dev dev)
    {
        spin_lock(dev.@lock);
        // SEEDED BUG (KMG0001; runtime: SleepInAtomic): scullb_refill -> scullb_alloc_quantum -> kmalloc(GFP_KERNEL) may sleep, under spin_lock.
        scullb_refill(dev);
        spin_unlock(dev.@lock);
    }

    private static void scullb_refill(scullb_dev dev)
    {
        if (dev.spare.IsNull) dev.spare = scullb_alloc_quantum(dev);
    }

    private static KPtr scullb_alloc_quantum(scullb_dev dev) => kmalloc(dev.quantum, GFP_KERNEL);

    /// <summary>A big staging buffer, allocated with vmalloc and then freed as if it came from kmalloc.</summary>
    public static void scullb_staging()
    {
        KPtr staging = vmalloc(16 * PAGE_SIZE);
        if (staging.IsNull) return;
        memset(staging, 0, 16 * PAGE_SIZE);
        // SEEDED BUG (KMG0002; runtime: MismatchedFree): vmalloc memory freed with kfree; use vfree.
        kfree(staging);
        // The checker refused the bad free, so the buffer is still there: give it back properly.
        vfree(staging);
    }

    /// <summary>Counts a hit on the current CPU without pinning the task to it.</summary>
    public static void scullb_count_hit()
    {
        // SEEDED BUG (KMG0003; runtime: PreemptibleCpuAccess): smp_processor_id() while preemptible; the task may move before per_cpu runs.
        int cpu = smp_processor_id();
        per_cpu(scullb_hits, cpu)++;
    }

    /// <summary>The statistics timer: accounts the bytes moved since the last tick, which is none when idle.</summary>
    public static void scullb_stats_timer(timer_list t) => scullb_account(0);

    /// <summary>Adds a transfer to this CPU's byte count, but forgets put_cpu on the early return.</summary>
    public static void scullb_account(long bytes)
    {
        int cpu = get_cpu();
        // SEEDED BUG (KMG0004; runtime: UnbalancedPreempt): returns with get_cpu held, preemption stays disabled.
        if (bytes == 0) return;
        per_cpu(scullb_bytes, cpu) += bytes;
        put_cpu();
    }
}
