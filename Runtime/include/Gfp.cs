using System;

namespace KmemGuard;

/// <summary>
/// The kernel's GFP ("get free page") mask. An enum so that masks are compile-time constants:
/// the analyzers read <c>GFP_KERNEL | __GFP_NOWARN</c> by value. Bit values follow Linux 5.x
/// (include/linux/gfp.h); <c>__GFP_COLD</c>, removed in 4.15, keeps a bit of its own here.
/// </summary>
[Flags]
public enum gfp_t : uint
{
    None = 0,
    ___GFP_DMA = 0x01,
    ___GFP_HIGHMEM = 0x02,
    ___GFP_DMA32 = 0x04,
    ___GFP_MOVABLE = 0x08,
    ___GFP_RECLAIMABLE = 0x10,
    ___GFP_HIGH = 0x20,
    ___GFP_IO = 0x40,
    ___GFP_FS = 0x80,
    ___GFP_ZERO = 0x100,
    ___GFP_ATOMIC = 0x200,
    ___GFP_DIRECT_RECLAIM = 0x400,
    ___GFP_KSWAPD_RECLAIM = 0x800,
    ___GFP_WRITE = 0x1000,
    ___GFP_NOWARN = 0x2000,
    ___GFP_RETRY_MAYFAIL = 0x4000,
    ___GFP_NOFAIL = 0x8000,
    ___GFP_NORETRY = 0x10000,
    ___GFP_MEMALLOC = 0x20000,
    ___GFP_COMP = 0x40000,
    ___GFP_NOMEMALLOC = 0x80000,
    ___GFP_HARDWALL = 0x100000,
    ___GFP_THISNODE = 0x200000,
    ___GFP_ACCOUNT = 0x400000,
    ___GFP_COLD = 0x1000000,
}

public static partial class Kernel
{
    public const gfp_t __GFP_DMA = gfp_t.___GFP_DMA;
    public const gfp_t __GFP_HIGHMEM = gfp_t.___GFP_HIGHMEM;
    public const gfp_t __GFP_DMA32 = gfp_t.___GFP_DMA32;
    public const gfp_t __GFP_MOVABLE = gfp_t.___GFP_MOVABLE;
    public const gfp_t __GFP_RECLAIMABLE = gfp_t.___GFP_RECLAIMABLE;
    public const gfp_t __GFP_HIGH = gfp_t.___GFP_HIGH;
    public const gfp_t __GFP_IO = gfp_t.___GFP_IO;
    public const gfp_t __GFP_FS = gfp_t.___GFP_FS;
    public const gfp_t __GFP_ZERO = gfp_t.___GFP_ZERO;
    public const gfp_t __GFP_ATOMIC = gfp_t.___GFP_ATOMIC;
    public const gfp_t __GFP_DIRECT_RECLAIM = gfp_t.___GFP_DIRECT_RECLAIM;
    public const gfp_t __GFP_KSWAPD_RECLAIM = gfp_t.___GFP_KSWAPD_RECLAIM;
    public const gfp_t __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
    public const gfp_t __GFP_WRITE = gfp_t.___GFP_WRITE;
    public const gfp_t __GFP_NOWARN = gfp_t.___GFP_NOWARN;
    public const gfp_t __GFP_RETRY_MAYFAIL = gfp_t.___GFP_RETRY_MAYFAIL;
    /// <summary>LDD3's name: "try harder"; today's kernels call it __GFP_RETRY_MAYFAIL.</summary>
    public const gfp_t __GFP_REPEAT = __GFP_RETRY_MAYFAIL;
    public const gfp_t __GFP_NOFAIL = gfp_t.___GFP_NOFAIL;
    public const gfp_t __GFP_NORETRY = gfp_t.___GFP_NORETRY;
    public const gfp_t __GFP_MEMALLOC = gfp_t.___GFP_MEMALLOC;
    public const gfp_t __GFP_COMP = gfp_t.___GFP_COMP;
    public const gfp_t __GFP_NOMEMALLOC = gfp_t.___GFP_NOMEMALLOC;
    public const gfp_t __GFP_HARDWALL = gfp_t.___GFP_HARDWALL;
    public const gfp_t __GFP_THISNODE = gfp_t.___GFP_THISNODE;
    public const gfp_t __GFP_ACCOUNT = gfp_t.___GFP_ACCOUNT;
    /// <summary>LDD3's cache-cold page hint (see free_cold_page).</summary>
    public const gfp_t __GFP_COLD = gfp_t.___GFP_COLD;
    /// <summary>LDD3's name for the bit that lets an allocation sleep: __GFP_DIRECT_RECLAIM.</summary>
    public const gfp_t __GFP_WAIT = __GFP_DIRECT_RECLAIM;

    public const gfp_t GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM;
    public const gfp_t GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
    public const gfp_t GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
    public const gfp_t GFP_NOWAIT = __GFP_KSWAPD_RECLAIM;
    public const gfp_t GFP_NOIO = __GFP_RECLAIM;
    public const gfp_t GFP_NOFS = __GFP_RECLAIM | __GFP_IO;
    public const gfp_t GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
    public const gfp_t GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
    public const gfp_t GFP_DMA = __GFP_DMA;
    public const gfp_t GFP_DMA32 = __GFP_DMA32;

    /// <summary>True when an allocation with this mask may sleep (it may enter direct reclaim).</summary>
    public static bool gfpflags_allow_blocking(gfp_t gfp_flags) => (gfp_flags & __GFP_DIRECT_RECLAIM) != 0;
}
