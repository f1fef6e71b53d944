using System;
using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// The per-CPU areas (mm/percpu.c): one unit of <see cref="AddressLayout.PercpuUnitSize"/> bytes
/// per CPU, an allocation at the same offset in every unit. Pages are taken from the buddy
/// allocator when an allocation first reaches them, for every CPU at once (from the CPU's node),
/// and kept, as the kernel keeps populated chunk pages. DEFINE_PER_CPU variables get their offset
/// in a machine at first use (zeroed: the kernel copies a zeroed per-CPU section at boot).
/// </summary>
internal sealed class PerCpuAllocator : IObjectOwner
{
    /// <summary>PCPU_MIN_UNIT_SIZE: the largest dynamic allocation.</summary>
    public const ulong MaxDynamicSize = 32 << 10;

    /// <summary>PCPU_MIN_ALLOC_SIZE: the allocation granule.</summary>
    private const ulong MinAllocSize = 4;

    private const int HistoryLength = 128;

    /// <summary>Says what a populated page holds when it is seen through the direct map.</summary>
    private sealed class PageOwner : IObjectOwner
    {
        private readonly PerCpuAllocator _allocator;
        private readonly ulong _percpuAddress;

        public PageOwner(PerCpuAllocator allocator, ulong percpuAddress)
        {
            _allocator = allocator;
            _percpuAddress = percpuAddress;
        }

        public ObjectInfo? Describe(ulong address) => _allocator.Describe(_percpuAddress + (address & ((ulong)Kernel.PAGE_SIZE - 1)));
    }

    private readonly Machine _machine;
    private readonly AliasRegion _region;
    private readonly Lock _lock = new();
    private readonly RangeAllocator _offsets = new(0, AddressLayout.PercpuUnitSize);
    private readonly bool[] _populated = new bool[AddressLayout.PercpuUnitSize >> Kernel.PAGE_SHIFT];
    private readonly Dictionary<PerCpu, ulong> _static = new(ReferenceEqualityComparer.Instance);
    private readonly SortedList<ulong, PerCpu> _live = new();
    private readonly Queue<PerCpu> _freed = new();

    public PerCpuAllocator(Machine machine)
    {
        _machine = machine;
        _region = machine.Memory.PerCpu;
    }

    /// <summary>Pages taken from the buddy allocator for the units (all CPUs).</summary>
    public int PopulatedPages { get; private set; }

    public ulong UnitAddress(int cpu)
    {
        if ((uint)cpu >= (uint)_machine.Cpus.Length)
            throw new ArgumentOutOfRangeException(nameof(cpu), cpu, $"The machine has CPUs 0..{_machine.Cpus.Length - 1}.");
        return _region.Start + (ulong)cpu * AddressLayout.PercpuUnitSize;
    }

    public ulong AddressOf(PerCpu v, int cpu)
    {
        ArgumentNullException.ThrowIfNull(v);
        return UnitAddress(cpu) + v.OffsetIn(_machine);
    }

    private Track? NewTrack(CallSite site) =>
        _machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak) ? new Track(_machine.CurrentTask, site, _machine.Jiffies) : null;

    /// <summary>The offset of a DEFINE_PER_CPU variable in this machine, given it at first use.</summary>
    public ulong StaticOffset(PerCpu v)
    {
        lock (_lock)
        {
            if (_static.TryGetValue(v, out ulong offset)) return offset;
            offset = ReserveLocked(v.Size, v.Align, default)
                ?? throw new InvalidOperationException($"The per-CPU area ({AddressLayout.PercpuUnitSize >> 10} KiB a CPU) has no room for a {v.Size}-byte static variable.");
            _static.Add(v, offset);
            _live.Add(offset, v);
            return offset;
        }
    }

    /// <summary>__alloc_percpu: zeroed in every unit; null (after the kernel's warning) for an illegal size or alignment, or when memory runs out.</summary>
    public PerCpu? Alloc(ulong size, ulong align, Func<ulong, PerCpu> create, CallSite site)
    {
        if (size == 0 || size > MaxDynamicSize || align > (ulong)Kernel.PAGE_SIZE || (align & (align - 1)) != 0)
        {
            _machine.Warn(KernelLog.WarningHeader(_machine, "mm/percpu.c", "pcpu_alloc") + $"illegal size ({size}) or align ({align}) for percpu allocation");
            return null;
        }
        align = Math.Max(align, MinAllocSize);
        size = (size + MinAllocSize - 1) & ~(MinAllocSize - 1);
        lock (_lock)
        {
            ulong? offset = ReserveLocked(size, align, site);
            if (offset == null) return null;
            PerCpu chunk = create(offset.Value);
            chunk.AllocTrack = NewTrack(site);
            _live.Add(offset.Value, chunk);
            return chunk;
        }
    }

    /// <summary>Takes [offset, offset+size) in every unit, populating pages it reaches for the first time, and zeroes it.</summary>
    private unsafe ulong? ReserveLocked(ulong size, ulong align, CallSite site)
    {
        ulong? offset = _offsets.Alloc(size, align);
        if (offset == null) return null;
        int first = (int)(offset.Value >> Kernel.PAGE_SHIFT), last = (int)((offset.Value + size - 1) >> Kernel.PAGE_SHIFT);
        for (int p = first; p <= last; p++)
        {
            if (_populated[p] || Populate(p, site)) continue;
            _offsets.Free(offset.Value, size);
            return null;
        }
        for (int cpu = 0; cpu < _machine.Cpus.Length; cpu++)
            new Span<byte>(_region.Host(UnitAddress(cpu) + offset.Value), (int)size).Clear();
        return offset;
    }

    /// <summary>Maps page <paramref name="index"/> of every unit; all or nothing.</summary>
    private bool Populate(int index, CallSite site)
    {
        var frames = new page[_machine.Cpus.Length];
        for (int cpu = 0; cpu < frames.Length; cpu++)
        {
            page? frame = _machine.PageAllocator.Alloc(Kernel.GFP_KERNEL, 0, _machine.Cpus[cpu].Node, site);
            if (frame == null)
            {
                for (int i = 0; i < cpu; i++) _machine.PageAllocator.Free(frames[i], 0, site);
                return false;
            }
            frames[cpu] = frame;
        }
        for (int cpu = 0; cpu < frames.Length; cpu++)
        {
            ulong address = UnitAddress(cpu) + ((ulong)index << Kernel.PAGE_SHIFT);
            frames[cpu].Flags |= PageFlags.PerCpu;
            frames[cpu].Owner = new PageOwner(this, address);
            _region.Map(address, frames[cpu]);
        }
        _populated[index] = true;
        PopulatedPages += frames.Length;
        _machine.Stats.Add(MemStat.PercpuPages, frames.Length);
        return true;
    }

    /// <summary>free_percpu: what alloc_percpu of this machine did not return, or returned and was freed, is reported and not freed.</summary>
    public void Free(PerCpu ptr, CallSite site)
    {
        string culprit = site.Member.Length > 0 ? site.Member : "free_percpu";
        string? foreign = ptr.IsStatic ? "free_percpu() of a DEFINE_PER_CPU variable: only alloc_percpu() memory can be freed"
            : ptr.Owner != _machine ? $"free_percpu() of a per-CPU pointer allocated in {ptr.Owner}"
            : null;
        if (foreign != null)
        {
            if (_machine.IsChecking(Checks.Frees)) FreeReport.Mismatched(_machine, culprit, 0, null, foreign);
            return;
        }
        ulong address = UnitAddress(0) + ptr.Offset;
        lock (_lock)
        {
            if (!ptr.Freed)
            {
                ptr.Freed = true;
                ptr.FreeTrack = NewTrack(site);
                _live.Remove(ptr.Offset);
                _offsets.Free(ptr.Offset, ptr.Size);
                if (_freed.Count == HistoryLength) _freed.Dequeue();
                _freed.Enqueue(ptr);
                return;
            }
        }
        if (_machine.IsChecking(Checks.Frees)) FreeReport.DoubleFree(_machine, culprit, address, Info(ptr, address));
    }

    private ObjectInfo Info(PerCpu chunk, ulong start) => new()
    {
        Start = start,
        RequestedSize = chunk.Size,
        Family = MemoryFamily.PerCpu,
        Allocated = !chunk.Freed,
        AllocTrack = chunk.AllocTrack,
        FreeTrack = chunk.FreeTrack,
    };

    /// <summary>The allocation (live, else recently freed) at a per-CPU address, with its start in that CPU's unit.</summary>
    public ObjectInfo? Describe(ulong address)
    {
        if (!_region.Contains(address)) return null;
        ulong unitStart = address - (address - _region.Start) % AddressLayout.PercpuUnitSize;
        ulong offset = address - unitStart;
        lock (_lock)
        {
            PerCpu? chunk = LiveAt(offset);
            if (chunk == null)
                foreach (PerCpu freed in _freed)
                    if (offset - freed.Offset < freed.Size) chunk = freed;
            return chunk == null ? null : Info(chunk, unitStart + OffsetLocked(chunk));
        }
    }

    /// <summary>
    /// Every live allocation and DEFINE_PER_CPU variable in every CPU's unit: the roots kmemleak
    /// scans here, as the kernel scans the per-CPU sections (its Kmemleak.AddScanAreaProvider).
    /// </summary>
    public (ulong Start, ulong Size)[] ScanAreas()
    {
        lock (_lock)
        {
            var areas = new List<(ulong Start, ulong Size)>(_live.Count * _machine.Cpus.Length);
            foreach (PerCpu chunk in _live.Values)
                for (int cpu = 0; cpu < _machine.Cpus.Length; cpu++)
                    areas.Add((UnitAddress(cpu) + OffsetLocked(chunk), chunk.Size));
            return areas.ToArray();
        }
    }

    private ulong OffsetLocked(PerCpu chunk) => chunk.IsStatic ? _static[chunk] : chunk.Offset;

    private PerCpu? LiveAt(ulong offset)
    {
        int found = AddressSearch.Floor(_live.Keys, offset);
        if (found < 0) return null;
        PerCpu chunk = _live.Values[found];
        return offset - _live.Keys[found] < chunk.Size ? chunk : null;
    }
}
