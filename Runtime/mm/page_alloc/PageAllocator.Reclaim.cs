using System;
using System.Diagnostics;
using System.Text;
using System.Threading;

namespace KmemGuard;

internal sealed partial class PageAllocator
{
    private readonly object _shrinkerGate = new();
    private Func<long, long>[] _shrinkers = Array.Empty<Func<long, long>>();

    private readonly object _freeWait = new();
    private int _waiters;
    private long _freeGeneration;

    /// <summary>
    /// register_shrinker: <paramref name="scan"/> gets the number of pages reclaim wants and
    /// returns how many it gave back to the page allocator (the slab hands back empty slabs).
    /// Shrinkers run in the allocating task's context, which may sleep, with no allocator lock held.
    /// </summary>
    public void RegisterShrinker(Func<long, long> scan)
    {
        ArgumentNullException.ThrowIfNull(scan);
        lock (_shrinkerGate)
        {
            var grown = new Func<long, long>[_shrinkers.Length + 1];
            _shrinkers.CopyTo(grown, 0);
            grown[^1] = scan;
            Volatile.Write(ref _shrinkers, grown);
        }
    }

    /// <summary>Direct reclaim (shrink_slab + drain_all_pages). Returns the pages the shrinkers freed.</summary>
    public long Reclaim(long wantedPages)
    {
        long freed = 0;
        foreach (Func<long, long> scan in Volatile.Read(ref _shrinkers))
        {
            if (freed >= wantedPages) break;
            freed += Math.Max(0, scan(wantedPages - freed));
        }
        DrainAllPages();
        return freed;
    }

    /// <summary>
    /// __alloc_pages_slowpath: the min watermark (less for __GFP_HIGH / __GFP_ATOMIC); a mask that
    /// may not sleep stops there. One that may sleep reclaims, retries and waits for frees up to
    /// MachineOptions.ReclaimTimeout; __GFP_NORETRY and costly orders without __GFP_RETRY_MAYFAIL
    /// give up after one reclaim pass; __GFP_NOFAIL retries until it succeeds.
    /// </summary>
    private page? AllocSlowPath(gfp_t gfp, int order, int preferredNode, KTask task)
    {
        AllocFlags flags = SlowPathFlags(gfp);
        page? block = GetPageFromFreelist(gfp, order, preferredNode, flags, task);
        if (block != null || (gfp & Kernel.__GFP_DIRECT_RECLAIM) == 0) return block;

        bool noFail = (gfp & Kernel.__GFP_NOFAIL) != 0;
        bool onePass = !noFail && ((gfp & Kernel.__GFP_NORETRY) != 0
            || (order > Kernel.PAGE_ALLOC_COSTLY_ORDER && (gfp & Kernel.__GFP_RETRY_MAYFAIL) == 0));
        if (noFail) flags |= AllocFlags.Harder;
        long timeout = (long)(_machine.Options.ReclaimTimeout.TotalSeconds * Stopwatch.Frequency);
        long deadline = Stopwatch.GetTimestamp() + timeout;
        Interlocked.Increment(ref _waiters);
        try
        {
            while (!_machine.IsShutDown)
            {
                long generation = Volatile.Read(ref _freeGeneration);
                Reclaim(1L << order);
                block = GetPageFromFreelist(gfp, order, preferredNode, flags, task);
                if (block != null || onePass) return block;
                long now = Stopwatch.GetTimestamp();
                if (!noFail && now >= deadline) return null;
                WaitForFree(generation, noFail ? Math.Max(timeout, Stopwatch.Frequency / 1000) : deadline - now);
            }
            return null;
        }
        finally
        {
            Interlocked.Decrement(ref _waiters);
        }
    }

    private void WaitForFree(long generation, long timeoutTicks)
    {
        long until = Stopwatch.GetTimestamp() + timeoutTicks;
        lock (_freeWait)
        {
            while (_freeGeneration == generation)
            {
                long left = until - Stopwatch.GetTimestamp();
                if (left <= 0) return;
                Monitor.Wait(_freeWait, TimeSpan.FromSeconds((double)left / Stopwatch.Frequency));
            }
        }
    }

    /// <summary>Wakes allocations waiting in reclaim; costs a read when none waits.</summary>
    private void WakeAllocators()
    {
        if (Volatile.Read(ref _waiters) == 0) return;
        lock (_freeWait)
        {
            _freeGeneration++;
            Monitor.PulseAll(_freeWait);
        }
    }

    /// <summary>warn_alloc: "page allocation failure: order:N, mode:0x..(GFP_...)", the task, the stack and the zones.</summary>
    private void WarnAllocFailure(gfp_t gfp, int order, KTask task)
    {
        var text = new StringBuilder();
        text.Append(task.Comm).Append(": page allocation failure: order:").Append(order)
            .Append(", mode:").Append(GfpNames.Format(gfp)).Append(", nodemask=(null)\n");
        KasanReport.AppendCpuLine(text, task);
        text.Append("Call Trace:\n").Append(StackDepot.Walk());
        text.Append("Mem-Info:\n");
        foreach (Zone zone in _ram.Zones)
        {
            text.Append("Node ").Append(zone.Node.Id).Append(' ').Append(zone.Name)
                .Append(" free:").Append(Volatile.Read(ref zone.FreePages) << (Kernel.PAGE_SHIFT - 10)).Append("kB")
                .Append(" min:").Append(zone.WatermarkMin << (Kernel.PAGE_SHIFT - 10)).Append("kB")
                .Append(" low:").Append(zone.WatermarkLow << (Kernel.PAGE_SHIFT - 10)).Append("kB")
                .Append(" high:").Append(zone.WatermarkHigh << (Kernel.PAGE_SHIFT - 10)).Append("kB")
                .Append(" managed:").Append(Volatile.Read(ref zone.ManagedPages) << (Kernel.PAGE_SHIFT - 10)).Append("kB\n");
        }
        _machine.Warn(text.ToString());
    }
}
