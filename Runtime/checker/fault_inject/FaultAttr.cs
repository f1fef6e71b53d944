using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// One fault-injection point's knobs (struct fault_attr, Documentation/fault-injection): the files
/// under /sys/kernel/debug/failslab or fail_page_alloc. Set them in place, as echoing into those
/// files: <c>m.FailSlab.Probability = 100</c>. The defaults are the kernel's: probability 0 (off),
/// interval 1, times 1, space 0, verbose 2, ignore-gfp-wait on (so allocations that may sleep are
/// never failed until it is turned off), and for fail_page_alloc ignore-gfp-highmem on and min-order 1.
/// Random decisions come from <see cref="Seed"/>: the same seed and the same calls give the same failures.
/// </summary>
public sealed class FaultAttr
{
    /// <summary>At most this many messages are kept (the kernel rate-limits its own).</summary>
    public const int MaxMessages = 1000;

    private readonly object _gate = new();
    private readonly List<string> _messages = new();
    private int _probability;
    private ulong _interval = 1;
    private int _times = 1;
    private int _space;
    private int _verbose = 2;
    private int _minOrder;
    private ulong _seed;
    private ulong _random;
    private ulong _count;
    private long _failures;

    private readonly StrongBox<int> _armedPoints;

    /// <param name="armedPoints">Counts the points with a probability (shared by a machine's points).</param>
    internal FaultAttr(string name, bool ignoreGfpHighmem, int minOrder, StrongBox<int> armedPoints)
    {
        _armedPoints = armedPoints;
        Name = name;
        IgnoreGfpHighmem = ignoreGfpHighmem;
        _minOrder = minOrder;
        Seed = 0;
    }

    /// <summary>failslab or fail_page_alloc.</summary>
    public string Name { get; }

    /// <summary>Percent chance (0..100) that a call which passed every other knob fails; 0 turns the point off.</summary>
    public int Probability
    {
        get => Volatile.Read(ref _probability);
        set
        {
            if (value is < 0 or > 100) throw new ArgumentOutOfRangeException(nameof(Probability), value, "probability is a percentage, 0 to 100.");
            int old = Interlocked.Exchange(ref _probability, value);
            if ((old == 0) != (value == 0)) Interlocked.Add(ref _armedPoints.Value, value != 0 ? 1 : -1);
        }
    }

    /// <summary>Only every interval-th eligible call may fail (0 and 1: every call).</summary>
    public ulong Interval
    {
        get { lock (_gate) return _interval; }
        set { lock (_gate) _interval = value; }
    }

    /// <summary>How many more failures may be injected; -1 is no limit. Each injected failure counts it down, as the kernel's does.</summary>
    public int Times
    {
        get => Volatile.Read(ref _times);
        set
        {
            if (value < -1) throw new ArgumentOutOfRangeException(nameof(Times), value, "times is -1 (no limit) or a count of failures.");
            Volatile.Write(ref _times, value);
        }
    }

    /// <summary>
    /// A budget spent before failures start: each eligible call's size is taken from it while it is
    /// larger than that size. failslab counts bytes (the cache's object size), fail_page_alloc pages (1 &lt;&lt; order).
    /// </summary>
    public int Space
    {
        get => Volatile.Read(ref _space);
        set
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(Space), value, "space is a budget: 0 or more.");
            Volatile.Write(ref _space, value);
        }
    }

    /// <summary>ignore-gfp-wait: allocations that may sleep (__GFP_DIRECT_RECLAIM, e.g. GFP_KERNEL) are never failed.</summary>
    public bool IgnoreGfpWait { get; set; } = true;

    /// <summary>ignore-gfp-highmem (fail_page_alloc only): __GFP_HIGHMEM page allocations are never failed.</summary>
    public bool IgnoreGfpHighmem { get; set; }

    /// <summary>min-order (fail_page_alloc only): page allocations of a lower order are never failed.</summary>
    public int MinOrder
    {
        get => Volatile.Read(ref _minOrder);
        set
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(MinOrder), value, "min-order is 0 or more.");
            Volatile.Write(ref _minOrder, value);
        }
    }

    /// <summary>Seeds the random choices made for <see cref="Probability"/>; setting it restarts the sequence.</summary>
    public ulong Seed
    {
        get { lock (_gate) return _seed; }
        set
        {
            lock (_gate)
            {
                _seed = value;
                _random = value;
            }
        }
    }

    /// <summary>0: silent; 1: a "FAULT_INJECTION: forcing a failure." message per failure; 2 (default): with the stack.</summary>
    public int Verbose
    {
        get => Volatile.Read(ref _verbose);
        set
        {
            if (value is < 0 or > 2) throw new ArgumentOutOfRangeException(nameof(Verbose), value, "verbose is 0, 1 or 2.");
            Volatile.Write(ref _verbose, value);
        }
    }

    /// <summary>Failures injected so far.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>The messages the kernel would print for the injected failures, oldest first (at most <see cref="MaxMessages"/>).</summary>
    public IReadOnlyList<string> Messages
    {
        get { lock (_gate) return _messages.ToArray(); }
    }

    /// <summary>
    /// should_fail_ex (lib/fault-inject.c) after the point's own filters: fail-nth first, then
    /// probability, times, space, interval and the random draw, in the kernel's order.
    /// </summary>
    internal bool ShouldFail(FaultInjection injection, KTask task, ulong size, bool noWarn)
    {
        if (injection.ConsumeFailNth(task, out bool failNow))
        {
            if (!failNow) return false;
            lock (_gate) return Fail(task, noWarn);
        }
        if (Probability == 0) return false;
        lock (_gate)
        {
            if (_times == 0) return false;
            if ((ulong)(uint)_space > size)
            {
                _space -= (int)size;
                return false;
            }
            if (_interval > 1 && ++_count % _interval != 0) return false;
            if ((ulong)_probability <= NextRandom() % 100) return false;
            return Fail(task, noWarn);
        }
    }

    private bool Fail(KTask task, bool noWarn)
    {
        if (!noWarn && _verbose > 0 && _messages.Count < MaxMessages) _messages.Add(Dump(task));
        if (_times != -1 && _times != 0) _times--;
        _failures++;
        return true;
    }

    /// <summary>fail_dump's text, printed before times is counted down.</summary>
    private string Dump(KTask task)
    {
        var text = new StringBuilder("FAULT_INJECTION: forcing a failure.\n");
        text.Append("name ").Append(Name).Append(", interval ").Append(_interval).Append(", probability ").Append(_probability)
            .Append(", space ").Append(_space).Append(", times ").Append(_times).Append('\n');
        if (_verbose > 1)
        {
            KasanReport.AppendCpuLine(text, task);
            text.Append("Call Trace:\n").Append(StackDepot.Walk());
        }
        return text.ToString();
    }

    /// <summary>SplitMix64: small, and the same sequence on every runtime for a seed.</summary>
    private ulong NextRandom()
    {
        ulong z = _random += 0x9e3779b97f4a7c15;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }

    public override string ToString() =>
        $"{Name}: probability {Probability}, interval {Interval}, times {Times}, space {Space}, ignore-gfp-wait {(IgnoreGfpWait ? 'Y' : 'N')}";
}
