using System.Numerics;
using System.Runtime.CompilerServices;

namespace KmemGuard;

// mm/percpu.c and include/linux/percpu-defs.h: data with one copy per CPU, in the per-CPU areas.
public static partial class Kernel
{
    /// <summary>DEFINE_PER_CPU(T, name): for a <c>static readonly</c> field. Needs no machine; each machine gives it zeroed storage at first use.</summary>
    public static PerCpu<T> DEFINE_PER_CPU<T>() where T : unmanaged => new();

    /// <summary>A zeroed <typeparamref name="T"/> for every CPU; null when memory runs out.</summary>
    [MaySleep]
    [Allocates(MemoryFamily.PerCpu)]
    public static PerCpu<T>? alloc_percpu<T>([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged
    {
        Machine machine = Machine.Current;
        MightSleep(new CallSite(caller, file, line));
        return (PerCpu<T>?)machine.PerCpuAreas.Alloc((ulong)Unsafe.SizeOf<T>(), PerCpu<T>.Alignment,
            offset => new PerCpu<T>(machine, offset), new CallSite(caller, file, line));
    }

    /// <summary>
    /// <paramref name="size"/> zeroed bytes for every CPU, aligned to <paramref name="align"/>; NULL (with
    /// the kernel's warning) for size 0, more than 32 KiB, or an alignment that is not a power of two up to PAGE_SIZE.
    /// </summary>
    [MaySleep]
    [Allocates(MemoryFamily.PerCpu)]
    public static PerCpu? __alloc_percpu(size_t size, size_t align, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        Machine machine = Machine.Current;
        MightSleep(new CallSite(caller, file, line));
        return machine.PerCpuAreas.Alloc(size, align, offset => new PerCpu(machine, offset, size, align), new CallSite(caller, file, line));
    }

    /// <summary>Frees what alloc_percpu returned; null is a no-op. A double free, or a DEFINE_PER_CPU variable, is reported and not freed.</summary>
    [Frees(MemoryFamily.PerCpu, "ptr")]
    public static void free_percpu(PerCpu? ptr, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (ptr is null) return;
        Machine.Current.PerCpuAreas.Free(ptr, new CallSite(caller, file, line));
    }

    /// <summary>The slot of <paramref name="cpu"/>, through one checked access to simulated memory.</summary>
    private static unsafe ref T Slot<T>(Machine machine, PerCpu<T> v, int cpu) where T : unmanaged
    {
        ulong address = machine.PerCpuAreas.AddressOf(v, cpu);
        byte* host = machine.Memory.Access(address, (ulong)sizeof(T), AccessKind.Write);
        // A refused access (Report mode) gets a scratch slot, so that nothing reaches simulated memory.
        if (host == null) return ref (new T[1])[0];
        return ref Unsafe.AsRef<T>(host);
    }

    /// <summary><paramref name="cpu"/>'s copy of a per-CPU variable (any CPU, no preemption needed).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException">The machine has no such CPU.</exception>
    public static ref T per_cpu<T>(PerCpu<T> v, int cpu) where T : unmanaged => ref Slot(Machine.Current, v, cpu);

    /// <summary><paramref name="cpu"/>'s copy of a per-CPU allocation.</summary>
    public static ref T per_cpu_ptr<T>(PerCpu<T> p, int cpu) where T : unmanaged => ref Slot(Machine.Current, p, cpu);

    /// <summary>The address of <paramref name="cpu"/>'s copy of a per-CPU allocation.</summary>
    public static KPtr per_cpu_ptr(PerCpu p, int cpu) => new(Machine.Current.PerCpuAreas.AddressOf(p, cpu));

    /// <summary>This CPU's copy; the caller must have preemption disabled.</summary>
    [RequiresPreemptionDisabled]
    public static ref T this_cpu_ptr<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged
    {
        // DEBUG_PREEMPT's this_cpu_ptr goes through my_cpu_offset, that is smp_processor_id().
        int cpu = DebugPreempt.CheckPreemptDisabled("smp_processor_id", new CallSite(caller, file, line));
        return ref Slot(Machine.Current, v, cpu);
    }

    /// <summary>Disables preemption and returns this CPU's copy; end with put_cpu_var.</summary>
    [EntersSection(SectionKind.PreemptDisabled)]
    public static ref T get_cpu_var<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged
    {
        KTask task = PreemptDisableInternal(new CallSite(caller, file, line));
        return ref Slot(task.Machine, v, task.CpuId);
    }

    [LeavesSection(SectionKind.PreemptDisabled)]
    public static void put_cpu_var<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged =>
        PreemptEnableInternal(new CallSite(caller, file, line));

    /// <summary>Disables preemption and returns this CPU's number; end with put_cpu.</summary>
    [EntersSection(SectionKind.PreemptDisabled)]
    public static int get_cpu([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => PreemptDisableInternal(new CallSite(caller, file, line)).CpuId;

    [LeavesSection(SectionKind.PreemptDisabled)]
    public static void put_cpu([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => PreemptEnableInternal(new CallSite(caller, file, line));

    /// <summary>The CPU the caller runs on; meaningful only while preemption is disabled (DEBUG_PREEMPT checks).</summary>
    [RequiresPreemptionDisabled]
    public static int smp_processor_id([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        DebugPreempt.CheckPreemptDisabled("smp_processor_id", new CallSite(caller, file, line));

    /// <summary>The CPU the caller runs on, unchecked (it may be stale at once).</summary>
    public static int raw_smp_processor_id() => Machine.Current.CurrentTask.CpuId;

    /// <summary>This CPU's copy for a __this_cpu_* operation, after DEBUG_PREEMPT's check.</summary>
    private static ref T ThisCpuChecked<T>(PerCpu<T> v, string function, CallSite site) where T : unmanaged =>
        ref Slot(Machine.Current, v, DebugPreempt.CheckPreemptDisabled(function, site));

    [RequiresPreemptionDisabled]
    public static T __this_cpu_read<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged =>
        ThisCpuChecked(v, "__this_cpu_read", new CallSite(caller, file, line));

    [RequiresPreemptionDisabled]
    public static void __this_cpu_write<T>(PerCpu<T> v, T value, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged =>
        ThisCpuChecked(v, "__this_cpu_write", new CallSite(caller, file, line)) = value;

    [RequiresPreemptionDisabled]
    public static void __this_cpu_add<T>(PerCpu<T> v, T value, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        ThisCpuChecked(v, "__this_cpu_add", new CallSite(caller, file, line)) += value;

    [RequiresPreemptionDisabled]
    public static void __this_cpu_sub<T>(PerCpu<T> v, T value, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        ThisCpuChecked(v, "__this_cpu_sub", new CallSite(caller, file, line)) -= value;

    [RequiresPreemptionDisabled]
    public static void __this_cpu_inc<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        ThisCpuChecked(v, "__this_cpu_inc", new CallSite(caller, file, line))++;

    [RequiresPreemptionDisabled]
    public static void __this_cpu_dec<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        ThisCpuChecked(v, "__this_cpu_dec", new CallSite(caller, file, line))--;

    // this_cpu_*: safe while preemptible, as each is one non-preemptible operation on this CPU's copy.

    public static T this_cpu_read<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged
    {
        var site = new CallSite(caller, file, line);
        KTask task = PreemptDisableInternal(site);
        T value = Slot(task.Machine, v, task.CpuId);
        PreemptEnableInternal(site);
        return value;
    }

    public static void this_cpu_write<T>(PerCpu<T> v, T value, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged
    {
        var site = new CallSite(caller, file, line);
        KTask task = PreemptDisableInternal(site);
        Slot(task.Machine, v, task.CpuId) = value;
        PreemptEnableInternal(site);
    }

    public static void this_cpu_add<T>(PerCpu<T> v, T value, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T>
    {
        var site = new CallSite(caller, file, line);
        KTask task = PreemptDisableInternal(site);
        Slot(task.Machine, v, task.CpuId) += value;
        PreemptEnableInternal(site);
    }

    public static void this_cpu_sub<T>(PerCpu<T> v, T value, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        this_cpu_add(v, -value, caller, file, line);

    public static void this_cpu_inc<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        this_cpu_add(v, T.One, caller, file, line);

    public static void this_cpu_dec<T>(PerCpu<T> v, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) where T : unmanaged, INumber<T> =>
        this_cpu_add(v, -T.One, caller, file, line);
}
