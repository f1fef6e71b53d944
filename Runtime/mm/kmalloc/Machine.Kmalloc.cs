namespace KmemGuard;

public sealed partial class Machine
{
    private KmallocCaches? _kmalloc;

    /// <summary>The kmalloc size classes; they start right after the slab allocator.</summary>
    internal KmallocCaches Kmalloc => _kmalloc ?? throw new System.InvalidOperationException(
        "kmalloc is not up yet: in early boot only alloc_bootmem allocates (call FinishBoot first).");

    partial void InitKmalloc() => _kmalloc = new KmallocCaches(Slab);
}
