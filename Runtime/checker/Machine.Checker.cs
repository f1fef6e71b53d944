using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

// The checker's parts of the machine: kmemleak and fault injection. Both start lazily, so that
// nothing of them runs at boot.
public sealed partial class Machine
{
    private Kmemleak? _kmemleak;
    private readonly FaultInjection _faultInjection = new();

    /// <summary>
    /// The machine's kmemleak, created on first use. The allocators reach it through
    /// <see cref="KmemleakAlloc"/> and <see cref="KmemleakFree"/>; the per-CPU and bootmem code
    /// registers its root areas with <c>Kmemleak.AddScanAreaProvider</c> when kmemleak is on.
    /// </summary>
    internal Kmemleak Kmemleak
    {
        get
        {
            Kmemleak? leaks = Volatile.Read(ref _kmemleak);
            if (leaks != null) return leaks;
            Interlocked.CompareExchange(ref _kmemleak, new Kmemleak(this), null);
            return _kmemleak!;
        }
    }

    /// <summary>
    /// kmemleak_alloc for the allocators: call it once the block is ready to hand out, with the
    /// size kmemleak should scan and report. One flag test when kmemleak is off.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void KmemleakAlloc(ulong start, ulong size, MemoryFamily family, string? cacheName, Track alloc)
    {
        if (IsChecking(Checks.Kmemleak)) Kmemleak.Track(start, size, family, cacheName, alloc);
    }

    /// <summary>
    /// kmemleak_free for the allocators: call it before the block goes back to a free list, so that
    /// a block another thread gets at the same address is never the one forgotten.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void KmemleakFree(ulong start)
    {
        if (IsChecking(Checks.Kmemleak)) Kmemleak.Untrack(start);
    }

    /// <summary>
    /// As <c>echo clear &gt; /sys/kernel/debug/kmemleak</c>: the blocks the last scan reported are
    /// not reported again (they become gray: still scanned, never a leak). Blocks allocated later
    /// are reported as usual, so a test can clear what setup left and scan for what it does itself.
    /// </summary>
    public void ClearLeaks()
    {
        RequireKmemleak(nameof(ClearLeaks));
        Kmemleak.Clear();
    }

    private void RequireKmemleak(string caller)
    {
        ThrowIfDisposed();
        if (!IsChecking(Checks.Kmemleak))
            throw new InvalidOperationException($"{caller}: kmemleak is off on this machine (boot it with Checks.Kmemleak in MachineOptions.Checks).");
    }

    /// <summary>
    /// Runs a kmemleak scan (as <c>echo scan &gt; /sys/kernel/debug/kmemleak</c>) and returns what it
    /// reads back: a <see cref="BugKind.Leak"/> report for every block that nothing reachable points
    /// into. The roots stand for the kernel's data sections: the given objects (their KPtr and 64-bit
    /// integer fields, arrays, collections and nested objects; a <see cref="Type"/> for its static
    /// fields), then the per-CPU areas and bootmem, then every block reachable from them through
    /// pointers stored in simulated memory. Leaks are returned, not thrown and not added to
    /// <see cref="Reports"/>: kmemleak writes to its debugfs file, not to the console.
    /// </summary>
    /// <exception cref="InvalidOperationException">kmemleak is off (<see cref="Checks.Kmemleak"/> is not in the machine's checks): no block was tracked, so a scan could only wrongly say "no leaks".</exception>
    public IReadOnlyList<KernelBugReport> ScanLeaks(params object[] roots)
    {
        RequireKmemleak(nameof(ScanLeaks));
        return Kmemleak.Scan(roots ?? Array.Empty<object>());
    }

    /// <summary>failslab (/sys/kernel/debug/failslab): fails slab allocations (kmalloc, kmem_cache_alloc) on demand.</summary>
    public FaultAttr FailSlab => _faultInjection.FailSlab;

    /// <summary>fail_page_alloc (/sys/kernel/debug/fail_page_alloc): fails page allocations on demand.</summary>
    public FaultAttr FailPageAlloc => _faultInjection.FailPageAlloc;

    /// <summary>
    /// As writing <paramref name="n"/> to /proc/self/fail-nth: the calling task's n-th next
    /// allocation that reaches a fault-injection point (failslab or fail_page_alloc, after their
    /// filters) fails. 0 cancels.
    /// </summary>
    public void SetFailNth(int n)
    {
        ThrowIfDisposed();
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), n, "fail-nth is a count of calls: 0 or more.");
        _faultInjection.SetFailNth(CurrentTask, n);
    }

    /// <summary>As reading /proc/self/fail-nth: 0 once the failure was injected, else the calls still to go.</summary>
    public int FailNth => _faultInjection.FailNthOf(CurrentTask);

    /// <summary>should_failslab: the slab allocator calls this first; true means return NULL. Costs one check when fault injection is unused.</summary>
    internal bool ShouldFailSlab(gfp_t gfp, ulong size) => _faultInjection.Armed && _faultInjection.ShouldFailSlab(CurrentTask, gfp, size);

    /// <summary>should_fail_alloc_page: the page allocator calls this first; true means return NULL.</summary>
    internal bool ShouldFailPage(gfp_t gfp, int order) => _faultInjection.Armed && _faultInjection.ShouldFailPage(CurrentTask, gfp, order);
}
