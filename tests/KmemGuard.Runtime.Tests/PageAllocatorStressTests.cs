using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class PageAllocatorStressTests
{
    private enum FrameState : byte { Unseen, Reserved, Buddy, PerCpu, InUse }

    private static readonly gfp_t[] s_masks =
    {
        GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT, GFP_KERNEL | __GFP_ZERO, GFP_KERNEL | __GFP_COLD,
        GFP_KERNEL | GFP_DMA, GFP_ATOMIC | GFP_DMA32, GFP_USER | __GFP_NOWARN, GFP_HIGHUSER,
    };

    [Fact]
    public void Four_cpus_of_random_page_traffic_leave_every_frame_accounted_for()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 4, OnBug = BugAction.Throw, ReclaimTimeout = TimeSpan.FromMilliseconds(50) });
        var (held, _) = RunWorkers(m, operations: 6000, maxHeld: 64);
        AssertEveryFrameAccountedFor(m, held);

        foreach (var list in held)
            foreach (var (p, order, stamp) in list)
            {
                Assert.Equal(stamp, page_address(p).Read<ulong>());
                __free_pages(p, order);
            }
        m.PageAllocator.DrainAllPages();
        Assert.Equal(m.PageAllocator.ManagedPages, m.PageAllocator.FreePages);
        Assert.Equal(m.PageAllocator.ManagedPages, PageAllocatorTests.BuddyinfoPages(m));
        foreach (Zone zone in m.Ram.Zones)
            Assert.Equal((long)zone.SpannedPages >> MAX_ORDER, zone.FreeAreas[MAX_ORDER].Count);
    }

    [Fact]
    public void Under_memory_pressure_reclaim_drains_other_cpus_lists_safely()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 4, ReclaimTimeout = TimeSpan.FromMilliseconds(2) });
        var (held, failures) = RunWorkers(m, operations: 3000, maxHeld: 700);
        Assert.True(failures > 0, "the test must run the machine out of memory");
        AssertEveryFrameAccountedFor(m, held);
    }

    /// <summary>free (buddy + per-CPU) + in use = managed, each frame in exactly one state, and buddyinfo agrees with the buddy lists.</summary>
    private static void AssertEveryFrameAccountedFor(Machine m, List<(page Page, int Order, ulong Stamp)>[] held)
    {
        long stillHeld = held.Sum(list => list.Sum(h => 1L << h.Order));
        Assert.Equal(m.PageAllocator.ManagedPages, m.PageAllocator.FreePages + stillHeld);
        FrameState[] states = Audit(m, held.SelectMany(l => l.Select(h => (h.Page, h.Order))));
        Assert.DoesNotContain(FrameState.Unseen, states);
        Assert.Equal(stillHeld, states.Count(s => s == FrameState.InUse));
        Assert.Equal(m.PageAllocator.FreePages, states.Count(s => s is FrameState.Buddy or FrameState.PerCpu));
        Assert.Equal(states.Count(s => s == FrameState.Buddy), PageAllocatorTests.BuddyinfoPages(m));
    }

    /// <summary>Runs <see cref="Work"/> on four threads (four tasks, one per CPU); returns what each still holds and how many allocations failed.</summary>
    private static (List<(page Page, int Order, ulong Stamp)>[] Held, int Failures) RunWorkers(Machine m, int operations, int maxHeld)
    {
        const int Threads = 4;
        var held = new List<(page Page, int Order, ulong Stamp)>[Threads];
        var errors = new List<Exception>();
        int failures = 0;
        var workers = new Thread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            int id = t;
            held[id] = new List<(page, int, ulong)>();
            workers[t] = new Thread(() =>
            {
                try
                {
                    Interlocked.Add(ref failures, Work(id, held[id], operations, maxHeld));
                }
                catch (Exception e)
                {
                    lock (errors) errors.Add(e);
                }
            }) { Name = $"stress{id}" };
        }
        foreach (Thread w in workers) w.Start();
        foreach (Thread w in workers) w.Join();
        Assert.Empty(errors);
        Assert.Empty(m.Reports);
        return (held, failures);
    }

    /// <summary>Random allocations and frees; returns how many allocations failed.</summary>
    private static int Work(int id, List<(page Page, int Order, ulong Stamp)> mine, int operations, int maxHeld)
    {
        var random = new Random(1234 + id);
        int failures = 0;
        for (int i = 0; i < operations; i++)
        {
            if (mine.Count < maxHeld && (mine.Count == 0 || random.Next(3) != 0))
            {
                int order = random.Next(4);
                gfp_t gfp = s_masks[random.Next(s_masks.Length)] | __GFP_NOWARN;
                page? p = alloc_pages(gfp, order);
                if (p == null)
                {
                    failures++;
                    continue;
                }
                KPtr va = page_address(p);
                if ((gfp & __GFP_ZERO) != 0 && va.Read<ulong>((PAGE_SIZE << order) - 8) != 0) throw new InvalidOperationException("__GFP_ZERO page not zeroed");
                if ((gfp & __GFP_DMA) != 0 && p.Zone.Type != ZoneType.DMA) throw new InvalidOperationException("GFP_DMA page outside ZONE_DMA");
                ulong stamp = ((ulong)(uint)id << 56) | (uint)i;
                va.Write(0, stamp);
                va.Write((PAGE_SIZE << order) - 8, stamp);
                mine.Add((p, order, stamp));
            }
            else
            {
                int index = random.Next(mine.Count);
                var (p, order, stamp) = mine[index];
                mine[index] = mine[^1];
                mine.RemoveAt(mine.Count - 1);
                KPtr va = page_address(p);
                if (va.Read<ulong>() != stamp || va.Read<ulong>((PAGE_SIZE << order) - 8) != stamp)
                    throw new InvalidOperationException($"block {p} was handed out twice: stamp {va.Read<ulong>():x} != {stamp:x}");
                switch (order == 0 ? random.Next(4) : random.Next(2))
                {
                    case 0: __free_pages(p, order); break;
                    case 1: free_pages((ulong)va, order); break;
                    case 2: free_hot_page(p); break;
                    default: free_cold_page(p); break;
                }
            }
        }
        return failures;
    }

    /// <summary>Marks every frame by what holds it: reserved, a buddy block, a CPU's list, or a held block. A frame seen twice fails.</summary>
    private static FrameState[] Audit(Machine m, IEnumerable<(page Page, int Order)> inUse)
    {
        var states = new FrameState[m.Ram.TotalPages];
        void Mark(ulong pfn, FrameState state)
        {
            Assert.True(states[pfn] == FrameState.Unseen, $"pfn {pfn:x} is both {states[pfn]} and {state}");
            states[pfn] = state;
        }
        foreach (Zone zone in m.Ram.Zones)
        {
            for (int order = 0; order <= MAX_ORDER; order++)
            {
                long count = 0;
                for (page? p = zone.FreeAreas[order].First; p != null; p = p.Next, count++)
                {
                    Assert.True(p.Has(PageFlags.Buddy) && p.Order == order);
                    for (ulong i = 0; i < 1UL << order; i++) Mark(p.Pfn + i, FrameState.Buddy);
                }
                Assert.Equal(zone.FreeAreas[order].Count, count);
            }
            foreach (Cpu cpu in m.Cpus)
            {
                PerCpuPages pcp = m.PageAllocator.PerCpuList(zone, cpu.Id);
                int count = 0;
                for (page? p = pcp.First; p != null; p = p.Next, count++)
                {
                    Assert.True(p.Has(PageFlags.PerCpuList) && p.RefCount == 0 && ReferenceEquals(p.Zone, zone));
                    Mark(p.Pfn, FrameState.PerCpu);
                }
                Assert.Equal(pcp.Count, count);
            }
            for (ulong pfn = zone.StartPfn; pfn < zone.EndPfn; pfn++)
                if (m.Ram.PageAt(pfn).Has(PageFlags.Reserved)) Mark(pfn, FrameState.Reserved);
        }
        foreach (var (p, order) in inUse)
        {
            Assert.Equal(1, p.RefCount);
            for (ulong i = 0; i < 1UL << order; i++) Mark(p.Pfn + i, FrameState.InUse);
        }
        return states;
    }
}
