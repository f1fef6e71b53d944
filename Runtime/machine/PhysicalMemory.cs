using System;
using System.Collections.Generic;

namespace KmemGuard;

/// <summary>
/// The machine's RAM: one memfd per node, all mapped contiguously as the direct map, and a
/// <see cref="page"/> descriptor for every frame (mem_map).
/// </summary>
internal sealed unsafe class PhysicalMemory : IDisposable
{
    public const ulong DmaLimit = 16UL << 20;
    public const ulong Dma32Limit = 4UL << 30;
    public const ulong HighMemStart = 896UL << 20;

    private readonly page[] _pages;
    private byte* _host;

    public PhysicalMemory(MachineOptions options)
    {
        TotalBytes = (ulong)options.MemoryBytes;
        _host = HostMemory.Reserve(TotalBytes);
        _pages = new page[TotalBytes >> Kernel.PAGE_SHIFT];
        ulong perNode = TotalBytes / (ulong)options.NumaNodes;
        Nodes = new NumaNode[options.NumaNodes];
        var zones = new List<Zone>();
        for (int n = 0; n < Nodes.Length; n++)
        {
            ulong start = perNode * (ulong)n, end = start + perNode;
            int fd = HostMemory.CreateRamFile($"kmemguard-node{n}", (long)perNode);
            HostMemory.MapFile(_host + start, perNode, fd, 0);
            var node = new NumaNode(n, start >> Kernel.PAGE_SHIFT, end >> Kernel.PAGE_SHIFT, fd);
            node.Zones = BuildZones(node, start, end, options.HighMem);
            foreach (Zone zone in node.Zones)
            {
                zones.Add(zone);
                for (ulong pfn = zone.StartPfn; pfn < zone.EndPfn; pfn++) _pages[pfn] = new page(pfn, zone);
            }
            Nodes[n] = node;
        }
        Zones = zones.ToArray();
    }

    public ulong TotalBytes { get; }
    public ulong TotalPages => (ulong)_pages.Length;
    public NumaNode[] Nodes { get; }

    /// <summary>Every zone of every node, lowest address first.</summary>
    public Zone[] Zones { get; }

    private static Zone[] BuildZones(NumaNode node, ulong start, ulong end, bool highMem)
    {
        var bounds = highMem
            ? new (ZoneType, ulong)[] { (ZoneType.DMA, DmaLimit), (ZoneType.Normal, HighMemStart), (ZoneType.HighMem, ulong.MaxValue) }
            : new (ZoneType, ulong)[] { (ZoneType.DMA, DmaLimit), (ZoneType.DMA32, Dma32Limit), (ZoneType.Normal, ulong.MaxValue) };
        var zones = new List<Zone>();
        ulong low = 0;
        foreach (var (type, limit) in bounds)
        {
            ulong zoneStart = Math.Max(start, low), zoneEnd = Math.Min(end, limit);
            if (zoneStart < zoneEnd) zones.Add(new Zone(node, type, zoneStart >> Kernel.PAGE_SHIFT, zoneEnd >> Kernel.PAGE_SHIFT));
            low = limit;
        }
        return zones.ToArray();
    }

    public bool IsValidPfn(ulong pfn) => pfn < (ulong)_pages.Length;

    public page PageAt(ulong pfn) => _pages[pfn];

    public page? PageAtOrNull(ulong pfn) => pfn < (ulong)_pages.Length ? _pages[pfn] : null;

    public byte* Host(ulong physAddress) => _host + physAddress;

    public NumaNode NodeOf(ulong pfn)
    {
        foreach (NumaNode node in Nodes)
            if (pfn >= node.StartPfn && pfn < node.EndPfn) return node;
        throw new ArgumentOutOfRangeException(nameof(pfn), pfn, "No node holds this frame.");
    }

    public void Dispose()
    {
        HostMemory.Release(_host, TotalBytes);
        _host = null;
        foreach (NumaNode node in Nodes) HostMemory.CloseFile(node.RamFile);
    }
}
