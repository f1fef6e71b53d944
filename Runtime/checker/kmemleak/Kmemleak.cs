using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// kmemleak (mm/kmemleak.c) for one machine: the allocators register every block they hand out
/// (<see cref="Track"/>) and forget it when it is freed (<see cref="Untrack"/>); a scan marks
/// what is reachable from the roots through pointer-sized words in simulated memory and reports
/// the rest.
/// </summary>
/// <remarks>
/// Differences from the kernel, all to make scans deterministic in tests: a block is reported
/// on the first scan that finds it unreferenced (the kernel waits until it is 5 s old and its
/// checksum stopped changing); every scan returns every block that is unreferenced at that scan
/// (as reading /sys/kernel/debug/kmemleak lists them all), not only the new ones. A scan that
/// runs while other threads move pointers around can report a false positive, as the kernel's
/// can: scan a quiescent machine for exact results.
/// </remarks>
internal sealed class Kmemleak
{
    /// <summary>min_count of a block that is never reported and never scanned (kmemleak_ignore).</summary>
    public const int Black = -1;

    /// <summary>min_count of a block that is scanned like a root and never reported (kmemleak_not_leak, bootmem, per-CPU).</summary>
    public const int Gray = 0;

    private readonly Machine _machine;
    // A plain dictionary under a Lock, not a ConcurrentDictionary: every allocation and free of a
    // checked machine goes through here, and a ConcurrentDictionary allocates a node per add and
    // takes a Monitor per add and remove (a third of a checked kmalloc/kfree pair, measured).
    private readonly Dictionary<ulong, KmemleakObject> _objects = new();
    private readonly Lock _objectsLock = new();
    private readonly List<(ulong Start, ulong Size)> _scanAreas = new();
    private readonly List<Func<IEnumerable<(ulong Start, ulong Size)>>> _scanAreaProviders = new();
    private IKmemleakObjectSource[] _objectSources = Array.Empty<IKmemleakObjectSource>();
    private readonly object _scanLock = new();
    private readonly List<KmemleakObject> _lastReported = new();
    private long _sequence;

    public Kmemleak(Machine machine) => _machine = machine;

    /// <summary>Blocks tracked now.</summary>
    public int Count
    {
        get
        {
            int count;
            lock (_objectsLock) count = _objects.Count;
            foreach (IKmemleakObjectSource source in ObjectSources()) count += source.TrackedCount;
            return count;
        }
    }

    /// <summary>
    /// An allocator that keeps kmemleak's state of its blocks in its own metadata (the slab
    /// allocator: a word per object), so that its allocations and frees cost no lock here.
    /// </summary>
    public void AddObjectSource(IKmemleakObjectSource source)
    {
        lock (_scanLock) Volatile.Write(ref _objectSources, [.. _objectSources, source]);
    }

    private IKmemleakObjectSource[] ObjectSources() => Volatile.Read(ref _objectSources);

    /// <summary>The next allocation order number (kmemleak lists leaks in allocation order).</summary>
    public long NextSequence() => Interlocked.Increment(ref _sequence);

    /// <summary>Whether <paramref name="block"/> (from this kmemleak's dictionary) is still the block tracked at its start.</summary>
    internal bool Holds(KmemleakObject block) => TryGetOwn(block.Start, out KmemleakObject? still) && still == block;

    /// <summary>
    /// Registers a block the allocator just handed out (kmemleak_alloc). Bootmem and per-CPU
    /// blocks are gray, as the kernel registers them (memblock and percpu allocations are scanned
    /// and never reported); every other block is reported when nothing points into it. A second
    /// Track of the same start replaces the first (the allocator reused it without an Untrack).
    /// </summary>
    public void Track(ulong start, ulong size, MemoryFamily family, string? cacheName, Track alloc)
    {
        int minCount = family is MemoryFamily.Bootmem or MemoryFamily.PerCpu ? Gray : 1;
        Track(start, size, family, cacheName, alloc, minCount);
    }

    public void Track(ulong start, ulong size, MemoryFamily family, string? cacheName, Track alloc, int minCount)
    {
        var block = new KmemleakObject(start, size, family, cacheName, alloc, minCount, NextSequence());
        lock (_objectsLock) _objects[start] = block;
    }

    /// <summary>Forgets a block that is being freed (kmemleak_free). Unknown addresses are ignored.</summary>
    public void Untrack(ulong start)
    {
        lock (_objectsLock) _objects.Remove(start);
    }

    private bool TryGetOwn(ulong start, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out KmemleakObject? block)
    {
        lock (_objectsLock) return _objects.TryGetValue(start, out block);
    }

    private bool TryGet(ulong start, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out KmemleakObject? block)
    {
        if (TryGetOwn(start, out block)) return true;
        foreach (IKmemleakObjectSource source in ObjectSources())
        {
            block = source.TrackedAt(start);
            if (block != null) return true;
        }
        return false;
    }

    /// <summary>kmemleak_not_leak: the block is never reported, and what it points to is reachable. False if not tracked.</summary>
    public bool NotLeak(ulong start) => SetMinCount(start, Gray);

    /// <summary>kmemleak_ignore: the block is neither reported nor scanned. False if not tracked.</summary>
    public bool Ignore(ulong start) => SetMinCount(start, Black);

    /// <summary>kmemleak_no_scan: the block may still leak, but its contents are not scanned. False if not tracked.</summary>
    public bool NoScan(ulong start)
    {
        if (!TryGet(start, out KmemleakObject? block)) return false;
        block.NoScan = true;
        return true;
    }

    private bool SetMinCount(ulong start, int minCount)
    {
        if (!TryGet(start, out KmemleakObject? block)) return false;
        block.MinCount = minCount;
        return true;
    }

    /// <summary>A range scanned as a root at every scan (a data section: the static per-CPU area of a CPU, ...).</summary>
    public void AddScanArea(ulong start, ulong size)
    {
        lock (_scanLock) _scanAreas.Add((start, size));
    }

    /// <summary>A source of root ranges asked at every scan (per-CPU units in use, bootmem still reserved, ...).</summary>
    public void AddScanAreaProvider(Func<IEnumerable<(ulong Start, ulong Size)>> provider)
    {
        lock (_scanLock) _scanAreaProviders.Add(provider);
    }

    /// <summary>Runs a scan from the given managed roots and the registered areas, and reports the unreferenced blocks.</summary>
    public IReadOnlyList<KernelBugReport> Scan(params object?[] roots)
    {
        lock (_scanLock)
        {
            var tracked = new List<KmemleakObject>();
            lock (_objectsLock) tracked.AddRange(_objects.Values);
            foreach (IKmemleakObjectSource source in ObjectSources()) source.CollectTracked(tracked);
            var scan = new KmemleakScan(_machine, tracked);
            var managed = new ManagedRootScanner(scan.Reference);
            foreach (object? root in roots) managed.ScanRoot(root);
            foreach ((ulong start, ulong size) in _scanAreas) scan.ScanRange(start, size);
            foreach (var provider in _scanAreaProviders)
                foreach ((ulong start, ulong size) in provider()) scan.ScanRange(start, size);
            scan.ScanGrayObjects();
            var reports = new List<KernelBugReport>();
            _lastReported.Clear();
            foreach (KmemleakObject leak in scan.Unreferenced())
                if (leak.StillTracked(this))
                {
                    reports.Add(new KernelBugReport(BugKind.Leak, KmemleakReport.Format(_machine, leak), leak.Start));
                    _lastReported.Add(leak);
                }
            return reports;
        }
    }

    /// <summary>kmemleak's "clear": what the last scan reported becomes gray, never reported again.</summary>
    public void Clear()
    {
        lock (_scanLock)
        {
            foreach (KmemleakObject leak in _lastReported)
                if (leak.MinCount != Black) leak.MinCount = Gray;
            _lastReported.Clear();
        }
    }
}

/// <summary>One tracked block (kmemleak's struct kmemleak_object).</summary>
internal class KmemleakObject
{
    public KmemleakObject(ulong start, ulong size, MemoryFamily family, string? cacheName, Track alloc, int minCount, long sequence)
    {
        Start = start;
        Size = size;
        Family = family;
        CacheName = cacheName;
        Alloc = alloc;
        _minCount = minCount;
        Sequence = sequence;
    }

    public ulong Start { get; }
    public ulong Size { get; }
    public MemoryFamily Family { get; }
    public string? CacheName { get; }
    public Track Alloc { get; }

    /// <summary>Allocation order: reports come in it, as the kernel's object_list.</summary>
    public long Sequence { get; }

    private volatile int _minCount;
    private volatile bool _noScan;

    /// <summary>References needed to be reachable: -1 black (ignored), 0 gray (a root), 1 normal.</summary>
    public virtual int MinCount { get => _minCount; set => _minCount = value; }

    public virtual bool NoScan { get => _noScan; set => _noScan = value; }

    /// <summary>Whether this is still the block tracked at its start (not freed, not replaced): a scan's leaks are checked again before they are reported.</summary>
    public virtual bool StillTracked(Kmemleak kmemleak) => kmemleak.Holds(this);

    public ulong End => Start + Size;
}
