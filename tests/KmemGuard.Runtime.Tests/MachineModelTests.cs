using System.Threading.Tasks;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class MachineModelTests
{
    [Fact]
    public void Default_machine_has_the_embedded_shape()
    {
        using Machine m = Machine.Boot();
        Assert.Equal(4, m.Options.Cpus);
        Assert.Equal(256L << 20, m.Options.MemoryBytes);
        Assert.Equal(1, m.Options.NumaNodes);
        Assert.Equal(Checks.All, m.Options.Checks);
        Assert.Same(m, Machine.Current);
        Assert.Equal((long)m.Ram.TotalPages, m.PageAllocator.FreePages);
    }

    [Fact]
    public void Zones_follow_the_x86_64_layout()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20 });
        Zone[] zones = m.Ram.Zones;
        Assert.Equal(2, zones.Length);
        Assert.Equal(ZoneType.DMA, zones[0].Type);
        Assert.Equal((16UL << 20) >> PAGE_SHIFT, zones[0].EndPfn);
        Assert.Equal(ZoneType.DMA32, zones[1].Type);
    }

    [Fact]
    public void HighMem_option_puts_memory_above_896_MiB_in_ZONE_HIGHMEM()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 1024L << 20, HighMem = true });
        Assert.Equal(new[] { ZoneType.DMA, ZoneType.Normal, ZoneType.HighMem }, System.Array.ConvertAll(m.Ram.Zones, z => z.Type));
    }

    [Fact]
    public void Numa_nodes_split_memory_evenly()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 128L << 20, NumaNodes = 2 });
        Assert.Equal(2, m.Ram.Nodes.Length);
        Assert.Equal(m.Ram.Nodes[0].EndPfn, m.Ram.Nodes[1].StartPfn);
    }

    [Fact]
    public void Bytes_written_through_the_direct_map_are_stored()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20 });
        page? block = m.PageAllocator.Alloc(GFP_KERNEL, 1, -1, default);
        Assert.NotNull(block);
        var p = new KPtr(PageAllocator.PageVirt(block!));
        p.Write(100, 0x1122334455667788UL);
        p[PAGE_SIZE + 5] = 0xAB;
        Assert.Equal(0x1122334455667788UL, p.Read<ulong>(100));
        Assert.Equal(0xAB, p[PAGE_SIZE + 5]);
    }

    [Fact]
    public void Buddy_blocks_split_and_merge_back()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20 });
        long before = m.PageAllocator.FreePages;
        var blocks = new page[64];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = m.PageAllocator.Alloc(GFP_KERNEL, i % 4, -1, default)!;
        for (int i = 0; i < blocks.Length; i++) m.PageAllocator.Free(blocks[i], i % 4, default);
        Assert.Equal(before, m.PageAllocator.FreePages);
        m.PageAllocator.DrainAllPages(); // freed order-0 pages wait on the per-CPU lists until drained
        foreach (Zone zone in m.Ram.Zones)
            Assert.Equal((long)zone.SpannedPages >> MAX_ORDER, zone.FreeAreas[MAX_ORDER].Count);
    }

    [Fact]
    public void Machines_are_independent_and_boot_in_parallel()
    {
        Parallel.For(0, 8, i =>
        {
            using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 1 + i % 4 });
            page block = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
            var p = new KPtr(PageAllocator.PageVirt(block));
            p.Write(0, i);
            Assert.Equal(i, p.Read<int>(0));
            Assert.Same(m, Machine.Current);
        });
    }

    [Fact]
    public void Null_dereference_is_reported_and_not_done()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, OnBug = BugAction.Report });
        NULL[8] = 1;
        Assert.Equal(0, NULL[8]);
        Assert.Equal(2, m.Reports.Count);
        Assert.Equal(BugKind.NullPtrDeref, m.Reports[0].Kind);
        Assert.StartsWith("BUG: kernel NULL pointer dereference, address: 0000000000000008", m.Reports[0].Text);
    }

    [Fact]
    public void Access_to_freed_pages_is_a_KASAN_use_after_free()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20 });
        page block = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        var p = new KPtr(PageAllocator.PageVirt(block));
        m.PageAllocator.Free(block, 0, default);
        var e = Assert.Throws<KernelBugException>(() => p[3] = 1);
        Assert.Equal(BugKind.UseAfterFree, e.Kind);
        Assert.Contains("BUG: KASAN: use-after-free in", e.Report);
        Assert.Contains("Write of size 1 at addr " + (p.Address + 3).ToString("x16"), e.Report);
    }

    [Fact]
    public void Wild_access_outside_every_range_faults()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20 });
        var e = Assert.Throws<KernelBugException>(() => new KPtr(0xdead_0000_0000).Read<int>());
        Assert.Equal(BugKind.WildAccess, e.Kind);
    }

    [Fact]
    public void Changing_the_options_after_boot_changes_no_check()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 1, Checks = Checks.None });
        m.Options.Checks = Checks.All;
        Assert.False(m.IsChecking(Checks.Kasan));
    }
}
