namespace KmemGuard;

public sealed partial class Machine
{
    private SlabAllocator? _slab;

    /// <summary>The slab allocator; it starts after the page allocator (not in early boot).</summary>
    internal SlabAllocator Slab => _slab ?? throw new System.InvalidOperationException(
        "The slab allocator is not up yet: in early boot only alloc_bootmem allocates (call FinishBoot first).");

    partial void InitSlab()
    {
        var slab = new SlabAllocator(this);
        _slab = slab;
        ProcFiles.Register("/proc/slabinfo", slab.RenderSlabinfo);
        // Reclaim hands back the empty slabs that caches keep for reuse.
        PageAllocator.RegisterShrinker(_ => slab.ShrinkAll());
    }
}
