using System.Text;

namespace KmemGuard;

/// <summary>Prints a GFP mask as the kernel's %pGg does: "0xcc0(GFP_KERNEL)", composites first.</summary>
internal static class GfpNames
{
    // include/trace/events/mmflags.h __def_gfpflag_names, in its order: the first match takes its bits.
    private static readonly (gfp_t Mask, string Name)[] s_names =
    {
        (Kernel.GFP_HIGHUSER, "GFP_HIGHUSER"),
        (Kernel.GFP_USER, "GFP_USER"),
        (Kernel.GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"),
        (Kernel.GFP_KERNEL, "GFP_KERNEL"),
        (Kernel.GFP_NOFS, "GFP_NOFS"),
        (Kernel.GFP_ATOMIC, "GFP_ATOMIC"),
        (Kernel.GFP_NOIO, "GFP_NOIO"),
        (Kernel.GFP_NOWAIT, "GFP_NOWAIT"),
        (Kernel.GFP_DMA, "GFP_DMA"),
        (Kernel.__GFP_HIGHMEM, "__GFP_HIGHMEM"),
        (Kernel.GFP_DMA32, "GFP_DMA32"),
        (Kernel.__GFP_HIGH, "__GFP_HIGH"),
        (Kernel.__GFP_ATOMIC, "__GFP_ATOMIC"),
        (Kernel.__GFP_IO, "__GFP_IO"),
        (Kernel.__GFP_FS, "__GFP_FS"),
        (Kernel.__GFP_NOWARN, "__GFP_NOWARN"),
        (Kernel.__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
        (Kernel.__GFP_NOFAIL, "__GFP_NOFAIL"),
        (Kernel.__GFP_NORETRY, "__GFP_NORETRY"),
        (Kernel.__GFP_COMP, "__GFP_COMP"),
        (Kernel.__GFP_ZERO, "__GFP_ZERO"),
        (Kernel.__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"),
        (Kernel.__GFP_MEMALLOC, "__GFP_MEMALLOC"),
        (Kernel.__GFP_HARDWALL, "__GFP_HARDWALL"),
        (Kernel.__GFP_THISNODE, "__GFP_THISNODE"),
        (Kernel.__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"),
        (Kernel.__GFP_MOVABLE, "__GFP_MOVABLE"),
        (Kernel.__GFP_ACCOUNT, "__GFP_ACCOUNT"),
        (Kernel.__GFP_WRITE, "__GFP_WRITE"),
        (Kernel.__GFP_RECLAIM, "__GFP_RECLAIM"),
        (Kernel.__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
        (Kernel.__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
        (Kernel.__GFP_COLD, "__GFP_COLD"),
    };

    /// <summary>"0x&lt;hex&gt;(NAME|NAME)", as warn_alloc prints mode:%#x(%pGg).</summary>
    public static string Format(gfp_t gfp) => "0x" + ((uint)gfp).ToString("x") + "(" + (gfp == 0 ? "" : Names(gfp)) + ")";

    /// <summary>The names alone, "NAME|NAME" (%pGg); "none" for an empty mask.</summary>
    public static string Names(gfp_t gfp)
    {
        if (gfp == 0) return "none";
        var text = new StringBuilder();
        gfp_t left = gfp;
        foreach (var (mask, name) in s_names)
        {
            if ((left & mask) != mask) continue;
            left &= ~mask;
            if (text.Length != 0) text.Append('|');
            text.Append(name);
        }
        if (left != 0) text.Append(text.Length != 0 ? "|" : "").Append("0x").Append(((uint)left).ToString("x"));
        return text.ToString();
    }
}
