using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace KmemGuard;

public sealed partial class Machine
{
    private VmallocAllocator? _vmalloc;

    /// <summary>The vmalloc allocator; there is none in early boot, as in the kernel.</summary>
    internal VmallocAllocator Vmalloc =>
        _vmalloc ?? throw new InvalidOperationException("vmalloc is not available in early boot: call Machine.FinishBoot() first (use alloc_bootmem until then).");

    partial void InitVmalloc()
    {
        _vmalloc = new VmallocAllocator(this);
        Memory.VmallocOwner = _vmalloc;
        ProcFiles.Register("/proc/vmallocinfo", RenderVmallocinfo);
    }

    /// <summary>/proc/vmallocinfo (mm/vmalloc.c, s_show): every live vmalloc, vmap and ioremap area, by address.</summary>
    internal string RenderVmallocinfo()
    {
        var areas = new List<VmArea>();
        if (_vmalloc != null) areas.AddRange(_vmalloc.Space.LiveAreas());
        if (_ioremap != null) areas.AddRange(_ioremap.Space.LiveAreas());
        areas.Sort((a, b) => a.Start.CompareTo(b.Start));
        var text = new StringBuilder();
        var perNode = new int[Ram.Nodes.Length];
        foreach (VmArea area in areas)
        {
            text.Append("0x").Append(area.Start.ToString("x16")).Append("-0x").Append(area.End.ToString("x16"))
                .Append(' ').Append((area.End - area.Start).ToString(CultureInfo.InvariantCulture).PadLeft(7));
            if (area.Caller.Member.Length > 0) text.Append(' ').Append(area.Caller.Member).Append("+0x0/0x0");
            page[]? pages = area.Pages;
            int nrPages = area.NrPages;
            if (pages != null && nrPages > 0) text.Append(" pages=").Append(nrPages);
            if (area.PhysAddr != 0) text.Append(" phys=0x").Append(area.PhysAddr.ToString("x16"));
            if ((area.Flags & VmFlags.Ioremap) != 0) text.Append(" ioremap");
            if ((area.Flags & VmFlags.Alloc) != 0) text.Append(" vmalloc");
            if ((area.Flags & VmFlags.Map) != 0) text.Append(" vmap");
            if ((area.Flags & VmFlags.UserMap) != 0) text.Append(" user");
            if (pages != null)
            {
                Array.Clear(perNode);
                for (int i = 0; i < nrPages; i++) perNode[pages[i].Zone.Node.Id]++;
                for (int n = 0; n < perNode.Length; n++)
                    if (perNode[n] != 0) text.Append(" N").Append(n).Append('=').Append(perNode[n]);
            }
            text.Append('\n');
        }
        return text.ToString();
    }
}
