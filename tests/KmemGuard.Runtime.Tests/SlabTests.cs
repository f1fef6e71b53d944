using System;
using System.Collections.Generic;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class SlabTests
{
    internal static Machine Boot(Checks checks = Checks.All, BugAction onBug = BugAction.Throw, int cpus = 4, long memory = 32L << 20) =>
        Machine.Boot(new MachineOptions { MemoryBytes = memory, Cpus = cpus, Checks = checks, OnBug = onBug });

    [Fact]
    public void Objects_are_distinct_aligned_and_hold_their_bytes()
    {
        using Machine m = Boot();
        kmem_cache_t c = kmem_cache_create("scullc", 4000, 0, SLAB_HWCACHE_ALIGN, null, null)!;
        var objs = new List<KPtr>();
        for (int i = 0; i < 50; i++)
        {
            KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
            Assert.False(o.IsNull);
            Assert.Equal(0UL, o.Address % 64);
            o.Write(0, i);
            o.Write(3996, -i);
            objs.Add(o);
        }
        Assert.Equal(50, objs.Select(o => o.Address).Distinct().Count());
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(i, objs[i].Read<int>(0));
            Assert.Equal(-i, objs[i].Read<int>(3996));
        }
        foreach (KPtr o in objs) kmem_cache_free(c, o);
        Assert.Equal(0, kmem_cache_destroy(c));
    }

    [Theory]
    [InlineData(4, 8u, 0)]
    [InlineData(4, 64u, 0)]
    [InlineData(4, 256u, 0)]
    [InlineData(4, 1024u, 2)]
    [InlineData(4, 4096u, 3)]
    [InlineData(1, 1024u, 1)]
    [InlineData(4, 192u, 0)]
    public void Slab_order_follows_calculate_order(int cpus, uint size, int order)
    {
        Assert.Equal(order, kmem_cache_t.CalculateOrder(size, cpus));
    }

    [Fact]
    public void Hwcache_align_halves_the_cache_line_for_small_objects()
    {
        using Machine m = Boot(Checks.None);
        Assert.Equal(64u, kmem_cache_create("a", 40, 0, SLAB_HWCACHE_ALIGN, null)!.Align);
        Assert.Equal(32u, kmem_cache_create("b", 20, 0, SLAB_HWCACHE_ALIGN, null)!.Align);
        Assert.Equal(8u, kmem_cache_create("c", 20, 0, 0, null)!.Align);
        Assert.Equal(24u, kmem_cache_create("d", 20, 0, 0, null)!.Size);
    }
}
