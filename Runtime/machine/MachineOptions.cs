using System;

namespace KmemGuard;

/// <summary>How to build a simulated machine. The defaults are the embedded default machine.</summary>
public sealed class MachineOptions
{
    public const long MinMemoryBytes = 32L << 20;
    public const long MaxMemoryBytes = 64L << 30;
    public const int MaxCpus = 256;

    /// <summary>Number of simulated CPUs (default 4).</summary>
    public int Cpus { get; set; } = 4;

    /// <summary>RAM in bytes, split evenly over the nodes (default 256 MiB).</summary>
    public long MemoryBytes { get; set; } = 256L << 20;

    /// <summary>NUMA nodes (default 1).</summary>
    public int NumaNodes { get; set; } = 1;

    /// <summary>Boot into early boot: only bootmem allocates until <see cref="Machine.FinishBoot"/>.</summary>
    public bool EarlyBoot { get; set; }

    /// <summary>A 32-bit style layout: memory above 896 MiB is ZONE_HIGHMEM, and there is no ZONE_DMA32.</summary>
    public bool HighMem { get; set; }

    /// <summary>Which checks run (default: all).</summary>
    public Checks Checks { get; set; } = Checks.All;

    /// <summary>What a found bug does (default: throw).</summary>
    public BugAction OnBug { get; set; } = BugAction.Throw;

    /// <summary>How long an allocation that may sleep waits for memory to be freed before it fails.</summary>
    public TimeSpan ReclaimTimeout { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Size of the vmalloc area (default: 4 times the RAM, at least 64 MiB).</summary>
    public long VmallocBytes { get; set; }

    /// <summary>
    /// Forced preemption, a debugging aid that makes per-CPU races visible: every Nth preemption
    /// point of a preemptible task (might_sleep, cond_resched, preempt_enable to zero) yields the
    /// host thread and moves the task to a pseudo-randomly chosen CPU (default 16). 0 never forces
    /// a preemption there (a task still moves off a CPU that another task holds).
    /// </summary>
    public int PreemptEvery { get; set; } = 16;

    internal void Validate()
    {
        if (Cpus < 1 || Cpus > MaxCpus)
            throw new ArgumentOutOfRangeException(nameof(Cpus), Cpus, $"A machine has 1 to {MaxCpus} CPUs.");
        if (NumaNodes < 1 || NumaNodes > Cpus)
            throw new ArgumentOutOfRangeException(nameof(NumaNodes), NumaNodes, "A machine has at least one node, and no more nodes than CPUs.");
        if (MemoryBytes < MinMemoryBytes * NumaNodes || MemoryBytes > MaxMemoryBytes)
            throw new ArgumentOutOfRangeException(nameof(MemoryBytes), MemoryBytes, $"Memory must be between {MinMemoryBytes >> 20} MiB per node and {MaxMemoryBytes >> 30} GiB.");
        long perNode = MemoryBytes / NumaNodes;
        if (perNode % (Kernel.PAGE_SIZE << Kernel.MAX_ORDER) != 0)
            throw new ArgumentException($"Memory per node must be a multiple of {(Kernel.PAGE_SIZE << Kernel.MAX_ORDER) >> 20} MiB (the largest buddy block).", nameof(MemoryBytes));
        if (VmallocBytes < 0)
            throw new ArgumentOutOfRangeException(nameof(VmallocBytes), VmallocBytes, "The vmalloc area cannot be negative.");
        if (PreemptEvery < 0)
            throw new ArgumentOutOfRangeException(nameof(PreemptEvery), PreemptEvery, "PreemptEvery is a count of preemption points: 0 (never) or more.");
        if (ReclaimTimeout < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(ReclaimTimeout), ReclaimTimeout, "The reclaim timeout cannot be negative.");
    }

    internal MachineOptions Clone() => (MachineOptions)MemberwiseClone();
}
