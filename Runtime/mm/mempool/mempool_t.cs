using System;
using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

/// <summary>The backing allocator of a pool (mempool_alloc_t).</summary>
public delegate KPtr mempool_alloc_t(gfp_t gfp_mask, object? pool_data);

/// <summary>The backing free of a pool (mempool_free_t).</summary>
public delegate void mempool_free_t(KPtr element, object? pool_data);

/// <summary>
/// A memory pool (mm/mempool.c): min_nr elements kept in reserve so that an allocation can
/// succeed when the backing allocator cannot, and that waits for a freed element when it may
/// sleep.
/// </summary>
public sealed class mempool_t : IKmemleakScanned
{
    /// <summary>How long a sleeping mempool_alloc waits for a free before it tries the backing allocator again (the kernel waits 5 s).</summary>
    private static readonly TimeSpan s_retryInterval = TimeSpan.FromMilliseconds(50);

    private readonly object _lock = new();
    private KPtr[] _elements;
    private int _currNr;
    private long _out;

    internal mempool_t(Machine machine, int minNr, mempool_alloc_t alloc, mempool_free_t free, object? poolData)
    {
        Machine = machine;
        MinNr = minNr;
        _elements = new KPtr[minNr];
        Alloc = alloc;
        Free = free;
        PoolData = poolData;
    }

    internal Machine Machine { get; }
    internal int MinNr { get; private set; }
    internal mempool_alloc_t Alloc { get; }
    internal mempool_free_t Free { get; }
    internal object? PoolData { get; }
    internal bool Destroyed { get; private set; }

    /// <summary>Elements in reserve (pool->curr_nr).</summary>
    internal int CurrNr => Volatile.Read(ref _currNr);

    /// <summary>Elements handed out and not yet freed back.</summary>
    internal long Outstanding => Interlocked.Read(ref _out);

    private bool Tracking => Machine.IsChecking(Checks.Frees);

    /// <summary>The reserve is the pool's memory: a driver that holds the pool holds its elements (kmemleak).</summary>
    IEnumerable<ulong> IKmemleakScanned.KernelPointers
    {
        get
        {
            KPtr[] reserve;
            lock (_lock) reserve = _elements[.._currNr];
            foreach (KPtr element in reserve) yield return element.Address;
        }
    }

    internal void ThrowIfDestroyed(string function)
    {
        if (Destroyed) throw new ObjectDisposedException(nameof(mempool_t), $"{function}: the pool has been destroyed by mempool_destroy.");
    }

    /// <summary>Fills the reserve up to min_nr at creation; false when the backing allocator failed.</summary>
    internal bool Prefill(gfp_t gfp)
    {
        while (_currNr < MinNr)
        {
            KPtr element = Alloc(gfp, PoolData);
            if (element.IsNull) return false;
            _elements[_currNr++] = element;
        }
        return true;
    }

    /// <summary>mempool_alloc: the backing allocator without sleeping, then the reserve, then (if the mask may sleep) wait for a free.</summary>
    internal KPtr Allocate(gfp_t gfpMask)
    {
        gfpMask |= Kernel.__GFP_NOMEMALLOC | Kernel.__GFP_NORETRY | Kernel.__GFP_NOWARN;
        gfp_t gfpTemp = gfpMask & ~(Kernel.__GFP_DIRECT_RECLAIM | Kernel.__GFP_IO);
        while (true)
        {
            KPtr element = Alloc(gfpTemp, PoolData);
            if (!element.IsNull) return HandOut(element);
            lock (_lock)
            {
                if (_currNr > 0)
                {
                    element = _elements[--_currNr];
                    _elements[_currNr] = default;
                    return HandOut(element);
                }
                // The reserve is empty: try the backing allocator once more with the caller's own mask.
                if (gfpTemp != gfpMask)
                {
                    gfpTemp = gfpMask;
                    continue;
                }
                if (!Kernel.gfpflags_allow_blocking(gfpMask)) return Kernel.NULL;
                Monitor.Wait(_lock, s_retryInterval);
            }
        }
    }

    private KPtr HandOut(KPtr element)
    {
        Interlocked.Increment(ref _out);
        if (Tracking) Machine.MempoolElements[element.Address] = this;
        return element;
    }

    /// <summary>mempool_free: refill the reserve first (waking a waiter), else give the element to the backing allocator.</summary>
    internal void Release(KPtr element)
    {
        if (Tracking && !CheckOwnership(element)) return;
        Interlocked.Decrement(ref _out);
        if (Volatile.Read(ref _currNr) < MinNr)
        {
            lock (_lock)
            {
                if (_currNr < MinNr)
                {
                    _elements[_currNr++] = element;
                    Monitor.PulseAll(_lock);
                    return;
                }
            }
        }
        Free(element, PoolData);
    }

    /// <summary>The element must be one this pool handed out: reported (and not freed) otherwise.</summary>
    private bool CheckOwnership(KPtr element)
    {
        if (Machine.MempoolElements.TryGetValue(element.Address, out mempool_t? owner) && owner == this)
        {
            Machine.MempoolElements.TryRemove(element.Address, out _);
            return true;
        }
        ObjectInfo? info = Machine.Memory.Describe(element.Address);
        if (owner != null)
            FreeReport.Mismatched(Machine, "mempool_free", element.Address, info, "mempool_free: the element belongs to another mempool");
        else
            FreeReport.Mismatched(Machine, "mempool_free", element.Address, info, "mempool_free: the element was not handed out by this mempool (or was already freed to it)");
        return false;
    }

    /// <summary>mempool_resize: shrinking frees reserve elements beyond the new minimum, growing preallocates with <paramref name="gfpMask"/>.</summary>
    internal int Resize(int newMinNr, gfp_t gfpMask)
    {
        KPtr[] surplus;
        lock (_lock)
        {
            if (newMinNr <= MinNr)
            {
                int extra = Math.Max(_currNr - newMinNr, 0);
                surplus = new KPtr[extra];
                for (int i = 0; i < extra; i++)
                {
                    surplus[i] = _elements[--_currNr];
                    _elements[_currNr] = default;
                }
                var smaller = new KPtr[newMinNr];
                Array.Copy(_elements, smaller, _currNr);
                _elements = smaller;
                MinNr = newMinNr;
            }
            else
            {
                surplus = Array.Empty<KPtr>();
                var larger = new KPtr[newMinNr];
                Array.Copy(_elements, larger, _currNr);
                _elements = larger;
                MinNr = newMinNr;
            }
        }
        foreach (KPtr element in surplus) Free(element, PoolData);
        while (true)
        {
            lock (_lock)
                if (_currNr >= MinNr) return 0;
            KPtr element = Alloc(gfpMask, PoolData);
            if (element.IsNull) return -12; // -ENOMEM: the pool keeps what it has
            bool added = false;
            lock (_lock)
            {
                if (_currNr < MinNr)
                {
                    _elements[_currNr++] = element;
                    added = true;
                }
            }
            if (!added)
            {
                Free(element, PoolData);
                return 0;
            }
        }
    }

    /// <summary>mempool_destroy: the reserve goes back to the backing allocator. Returns the elements still out.</summary>
    internal long Destroy()
    {
        KPtr[] reserve;
        lock (_lock)
        {
            Destroyed = true;
            reserve = _elements[.._currNr];
            _currNr = 0;
        }
        foreach (KPtr element in reserve) Free(element, PoolData);
        return Outstanding;
    }
}
