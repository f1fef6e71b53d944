using System;
using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull;

/// <summary>
/// scullp (LDD3 chapter 8): each quantum is a block of 2^order whole pages from the buddy
/// allocator. No slab overhead, and a quantum is physically contiguous.
/// </summary>
public sealed class scullp_dev : scull_dev
{
    public scullp_dev(int order, int qset = SCULL_QSET)
        : base(PAGE_SIZE << CheckOrder(order), qset) => this.order = order;

    /// <summary>The module parameter scullp_order: every quantum is 2^order pages.</summary>
    public int order { get; }

    public override KPtr alloc_quantum()
    {
        // __get_free_pages returns an address (unsigned long), not a pointer: cast it, as the book does.
        ulong addr = __get_free_pages(GFP_KERNEL, order);
        if (addr == 0) return NULL;
        KPtr q = (KPtr)addr;
        memset(q, 0, quantum);
        return q;
    }

    public override void free_quantum(KPtr q) => free_pages((ulong)q, order);

    internal static int CheckOrder(int order) =>
        order is >= 0 and <= MAX_ORDER ? order : throw new ArgumentOutOfRangeException(nameof(order), order, $"A page order is 0..{MAX_ORDER}.");
}

/// <summary>
/// scullv (LDD3 chapter 8): the same quanta from vmalloc. Virtually contiguous only, built from
/// single pages: it cannot fail for lack of a contiguous block, but costs page-table work.
/// </summary>
public sealed class scullv_dev : scull_dev
{
    public scullv_dev(int order, int qset = SCULL_QSET)
        : base(PAGE_SIZE << scullp_dev.CheckOrder(order), qset) => this.order = order;

    public int order { get; }

    public override KPtr alloc_quantum()
    {
        KPtr q = vmalloc(quantum);
        if (!q.IsNull) memset(q, 0, quantum);
        return q;
    }

    public override void free_quantum(KPtr q) => vfree(q);
}
