using System.Threading;

namespace KmemGuard;

/// <summary>
/// One CPU's list of free order-0 pages of one zone (struct per_cpu_pages): hot pages at the
/// head, cold ones at the tail. Only the CPU's owner touches it, so it needs no lock.
/// </summary>
internal sealed class PerCpuPages
{
    public page? First, Last;
    public int Count;

    /// <summary>When Count reaches High, Batch pages go back to the buddy lists.</summary>
    public int High;

    /// <summary>How many pages move between the buddy lists and this list at a time.</summary>
    public int Batch = 1;

    public void PushHot(page p)
    {
        p.Prev = null;
        p.Next = First;
        if (First != null) First.Prev = p;
        else Last = p;
        First = p;
        Count++;
    }

    public void PushCold(page p)
    {
        p.Next = null;
        p.Prev = Last;
        if (Last != null) Last.Next = p;
        else First = p;
        Last = p;
        Count++;
    }

    public page? PopHot()
    {
        page? p = First;
        if (p == null) return null;
        First = p.Next;
        if (First != null) First.Prev = null;
        else Last = null;
        p.Next = null;
        Count--;
        return p;
    }

    public page? PopCold()
    {
        page? p = Last;
        if (p == null) return null;
        Last = p.Prev;
        if (Last != null) Last.Next = null;
        else First = null;
        p.Prev = null;
        Count--;
        return p;
    }
}

internal sealed partial class PageAllocator
{
    /// <summary>[zone index in Ram.Zones][cpu].</summary>
    private readonly PerCpuPages[][] _pcp;

    internal PerCpuPages PerCpuList(Zone zone, int cpu) => _pcp[ZoneIndex(zone)][cpu];

    private int ZoneIndex(Zone zone)
    {
        Zone[] zones = _ram.Zones;
        for (int i = 0; i < zones.Length; i++)
            if (ReferenceEquals(zones[i], zone)) return i;
        throw new System.ArgumentException("The zone is not one of this machine's.", nameof(zone));
    }

    /// <summary>
    /// Makes the task non-preemptible on its CPU (preempt_disable), so that it alone touches that
    /// CPU's lists. Returns whether it took the CPU (and so must release it).
    /// </summary>
    private bool PinCpu(KTask task)
    {
        bool take = !task.OwnsCpu;
        if (take) _machine.Scheduler.TakeCpu(task);
        task.PreemptCount++;
        return take;
    }

    private void UnpinCpu(KTask task, bool taken)
    {
        task.PreemptCount--;
        if (taken) _machine.Scheduler.ReleaseCpu(task);
    }

    /// <summary>rmqueue_pcplist: an order-0 page from this CPU's list, refilled with a batch from the buddy lists when empty.</summary>
    private page? TakeFromPerCpu(Zone zone, int zoneIndex, bool cold, KTask task)
    {
        bool tookCpu = PinCpu(task);
        try
        {
            PerCpuPages pcp = _pcp[zoneIndex][task.CpuId];
            if (pcp.Count == 0)
            {
                lock (zone.Lock)
                {
                    for (int i = 0; i < pcp.Batch; i++)
                    {
                        page? p = TakeBlockLocked(zone, 0);
                        if (p == null) break;
                        p.Flags |= PageFlags.PerCpuList;
                        pcp.PushCold(p);
                    }
                }
            }
            page? taken = cold ? pcp.PopCold() : pcp.PopHot();
            if (taken != null) Interlocked.Decrement(ref zone.FreePages);
            return taken;
        }
        finally
        {
            UnpinCpu(task, tookCpu);
        }
    }

    /// <summary>free_unref_page: an order-0 page onto this CPU's list; over High, a batch of the coldest goes back to the buddy lists.</summary>
    private void GiveToPerCpu(page p, bool cold, KTask task)
    {
        Zone zone = p.Zone;
        int zoneIndex = ZoneIndex(zone);
        bool tookCpu = PinCpu(task);
        try
        {
            PerCpuPages pcp = _pcp[zoneIndex][task.CpuId];
            p.Flags |= PageFlags.PerCpuList;
            if (cold) pcp.PushCold(p);
            else pcp.PushHot(p);
            Interlocked.Increment(ref zone.FreePages);
            if (pcp.Count >= pcp.High) ReturnToBuddy(zone, pcp, pcp.Batch);
        }
        finally
        {
            UnpinCpu(task, tookCpu);
        }
    }

    /// <summary>free_pcppages_bulk: the coldest <paramref name="count"/> pages back to the buddy lists (they stay free).</summary>
    private void ReturnToBuddy(Zone zone, PerCpuPages pcp, int count)
    {
        lock (zone.Lock)
        {
            for (int i = 0; i < count; i++)
            {
                page? p = pcp.PopCold();
                if (p == null) break;
                p.Flags &= ~PageFlags.PerCpuList;
                FreeBlockLocked(p, 0);
            }
        }
    }

    /// <summary>
    /// drain_all_pages: every CPU's lists back to the buddy lists. A CPU that another task holds
    /// non-preemptibly is skipped (its owner may be waiting for this task): reclaim is best effort.
    /// </summary>
    public void DrainAllPages()
    {
        KTask task = _machine.CurrentTask;
        foreach (Cpu cpu in _machine.Cpus)
        {
            bool taken = false;
            if (!ReferenceEquals(Volatile.Read(ref cpu.Owner), task))
            {
                if (Interlocked.CompareExchange(ref cpu.Owner, task, null) != null) continue;
                taken = true;
            }
            try
            {
                for (int z = 0; z < _pcp.Length; z++)
                {
                    PerCpuPages pcp = _pcp[z][cpu.Id];
                    if (pcp.Count > 0) ReturnToBuddy(_ram.Zones[z], pcp, pcp.Count);
                }
            }
            finally
            {
                if (taken) Volatile.Write(ref cpu.Owner, null);
            }
        }
    }

    /// <summary>Free pages on the per-CPU lists of one zone (they count as free, but buddyinfo does not show them).</summary>
    internal long PerCpuFreePages(Zone zone)
    {
        long total = 0;
        foreach (PerCpuPages pcp in _pcp[ZoneIndex(zone)]) total += Volatile.Read(ref pcp.Count);
        return total;
    }
}
