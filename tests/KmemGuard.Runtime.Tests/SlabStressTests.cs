using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class SlabStressTests
{
    private readonly record struct Block(KPtr Ptr, int Size, kmem_cache_t? Cache, uint Tag);

    [Theory]
    [InlineData(Checks.All)]
    [InlineData(Checks.None)]
    public void Four_threads_on_four_cpus_keep_every_object_accounted_for(Checks checks)
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 4, Checks = checks });
        long freeAtStart = m.PageAllocator.FreePages;
        kmem_cache_t[] caches =
        {
            kmem_cache_create("stress-a", 40, 0, 0, null)!,
            kmem_cache_create("stress-b", 700, 0, SLAB_HWCACHE_ALIGN, null)!,
            kmem_cache_create("stress-c", 3000, 0, SLAB_RED_ZONE | SLAB_POISON, null)!,
        };
        var shared = new ConcurrentQueue<Block>();
        var held = new List<Block>[4];
        var threads = new Thread[4];
        var failures = new ConcurrentQueue<Exception>();
        for (int t = 0; t < threads.Length; t++)
        {
            int id = t;
            held[id] = new List<Block>();
            threads[t] = new Thread(() =>
            {
                try
                {
                    m.MakeCurrent();
                    Run(id, caches, held[id], shared);
                }
                catch (Exception e)
                {
                    failures.Enqueue(e);
                }
            }) { Name = $"stress-{id}" };
        }
        foreach (Thread th in threads) th.Start();
        foreach (Thread th in threads) Assert.True(th.Join(60_000));
        Assert.Empty(failures);
        Assert.Empty(m.Reports);

        List<Block> all = held.SelectMany(h => h).Concat(shared).ToList();
        foreach (Block b in all) Assert.Equal(b.Tag, b.Ptr.Read<uint>(0));
        foreach (kmem_cache_t c in caches)
            Assert.Equal(all.Count(b => b.Cache == c), Live(m, c));
        foreach (kmem_cache_t c in m.Slab.Caches().Where(c => c.IsKmalloc))
            Assert.Equal(all.Count(b => b.Cache == null && m.Slab.SlabOf(b.Ptr.Address)?.Cache == c), Live(m, c));
        string slabinfo = m.Slab.RenderSlabinfo();
        foreach (kmem_cache_t c in caches)
        {
            string[] f = slabinfo.Split('\n').First(l => l.StartsWith(c.Name + " ")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(SlabAllocator.StatsOf(c).ActiveObjects, long.Parse(f[1]));
        }

        foreach (Block b in all) FreeBlock(b);
        foreach (kmem_cache_t c in caches) Assert.Equal(0, kmem_cache_destroy(c));
        m.Slab.ShrinkAll();
        long inKmallocSlabs = m.Slab.Caches().Sum(c => SlabAllocator.StatsOf(c).Slabs << c.Order);
        Assert.Equal(freeAtStart, m.PageAllocator.FreePages + inKmallocSlabs);
        Assert.Equal(m.Slab.UnreclaimablePages, inKmallocSlabs);
    }

    private static long Live(Machine m, kmem_cache_t c) =>
        SlabAllocator.StatsOf(c).ActiveObjects - m.Slab.CpuCached(c) - (m.Slab.Quarantine?.Count(c) ?? 0);

    private static void Run(int id, kmem_cache_t[] caches, List<Block> mine, ConcurrentQueue<Block> shared)
    {
        var random = new Random(id * 7919 + 1);
        uint tag = (uint)id << 24;
        for (int op = 0; op < 6000; op++)
        {
            int what = random.Next(10);
            if (what < 4 || mine.Count == 0)
            {
                Block b = random.Next(3) == 0
                    ? NewCacheObject(caches[random.Next(caches.Length)], ++tag)
                    : NewKmalloc(random.Next(4) == 0 ? random.Next(1, 20000) : random.Next(1, 300), ++tag);
                if (b.Ptr.IsNull) throw new InvalidOperationException("allocation failed");
                if (random.Next(8) == 0) shared.Enqueue(b); else mine.Add(b);
            }
            else if (what < 8)
            {
                int i = random.Next(mine.Count);
                Block b = mine[i];
                if (b.Ptr.Read<uint>(0) != b.Tag) throw new InvalidOperationException($"object {b.Ptr} lost its contents");
                mine[i] = mine[^1];
                mine.RemoveAt(mine.Count - 1);
                FreeBlock(b);
            }
            else if (what == 8 && shared.TryDequeue(out Block other))
            {
                FreeBlock(other); // freed on another CPU than it was allocated on
            }
            else if (mine.Count > 0 && mine[^1].Cache == null)
            {
                Block b = mine[^1];
                int size = random.Next(4, 600);
                KPtr p = krealloc(b.Ptr, size, GFP_KERNEL);
                if (p.IsNull) throw new InvalidOperationException("krealloc failed");
                if (p.Read<uint>(0) != b.Tag) throw new InvalidOperationException("krealloc lost the contents");
                mine[^1] = b with { Ptr = p, Size = size };
            }
        }
    }

    private static Block NewCacheObject(kmem_cache_t c, uint tag)
    {
        KPtr p = kmem_cache_alloc(c, GFP_KERNEL);
        if (!p.IsNull) p.Write(0, tag);
        return new Block(p, (int)c.ObjectSize, c, tag);
    }

    private static Block NewKmalloc(int size, uint tag)
    {
        KPtr p = kmalloc(Math.Max(size, 4), GFP_KERNEL);
        if (!p.IsNull) p.Write(0, tag);
        return new Block(p, Math.Max(size, 4), null, tag);
    }

    private static void FreeBlock(Block b)
    {
        if (b.Cache != null) kmem_cache_free(b.Cache, b.Ptr);
        else kfree(b.Ptr);
    }
}
