using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace KmemGuard.Demo;

/// <summary>Turns the kernel's /proc text into the tables a person reads (slabtop, buddyinfo, vmallocinfo, meminfo).</summary>
internal static class ProcTables
{
    private static readonly string[] s_meminfoKeys =
        { "MemTotal", "MemFree", "MemAvailable", "Slab", "SReclaimable", "SUnreclaim", "VmallocTotal", "VmallocUsed", "Percpu" };

    internal sealed record SlabRow(string Name, long Active, long Total, long ObjSize, long PerSlab, long PagesPerSlab, long Slabs);

    /// <summary>Parses /proc/slabinfo (format 2.1): one row per cache.</summary>
    public static List<SlabRow> ParseSlabinfo(string text)
    {
        var rows = new List<SlabRow>();
        foreach (string line in Lines(text))
        {
            if (line.StartsWith("slabinfo", StringComparison.Ordinal) || line.StartsWith('#')) continue;
            string[] t = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (t.Length < 6 || !long.TryParse(t[1], out long active)) continue;
            int slabdata = Array.IndexOf(t, "slabdata");
            long slabs = slabdata > 0 && slabdata + 2 < t.Length ? long.Parse(t[slabdata + 2], CultureInfo.InvariantCulture) : 0;
            rows.Add(new SlabRow(t[0], active, Num(t[2]), Num(t[3]), Num(t[4]), Num(t[5]), slabs));
        }
        return rows;
    }

    /// <summary>A slabtop-like table: the caches that hold the most memory, plus every cache named in <paramref name="always"/>.</summary>
    public static void PrintSlabtop(string slabinfo, int top, params string[] always)
    {
        List<SlabRow> rows = ParseSlabinfo(slabinfo);
        long Size(SlabRow r) => r.Slabs * r.PagesPerSlab * Kernel.PAGE_SIZE;
        var shown = rows.Where(r => r.Slabs > 0).OrderByDescending(Size).Take(top)
            .Concat(rows.Where(r => always.Contains(r.Name)))
            .Distinct().OrderByDescending(Size).ToList();
        Console.WriteLine($" Active / Total Objects: {rows.Sum(r => r.Active)} / {rows.Sum(r => r.Total)}   caches: {rows.Count}   slab memory: {rows.Sum(Size) / 1024} KiB");
        Console.WriteLine(Term.Bold($"  {"OBJS",7} {"ACTIVE",7} {"USE",4} {"OBJ SIZE",9} {"SLABS",6} {"OBJ/SLAB",8} {"CACHE SIZE",10}  NAME"));
        foreach (SlabRow r in shown)
        {
            long use = r.Total == 0 ? 0 : 100 * r.Active / r.Total;
            string name = always.Contains(r.Name) ? Term.Yellow(r.Name) : r.Name;
            Console.WriteLine($"  {r.Total,7} {r.Active,7} {use,3}% {r.ObjSize / 1024.0,7:0.00}K {r.Slabs,6} {r.PerSlab,8} {Size(r) / 1024,9}K  {name}");
        }
    }

    /// <summary>/proc/buddyinfo as a table: free blocks per order for each zone, and what they add up to.</summary>
    public static void PrintBuddyinfo(string text)
    {
        Console.Write(Term.Bold($"  {"node",4} {"zone",-8}"));
        for (int order = 0; order <= Kernel.MAX_ORDER; order++) Console.Write(Term.Bold($" {order,5}"));
        Console.WriteLine(Term.Bold("   free"));
        foreach (string line in Lines(text))
        {
            string[] t = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (t.Length < 5 || t[0] != "Node") continue;
            long[] counts = t.Skip(4).Select(Num).ToArray();
            long freeKb = counts.Select((c, order) => c << order).Sum() * Kernel.PAGE_SIZE / 1024;
            Console.Write($"  {t[1].TrimEnd(','),4} {t[3],-8}");
            foreach (long c in counts) Console.Write($" {c,5}");
            Console.WriteLine($" {freeKb / 1024.0,6:0.0}M");
        }
    }

    /// <summary>/proc/vmallocinfo: each area with its size and who made it.</summary>
    public static void PrintVmallocinfo(string text)
    {
        var lines = Lines(text).ToList();
        if (lines.Count == 0)
        {
            Console.WriteLine("  (no vmalloc areas)");
            return;
        }
        foreach (string line in lines)
        {
            string[] t = line.Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
            if (t.Length < 2) continue;
            string rest = t.Length > 2 ? t[2] : "";
            Console.WriteLine($"  {t[0]} {Num(t[1]) / 1024,7}K  {Term.Dim(rest)}");
        }
    }

    /// <summary>The /proc/meminfo lines a driver writer looks at.</summary>
    public static void PrintMeminfo(string text)
    {
        foreach (string line in Lines(text))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && s_meminfoKeys.Contains(line.Substring(0, colon))) Console.WriteLine("  " + line);
        }
    }

    private static IEnumerable<string> Lines(string text) =>
        text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0);

    private static long Num(string s) => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v : 0;
}
