using System;
using System.Text;
using System.Threading;

namespace KmemGuard;

/// <summary>The page allocator's /proc files, in the kernel's formats (mm/vmstat.c, fs/proc/meminfo.c).</summary>
internal static class ProcRender
{
    /// <summary>/proc/buddyinfo (frag_show_print): the free blocks per order on each zone's buddy lists; the per-CPU lists are not shown.</summary>
    public static string Buddyinfo(Machine m)
    {
        var text = new StringBuilder();
        var counts = new long[Kernel.MAX_ORDER + 1];
        foreach (Zone zone in m.Ram.Zones)
        {
            lock (zone.Lock)
                for (int order = 0; order <= Kernel.MAX_ORDER; order++) counts[order] = zone.FreeAreas[order].Count;
            text.Append("Node ").Append(zone.Node.Id).Append(", zone ").Append(zone.Name.PadLeft(8)).Append(' ');
            foreach (long count in counts) text.Append(count.ToString().PadLeft(6)).Append(' ');
            text.Append('\n');
        }
        return text.ToString();
    }

    /// <summary>/proc/meminfo (meminfo_proc_show) with the machine's true numbers; what the simulation has not (page cache, swap, huge pages) is 0.</summary>
    public static string Meminfo(Machine m)
    {
        PageAllocator pages = m.PageAllocator;
        MemStats stats = m.Stats;
        long total = pages.ManagedPages, free = pages.FreePages;
        long highTotal = 0, highFree = 0, lowWatermarks = 0, reserve = 0;
        foreach (Zone zone in m.Ram.Zones)
        {
            long managed = Volatile.Read(ref zone.ManagedPages);
            if (zone.Type == ZoneType.HighMem)
            {
                highTotal += managed;
                highFree += Volatile.Read(ref zone.FreePages);
            }
            lowWatermarks += zone.WatermarkLow;
            long maxReserve = 0;
            foreach (ZoneType type in Enum.GetValues<ZoneType>()) maxReserve = Math.Max(maxReserve, pages.LowmemReserve(zone, type));
            reserve += Math.Min(zone.WatermarkHigh + maxReserve, managed);
        }
        long slabReclaimable = stats[MemStat.SlabReclaimableBytes] >> Kernel.PAGE_SHIFT;
        long slabUnreclaimable = stats[MemStat.SlabUnreclaimableBytes] >> Kernel.PAGE_SHIFT;
        long available = Math.Max(0, free - reserve + slabReclaimable - Math.Min(slabReclaimable / 2, lowWatermarks));

        var text = new StringBuilder();
        void Kb(string label, long pageCount) => Line(text, label, pageCount << (Kernel.PAGE_SHIFT - 10));
        Kb("MemTotal:", total);
        Kb("MemFree:", free);
        Kb("MemAvailable:", available);
        foreach (string none in new[] { "Buffers:", "Cached:", "SwapCached:", "Active:", "Inactive:", "Active(anon):", "Inactive(anon):", "Active(file):", "Inactive(file):", "Unevictable:", "Mlocked:" })
            Kb(none, 0);
        if (m.Options.HighMem)
        {
            Kb("HighTotal:", highTotal);
            Kb("HighFree:", highFree);
            Kb("LowTotal:", total - highTotal);
            Kb("LowFree:", free - highFree);
        }
        foreach (string none in new[] { "SwapTotal:", "SwapFree:", "Dirty:", "Writeback:", "AnonPages:", "Mapped:", "Shmem:" })
            Kb(none, 0);
        Kb("KReclaimable:", slabReclaimable);
        Kb("Slab:", slabReclaimable + slabUnreclaimable);
        Kb("SReclaimable:", slabReclaimable);
        Kb("SUnreclaim:", slabUnreclaimable);
        foreach (string none in new[] { "KernelStack:", "PageTables:", "Bounce:", "WritebackTmp:" })
            Kb(none, 0);
        Kb("CommitLimit:", total * 50 / 100);
        Kb("Committed_AS:", 0);
        Line(text, "VmallocTotal:", (long)(m.Memory.Vmalloc.Size >> 10));
        Kb("VmallocUsed:", stats[MemStat.VmallocPages]);
        Kb("VmallocChunk:", 0);
        Kb("Percpu:", stats[MemStat.PercpuPages]);
        text.Append("HardwareCorrupted:     0 kB\n");
        foreach (string none in new[] { "AnonHugePages:", "ShmemHugePages:", "ShmemPmdMapped:", "FileHugePages:", "FilePmdMapped:" })
            Kb(none, 0);
        text.Append("HugePages_Total:       0\nHugePages_Free:        0\nHugePages_Rsvd:        0\nHugePages_Surp:        0\n");
        Line(text, "Hugepagesize:", 2048);
        Line(text, "Hugetlb:", 0);
        Line(text, "DirectMap4k:", (long)(m.Ram.TotalBytes >> 10));
        Line(text, "DirectMap2M:", 0);
        Line(text, "DirectMap1G:", 0);
        return text.ToString();
    }

    /// <summary>show_val_kb: the label padded to 16 columns, the value in 8, " kB".</summary>
    private static void Line(StringBuilder text, string label, long kb) =>
        text.Append(label.PadRight(16)).Append(kb.ToString().PadLeft(8)).Append(" kB\n");

    /// <summary>/proc/zoneinfo (zoneinfo_show_print): free pages, watermarks, sizes and each CPU's page list.</summary>
    public static string Zoneinfo(Machine m)
    {
        var text = new StringBuilder();
        foreach (Zone zone in m.Ram.Zones)
        {
            long free = Volatile.Read(ref zone.FreePages);
            text.Append("Node ").Append(zone.Node.Id).Append(", zone ").Append(zone.Name.PadLeft(8));
            text.Append("\n  pages free     ").Append(free)
                .Append("\n        boost    0")
                .Append("\n        min      ").Append(zone.WatermarkMin)
                .Append("\n        low      ").Append(zone.WatermarkLow)
                .Append("\n        high     ").Append(zone.WatermarkHigh)
                .Append("\n        spanned  ").Append(zone.SpannedPages)
                .Append("\n        present  ").Append(zone.SpannedPages)
                .Append("\n        managed  ").Append(Volatile.Read(ref zone.ManagedPages))
                .Append("\n        cma      0")
                .Append("\n        protection: (");
            ZoneType[] types = Enum.GetValues<ZoneType>();
            for (int t = 0; t < types.Length; t++) text.Append(t == 0 ? "" : ", ").Append(m.PageAllocator.LowmemReserve(zone, types[t]));
            text.Append(')')
                .Append("\n      nr_free_pages ").Append(free)
                .Append("\n  pagesets");
            foreach (Cpu cpu in m.Cpus)
            {
                PerCpuPages pcp = m.PageAllocator.PerCpuList(zone, cpu.Id);
                text.Append("\n    cpu: ").Append(cpu.Id)
                    .Append("\n              count: ").Append(Volatile.Read(ref pcp.Count))
                    .Append("\n              high:  ").Append(pcp.High)
                    .Append("\n              batch: ").Append(pcp.Batch);
            }
            text.Append("\n  node_unreclaimable:  0")
                .Append("\n  start_pfn:           ").Append(zone.StartPfn)
                .Append('\n');
        }
        return text.ToString();
    }
}
