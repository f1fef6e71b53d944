using System;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// A per-CPU pointer (the kernel's <c>void __percpu *</c>): the same offset in every CPU's unit of
/// the per-CPU area. Either a DEFINE_PER_CPU variable, which needs no machine and gets its storage
/// in each machine at first use, or an allocation of one machine (alloc_percpu / __alloc_percpu).
/// </summary>
public class PerCpu
{
    /// <summary>The last machine's offset (by id, so that a static descriptor keeps no machine alive).</summary>
    private sealed class StaticSlot
    {
        public StaticSlot(int machineId, ulong offset)
        {
            MachineId = machineId;
            Offset = offset;
        }

        public readonly int MachineId;
        public readonly ulong Offset;
    }

    private StaticSlot? _lastSlot;

    /// <summary>A DEFINE_PER_CPU variable.</summary>
    internal PerCpu(ulong size, ulong align)
    {
        Size = size;
        Align = align;
    }

    /// <summary>An allocation at <paramref name="offset"/> of <paramref name="machine"/>'s units.</summary>
    internal PerCpu(Machine machine, ulong offset, ulong size, ulong align)
        : this(size, align)
    {
        Owner = machine;
        Offset = offset;
    }

    /// <summary>The machine of a dynamic allocation; null for a DEFINE_PER_CPU variable.</summary>
    internal Machine? Owner { get; }

    internal ulong Size { get; }
    internal ulong Align { get; }

    /// <summary>Offset in each unit, for a dynamic allocation.</summary>
    internal ulong Offset { get; }

    /// <summary>Set (under the allocator's lock) by free_percpu.</summary>
    internal bool Freed;

    internal Track? AllocTrack, FreeTrack;

    internal bool IsStatic => Owner == null;

    /// <summary>Where this variable lives in every unit of <paramref name="machine"/>.</summary>
    internal ulong OffsetIn(Machine machine)
    {
        if (Owner != null)
        {
            if (Owner != machine) throw new InvalidOperationException($"This per-CPU pointer was allocated in {Owner}, not in {machine}.");
            return Offset;
        }
        StaticSlot? slot = Volatile.Read(ref _lastSlot);
        if (slot != null && slot.MachineId == machine.Id) return slot.Offset;
        ulong offset = machine.PerCpuAreas.StaticOffset(this);
        Volatile.Write(ref _lastSlot, new StaticSlot(machine.Id, offset));
        return offset;
    }
}

/// <summary>A per-CPU variable of type <typeparamref name="T"/> (DEFINE_PER_CPU(T, name), alloc_percpu(T)).</summary>
public sealed class PerCpu<T> : PerCpu where T : unmanaged
{
    internal static unsafe ulong Alignment => Math.Min(8UL, (ulong)(sizeof(T) & -sizeof(T)));

    internal unsafe PerCpu()
        : base((ulong)sizeof(T), Alignment)
    {
    }

    internal unsafe PerCpu(Machine machine, ulong offset)
        : base(machine, offset, (ulong)sizeof(T), Alignment)
    {
    }
}
