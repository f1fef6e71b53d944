using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

/// <summary>
/// Every allocator family at once: four threads on four simulated CPUs do random operations,
/// each block stamped and verified before it is freed. Afterwards, with part of the blocks still
/// held, every frame must be accounted for and /proc must agree with what the threads hold.
/// </summary>
public class MachineStressTests
{
    private const int Threads = 4;
    private const int OperationsPerThread = 3000;
    private const int MaxHeldPerThread = 48;

    private enum Family { Kmalloc, Cache, Pages, PageStruct, Vmalloc, PerCpu, Mempool }

    private sealed record Block(Family Family, KPtr Address, ulong Size, int Order, page? Page, PerCpu? PerCpuArea, ulong Stamp);

    [Theory]
    [InlineData(Checks.All)]
    [InlineData(Checks.None)]
    public void Four_cpus_of_every_family_leave_every_frame_and_object_accounted_for(Checks checks)
    {
        using Machine m = Machine.Boot(new MachineOptions { Cpus = 4, MemoryBytes = 128L << 20, Checks = checks });
        kmem_cache_t cache = kmem_cache_create("stress", 200, 0, SLAB_HWCACHE_ALIGN, null)!;
        kmem_cache_t poolCache = kmem_cache_create("stress-pool", 96, 0, 0, null)!;
        mempool_t pool = mempool_create_slab_pool(8, poolCache)!;
        var held = new List<Block>[Threads];
        var errors = new List<Exception>();
        var threads = Enumerable.Range(0, Threads).Select(id => new Thread(() =>
        {
            try
            {
                held[id] = Work(id, cache, pool);
            }
            catch (Exception e)
            {
                lock (errors) errors.Add(e);
            }
        }) { Name = $"stress-{id}" }).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);
        Assert.Empty(m.Reports);

        List<Block> all = held.SelectMany(h => h).ToList();
        foreach (Block block in all) Assert.Equal(block.Stamp, ReadStamp(block));
        // SLUB counts objects cached on CPUs (and KASAN's quarantine) as active: give them back first.
        m.Slab.ShrinkAll();
        AssertFramesAccountedFor(m, all);
        AssertSlabinfoAgrees(m, all, pool);

        foreach (Block block in all) Free(block, cache, pool);
        mempool_destroy(pool);
        Assert.Equal(0, kmem_cache_destroy(cache));
        Assert.Equal(0, kmem_cache_destroy(poolCache));
        AssertFramesAccountedFor(m, new List<Block>());
        Assert.Empty(m.Reports);
    }

    private static List<Block> Work(int id, kmem_cache_t cache, mempool_t pool)
    {
        var random = new Random(1000 + id);
        var mine = new List<Block>();
        for (int op = 0; op < OperationsPerThread; op++)
        {
            if (mine.Count >= MaxHeldPerThread || (mine.Count > 0 && random.Next(3) == 0))
            {
                int victim = random.Next(mine.Count);
                Block block = mine[victim];
                mine.RemoveAt(victim);
                Assert.Equal(block.Stamp, ReadStamp(block));
                Free(block, cache, pool);
                continue;
            }
            ulong stamp = ((ulong)(uint)id << 56) | (uint)op;
            Block? fresh = Allocate((Family)random.Next(7), random, cache, pool, stamp);
            if (fresh == null) continue;
            WriteStamp(fresh);
            mine.Add(fresh);
        }
        return mine;
    }

    private static Block? Allocate(Family family, Random random, kmem_cache_t cache, mempool_t pool, ulong stamp)
    {
        gfp_t gfp = random.Next(2) == 0 ? GFP_KERNEL : GFP_ATOMIC;
        switch (family)
        {
            case Family.Kmalloc:
            {
                ulong size = (ulong)(random.Next(4) == 0 ? random.Next(8193, 40000) : random.Next(8, 8193));
                KPtr p = kmalloc(size, gfp);
                return p.IsNull ? null : new Block(family, p, size, 0, null, null, stamp);
            }
            case Family.Cache:
            {
                KPtr p = kmem_cache_alloc(cache, gfp);
                return p.IsNull ? null : new Block(family, p, 200, 0, null, null, stamp);
            }
            case Family.Pages:
            {
                int order = random.Next(4);
                ulong address = __get_free_pages(gfp, order);
                return address == 0 ? null : new Block(family, (KPtr)address, (ulong)PAGE_SIZE << order, order, null, null, stamp);
            }
            case Family.PageStruct:
            {
                int order = random.Next(3);
                page? p = alloc_pages(gfp | (random.Next(2) == 0 ? __GFP_COLD : 0), order);
                return p == null ? null : new Block(family, page_address(p), (ulong)PAGE_SIZE << order, order, p, null, stamp);
            }
            case Family.Vmalloc:
            {
                ulong size = (ulong)random.Next(1, 5 * PAGE_SIZE);
                KPtr p = vmalloc(size);
                return p.IsNull ? null : new Block(family, p, size, 0, null, null, stamp);
            }
            case Family.PerCpu:
            {
                PerCpu? area = __alloc_percpu(64, 8);
                return area == null ? null : new Block(family, per_cpu_ptr(area, random.Next(4)), 64, 0, null, area, stamp);
            }
            default:
            {
                KPtr p = mempool_alloc(pool, gfp);
                return p.IsNull ? null : new Block(family, p, 96, 0, null, null, stamp);
            }
        }
    }

    // The stamp goes at both ends of the block, so a block that overlaps another shows.
    private static void WriteStamp(Block block)
    {
        block.Address.Write(0, block.Stamp);
        block.Address.Write((long)block.Size - 8, ~block.Stamp);
    }

    private static ulong ReadStamp(Block block)
    {
        ulong head = block.Address.Read<ulong>(0), tail = block.Address.Read<ulong>((long)block.Size - 8);
        return tail == ~head ? head : 0;
    }

    private static void Free(Block block, kmem_cache_t cache, mempool_t pool)
    {
        switch (block.Family)
        {
            case Family.Kmalloc: kfree(block.Address); break;
            case Family.Cache: kmem_cache_free(cache, block.Address); break;
            case Family.Pages: free_pages(block.Address.Address, block.Order); break;
            case Family.PageStruct: __free_pages(block.Page!, block.Order); break;
            case Family.Vmalloc: vfree(block.Address); break;
            case Family.PerCpu: free_percpu(block.PerCpuArea); break;
            default: mempool_free(block.Address, pool); break;
        }
    }

    /// <summary>
    /// Walks mem_map: every frame is free (on a buddy list or a CPU's list) or in use, free + in
    /// use = total, and the pages in use are exactly those of the blocks held, the slabs, the
    /// vmalloc and per-CPU backing.
    /// </summary>
    private static void AssertFramesAccountedFor(Machine m, List<Block> held)
    {
        m.MakeCurrent();
        long buddy = 0, perCpuList = 0, inUse = 0;
        foreach (Zone zone in m.Ram.Zones)
        {
            for (ulong pfn = zone.StartPfn; pfn < zone.EndPfn;)
            {
                page p = m.Ram.PageAt(pfn);
                if (p.Has(PageFlags.Buddy))
                {
                    buddy += 1L << p.Order;
                    pfn += 1UL << p.Order;
                    continue;
                }
                if (p.Has(PageFlags.PerCpuList)) perCpuList++;
                else inUse++;
                pfn++;
            }
        }
        long managed = m.PageAllocator.ManagedPages;
        Assert.Equal(managed, buddy + perCpuList + inUse);
        Assert.Equal(m.PageAllocator.FreePages, buddy + perCpuList);
        Assert.Equal(buddy, PageAllocatorTests.BuddyinfoPages(m));

        long heldPages = held.Sum(b => b.Family switch
        {
            Family.Pages or Family.PageStruct => 1L << b.Order,
            Family.Kmalloc when b.Size > KMALLOC_MAX_CACHE_SIZE => 1L << get_order(b.Size),
            Family.Vmalloc => (long)((b.Size + PAGE_SIZE - 1) / PAGE_SIZE),
            _ => 0,
        });
        long slabPages = Slabinfo(m).Sum(c => c.Slabs * c.PagesPerSlab);
        long percpuPages = m.Stats[MemStat.PercpuPages];
        Assert.Equal(inUse, heldPages + slabPages + percpuPages);
    }

    private static void AssertSlabinfoAgrees(Machine m, List<Block> held, mempool_t pool)
    {
        var caches = Slabinfo(m).ToDictionary(c => c.Name);
        Assert.Equal(held.Count(b => b.Family == Family.Cache), caches["stress"].Active);
        var kmallocByClass = held.Where(b => b.Family == Family.Kmalloc && b.Size <= KMALLOC_MAX_CACHE_SIZE)
            .GroupBy(b => KmallocClass(b.Size)).ToDictionary(g => g.Key, g => g.Count());
        foreach (var (name, info) in caches.Where(c => c.Key.StartsWith("kmalloc-", StringComparison.Ordinal)))
            Assert.Equal(kmallocByClass.GetValueOrDefault(name), info.Active);
        Assert.Equal(held.Count(b => b.Family == Family.Mempool) + pool.CurrNr, caches["stress-pool"].Active);
    }

    private static string KmallocClass(ulong size)
    {
        ulong[] classes = { 8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192 };
        ulong cls = classes.First(c => c >= size);
        return "kmalloc-" + (cls >= 1024 ? $"{cls >> 10}k" : cls.ToString());
    }

    private sealed record CacheLine(string Name, long Active, long Slabs, long PagesPerSlab);

    /// <summary>/proc/slabinfo's rows: name, active_objs, num_slabs, pagesperslab.</summary>
    private static IEnumerable<CacheLine> Slabinfo(Machine m) =>
        m.ReadProc("/proc/slabinfo").Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => new CacheLine(f[0], long.Parse(f[1]), long.Parse(f[14]), long.Parse(f[5])));
}
