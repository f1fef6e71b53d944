using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// A machine's fault-injection points (mm/failslab.c, mm/fail_page_alloc.c) and its tasks'
/// fail-nth counters. The allocators ask <see cref="Machine.ShouldFailSlab"/> and
/// <see cref="Machine.ShouldFailPage"/> first thing; while no point is on and no task has a
/// fail-nth, that costs one check.
/// </summary>
internal sealed class FaultInjection
{
    private readonly Dictionary<KTask, int> _failNth = new(ReferenceEqualityComparer.Instance);
    private int _tasksWithFailNth;

    // Points with a probability plus tasks with a fail-nth running: every allocation reads it, so one word.
    private readonly StrongBox<int> _armed = new();

    public FaultInjection()
    {
        FailSlab = new FaultAttr("failslab", ignoreGfpHighmem: false, minOrder: 0, _armed);
        FailPageAlloc = new FaultAttr("fail_page_alloc", ignoreGfpHighmem: true, minOrder: 1, _armed);
    }

    public FaultAttr FailSlab { get; }

    public FaultAttr FailPageAlloc { get; }

    /// <summary>True when some call could fail: a point has a probability, or a task waits for its n-th call.</summary>
    public bool Armed => Machine.ChecksCompiledIn && Volatile.Read(ref _armed.Value) != 0;

    /// <summary>should_failslab: __GFP_NOFAIL never fails; ignore-gfp-wait spares allocations that may sleep.</summary>
    public bool ShouldFailSlab(KTask task, gfp_t gfp, ulong size)
    {
        if ((gfp & Kernel.__GFP_NOFAIL) != 0) return false;
        if (FailSlab.IgnoreGfpWait && (gfp & Kernel.__GFP_DIRECT_RECLAIM) != 0) return false;
        return FailSlab.ShouldFail(this, task, size, (gfp & Kernel.__GFP_NOWARN) != 0);
    }

    /// <summary>should_fail_alloc_page: min-order, __GFP_NOFAIL, ignore-gfp-highmem and ignore-gfp-wait filter first.</summary>
    public bool ShouldFailPage(KTask task, gfp_t gfp, int order)
    {
        FaultAttr attr = FailPageAlloc;
        if (order < attr.MinOrder) return false;
        if ((gfp & Kernel.__GFP_NOFAIL) != 0) return false;
        if (attr.IgnoreGfpHighmem && (gfp & Kernel.__GFP_HIGHMEM) != 0) return false;
        if (attr.IgnoreGfpWait && (gfp & Kernel.__GFP_DIRECT_RECLAIM) != 0) return false;
        return attr.ShouldFail(this, task, 1UL << order, (gfp & Kernel.__GFP_NOWARN) != 0);
    }

    public void SetFailNth(KTask task, int n)
    {
        lock (_failNth)
        {
            bool had = _failNth.TryGetValue(task, out int old) && old > 0;
            if (n > 0) _failNth[task] = n;
            else _failNth.Remove(task);
            if (had != n > 0)
            {
                Interlocked.Add(ref _tasksWithFailNth, n > 0 ? 1 : -1);
                Interlocked.Add(ref _armed.Value, n > 0 ? 1 : -1);
            }
        }
    }

    public int FailNthOf(KTask task)
    {
        lock (_failNth) return _failNth.TryGetValue(task, out int n) ? n : 0;
    }

    /// <summary>
    /// The fail-nth step of should_fail_ex: true when the task has a count running (the call is then
    /// decided by it alone), with <paramref name="failNow"/> set on the n-th call. Only in task
    /// context: an interrupt handler does not spend the interrupted task's count.
    /// </summary>
    public bool ConsumeFailNth(KTask task, out bool failNow)
    {
        failNow = false;
        if (Volatile.Read(ref _tasksWithFailNth) == 0) return false;
        if ((task.PreemptCount & (KTask.HardirqMask | KTask.SoftirqOffset)) != 0) return false;
        lock (_failNth)
        {
            if (!_failNth.TryGetValue(task, out int n) || n == 0) return false;
            if (--n > 0)
            {
                _failNth[task] = n;
                return true;
            }
            _failNth.Remove(task);
            Interlocked.Decrement(ref _tasksWithFailNth);
            Interlocked.Decrement(ref _armed.Value);
            failNow = true;
            return true;
        }
    }
}
