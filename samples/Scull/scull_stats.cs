using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull;

/// <summary>
/// Per-CPU transfer statistics for the scull family. Each CPU bumps its own counter with no lock
/// and no shared cache line; a reader sums them. get_cpu_var disables preemption so the task cannot
/// move to another CPU halfway through the read-modify-write.
/// </summary>
public static class scull_stats
{
    private static readonly PerCpu<long> scull_bytes_read = DEFINE_PER_CPU<long>();
    private static readonly PerCpu<long> scull_bytes_written = DEFINE_PER_CPU<long>();

    public static void scull_account_read(long bytes)
    {
        get_cpu_var(scull_bytes_read) += bytes;
        put_cpu_var(scull_bytes_read);
    }

    public static void scull_account_write(long bytes)
    {
        get_cpu_var(scull_bytes_written) += bytes;
        put_cpu_var(scull_bytes_written);
    }

    /// <summary>The total over every possible CPU; per_cpu with an explicit CPU needs no preemption guard.</summary>
    public static long scull_total_read() => sum(scull_bytes_read);

    public static long scull_total_written() => sum(scull_bytes_written);

    /// <summary>This machine's counter of one CPU (what /proc would show per CPU).</summary>
    public static long scull_read_on(int cpu) => per_cpu(scull_bytes_read, cpu);

    private static long sum(PerCpu<long> counter)
    {
        long total = 0;
        for (int cpu = 0; cpu < nr_cpu_ids; cpu++) total += per_cpu(counter, cpu);
        return total;
    }

    /// <summary>The number of possible CPUs (the kernel's nr_cpu_ids) of the current machine.</summary>
    private static int nr_cpu_ids => Machine.Current.Options.Cpus;
}
