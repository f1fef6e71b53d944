using System;
using System.Linq;
using Scull;
using Xunit;
using static KmemGuard.Kernel;
using static KmemGuard.Samples.Tests.SampleMachine;
using static Scull.fcntl;

namespace KmemGuard.Samples.Tests;

public class ScullVariantTests
{
    private static readonly file_operations fops = scull.scull_fops;

    [Theory]
    [InlineData(4000)]
    [InlineData(512)]
    public void Scullc_keeps_its_quanta_in_its_own_cache(int quantum)
    {
        using Machine m = Boot();
        var module = new scullc_module(quantum, qset: 16, nr_devs: 2);
        Assert.Equal(0, module.scullc_init());
        byte[] data = Pattern(quantum * 5 + 17, 11);
        scullc_dev dev = module.scullc_devices[1];
        Assert.Equal(data.Length, user.write_all(fops, Open(fops, dev, O_WRONLY), data, chunk: 1000));
        Assert.Equal(data, user.read_all(fops, Open(fops, dev, O_RDONLY), chunk: 999));

        string[] row = SlabinfoRow(m, "scullc");
        // Active objects: at least the six quanta (SLUB counts a CPU slab's free objects as active too).
        Assert.InRange(long.Parse(row[1]), 6, long.Parse(row[2]));
        Assert.True(long.Parse(row[3]) >= quantum);          // object size: at least the quantum
        Assert.True(long.Parse(row[3]) % 64 == 0);          // SLAB_HWCACHE_ALIGN: a whole number of cache lines
        AssertClean(m, module.scullc_devices);

        module.scullc_cleanup();
        Assert.Null(SlabinfoRowOrNull(m, "scullc"));         // the cache is gone with the module
        AssertClean(m);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Scullp_quanta_are_whole_page_blocks_of_its_order(int order)
    {
        using Machine m = Boot();
        var dev = new scullp_dev(order, qset: 4);
        Assert.Equal(PAGE_SIZE << order, dev.quantum);
        byte[] data = Pattern(dev.quantum * 2 + 100, 12); // crosses page and quantum boundaries
        Assert.Equal(data.Length, user.write_all(fops, Open(fops, dev, O_WRONLY), data, chunk: 3000));
        Assert.Equal(data, user.read_all(fops, Open(fops, dev, O_RDONLY), chunk: 5000));

        for (int i = 0; i < 3; i++)
        {
            KPtr q = dev.data.quantum(i);
            Assert.Equal(0UL, (ulong)q % (ulong)dev.quantum); // a buddy block is aligned to its own size
            Assert.False(is_vmalloc_addr(q));
        }
        AssertClean(m, dev);
        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void Scullp_refuses_an_order_the_buddy_allocator_cannot_serve()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new scullp_dev(MAX_ORDER + 1));
    }

    [Fact]
    public void Scullv_quanta_are_vmalloc_areas()
    {
        using Machine m = Boot();
        var dev = new scullv_dev(order: 2, qset: 4);
        byte[] data = Pattern(dev.quantum * 3, 13);
        Assert.Equal(data.Length, user.write_all(fops, Open(fops, dev, O_WRONLY), data));
        Assert.Equal(data, user.read_all(fops, Open(fops, dev, O_RDONLY)));

        for (int i = 0; i < 3; i++) Assert.True(is_vmalloc_addr(dev.data.quantum(i)));
        int areas = m.ReadProc("/proc/vmallocinfo").Split('\n').Count(l => l.Contains("vmalloc") && l.Contains((4 * PAGE_SIZE + PAGE_SIZE).ToString()));
        Assert.Equal(3, areas); // three 16 KiB areas, each listed with its guard page
        AssertClean(m, dev);
        Trim(dev);
        AssertClean(m);
    }

    private static string[] SlabinfoRow(Machine m, string cache) =>
        SlabinfoRowOrNull(m, cache) ?? throw new Xunit.Sdk.XunitException($"no {cache} row in /proc/slabinfo:\n" + m.ReadProc("/proc/slabinfo"));

    private static string[]? SlabinfoRowOrNull(Machine m, string cache) =>
        m.ReadProc("/proc/slabinfo").Split('\n')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .FirstOrDefault(t => t.Length > 5 && t[0] == cache);
}
