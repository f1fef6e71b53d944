using System.Threading;

namespace KmemGuard;

public sealed partial class Machine
{
    private Bootmem? _bootmem;

    /// <summary>The boot-time allocator (alive after boot too: its allocations stay reserved).</summary>
    internal Bootmem Bootmem => LazyInitializer.EnsureInitialized(ref _bootmem, () => new Bootmem(this));

    partial void InitBootmem() => _ = Bootmem;

    partial void HandOverBootmem() => Bootmem.HandOver();

    /// <summary>True when the frame holding <paramref name="phys"/> belongs to a bootmem allocation (PG_reserved, owned by bootmem).</summary>
    internal bool IsBootmem(ulong phys)
    {
        page? frame = Ram.PageAtOrNull(phys >> Kernel.PAGE_SHIFT);
        return frame != null && frame.Has(PageFlags.Reserved) && frame.Owner is Bootmem;
    }
}
