using System;
using System.IO;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class ProcTests
{
    private static Machine Boot(bool highMem = false, long memory = 64L << 20) =>
        Machine.Boot(new MachineOptions { MemoryBytes = memory, HighMem = highMem, Cpus = 2 });

    private static string Row(string zone, params long[] counts) =>
        $"Node 0, zone {zone,8} " + string.Concat(counts.Select(c => $"{c,6} ")) + "\n";

    [Fact]
    public void Buddyinfo_of_a_fresh_machine_lists_the_max_order_blocks_in_the_kernels_format()
    {
        using Machine m = Boot();
        Assert.Equal(
            "Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      4 \n" +
            "Node 0, zone    DMA32      0      0      0      0      0      0      0      0      0      0     12 \n",
            m.ReadProc("/proc/buddyinfo"));
    }

    [Fact]
    public void Buddyinfo_shows_the_split_and_not_the_per_cpu_lists()
    {
        using Machine m = Boot();
        page p = alloc_page(GFP_KERNEL)!; // the CPU's list takes a batch of 3 order-0 pages, one goes out
        Assert.Equal(Row("DMA", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4) + Row("DMA32", 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 11), m.ReadProc("/proc/buddyinfo"));
        page q = alloc_pages(GFP_KERNEL, 3)!;
        Assert.Equal(Row("DMA32", 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 11), m.ReadProc("/proc/buddyinfo").Split('\n')[1] + "\n");
        __free_pages(q, 3);
        __free_page(p);
        m.PageAllocator.DrainAllPages();
        Assert.Equal(Row("DMA", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4) + Row("DMA32", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12), m.ReadProc("/proc/buddyinfo"));
    }

    [Fact]
    public void Buddyinfo_lists_every_node_and_zone()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 1024L << 20, HighMem = true, NumaNodes = 2, Cpus = 2 });
        string[] lines = m.ReadProc("/proc/buddyinfo").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(new[] { "Node 0, zone      DMA", "Node 0, zone   Normal", "Node 1, zone   Normal", "Node 1, zone  HighMem" },
            lines.Select(l => l.Substring(0, 21)));
        Assert.All(lines, l => Assert.Equal(21 + 1 + 11 * 7, l.Length));
    }

    private static long Field(string meminfo, string name)
    {
        string line = meminfo.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal));
        return long.Parse(line.Substring(16, 8).Trim());
    }

    [Fact]
    public void Meminfo_has_the_kernels_layout_and_true_numbers()
    {
        using Machine m = Boot();
        string text = m.ReadProc("/proc/meminfo");
        Assert.StartsWith("MemTotal:          65536 kB\nMemFree:           65536 kB\nMemAvailable:      63808 kB\nBuffers:               0 kB\n", text);
        Assert.Contains("VmallocTotal:     262144 kB\n", text);
        Assert.Contains("HugePages_Total:       0\n", text);
        Assert.DoesNotContain("HighTotal", text);
        ulong addr = __get_free_pages(GFP_KERNEL, 2);
        Assert.Equal(65536 - 16, Field(m.ReadProc("/proc/meminfo"), "MemFree"));
        free_pages(addr, 2);
        Assert.Equal(65536, Field(m.ReadProc("/proc/meminfo"), "MemFree"));
    }

    [Fact]
    public void Meminfo_shows_what_the_other_subsystems_count()
    {
        using Machine m = Boot();
        m.Stats.Add(MemStat.SlabUnreclaimableBytes, 3 * PAGE_SIZE);
        m.Stats.Add(MemStat.SlabReclaimableBytes, 2 * PAGE_SIZE);
        m.Stats.Add(MemStat.VmallocPages, 5);
        m.Stats.Add(MemStat.PercpuPages, 8);
        m.Stats.Add(MemStat.SlabUnreclaimableBytes, -PAGE_SIZE);
        string text = m.ReadProc("/proc/meminfo");
        Assert.Equal(8, Field(text, "SUnreclaim"));
        Assert.Equal(8, Field(text, "SReclaimable"));
        Assert.Equal(8, Field(text, "KReclaimable"));
        Assert.Equal(16, Field(text, "Slab"));
        Assert.Equal(20, Field(text, "VmallocUsed"));
        Assert.Equal(32, Field(text, "Percpu"));
        // free - totalreserve (high watermarks + lowmem reserve: 96 + 48 + 288 pages), and
        // reclaimable slab counts as available: 2 pages - min(1, low watermarks).
        Assert.Equal(63808 + 4, Field(text, "MemAvailable"));
    }

    [Fact]
    public void Meminfo_splits_high_and_low_memory_on_a_highmem_machine()
    {
        using Machine m = Boot(highMem: true, memory: 1024L << 20);
        string text = m.ReadProc("/proc/meminfo");
        Assert.Equal(128L << 10, Field(text, "HighTotal"));
        Assert.Equal(896L << 10, Field(text, "LowTotal"));
        Assert.Equal(Field(text, "MemFree"), Field(text, "HighFree") + Field(text, "LowFree"));
    }

    [Fact]
    public void Zoneinfo_shows_watermarks_and_the_cpu_lists()
    {
        using Machine m = Boot();
        string text = m.ReadProc("/proc/zoneinfo");
        Assert.StartsWith("Node 0, zone      DMA\n  pages free     4096\n        boost    0\n        min      64\n        low      80\n        high     96\n        spanned  4096\n", text);
        Assert.Contains("\n        cma      0\n        protection: (0, 48, 48, 48)\n      nr_free_pages 4096\n", text);
        Assert.Contains("\n    cpu: 1\n              count: 0\n              high:  18\n              batch: 3\n", text);
    }

    [Fact]
    public void Unknown_files_are_not_found_and_subsystems_can_register_theirs()
    {
        using Machine m = Boot();
        var e = Assert.Throws<FileNotFoundException>(() => m.ReadProc("/proc/nonesuch"));
        Assert.Contains("/proc/nonesuch: No such file or directory", e.Message);
        Assert.Contains("/proc/buddyinfo", e.Message);
        int reads = 0;
        m.ProcFiles.Register("/proc/kmemguard_test", () => $"test read {++reads}\n");
        Assert.Equal("test read 1\n", m.ReadProc("/proc/kmemguard_test"));
        Assert.Equal("test read 2\n", m.ReadProc("/proc/kmemguard_test"));
        Assert.Throws<InvalidOperationException>(() => m.ProcFiles.Register("/proc/slabinfo", () => ""));
        Assert.Throws<ArgumentException>(() => m.ProcFiles.Register("kmemguard_test", () => ""));
        Assert.Contains("/proc/slabinfo", m.ProcFiles.Paths);
    }

    [Fact]
    public void A_shut_down_machine_has_no_proc()
    {
        Machine m = Boot();
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.ReadProc("/proc/meminfo"));
    }
}
