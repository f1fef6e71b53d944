using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull;

/// <summary>
/// scullc (LDD3 chapter 8): scull whose quanta come from a slab cache of quantum-sized objects.
/// Quanta are all the same size and are allocated and freed all the time: exactly what a cache is
/// for, and its objects show up under the cache's own name in /proc/slabinfo.
/// </summary>
public sealed class scullc_dev : scull_dev
{
    private readonly kmem_cache_t _cache;

    public scullc_dev(kmem_cache_t cache, int quantum, int qset = SCULL_QSET)
        : base(quantum, qset) => _cache = cache;

    public override KPtr alloc_quantum()
    {
        KPtr q = kmem_cache_alloc(_cache, GFP_KERNEL);
        // The book clears each new quantum: a slab object still holds its previous owner's bytes.
        if (!q.IsNull) memset(q, 0, quantum);
        return q;
    }

    public override void free_quantum(KPtr q) => kmem_cache_free(_cache, q);
}

/// <summary>The scullc module: one "scullc" cache shared by its devices, as in the book.</summary>
public sealed class scullc_module
{
    public const int SCULLC_NR_DEVS = 4;

    private kmem_cache_t? _cache;

    /// <param name="quantum">The module parameter scullc_quantum: the size of each cache object.</param>
    public scullc_module(int quantum = scull_dev.SCULL_QUANTUM, int qset = scull_dev.SCULL_QSET, int nr_devs = SCULLC_NR_DEVS)
    {
        scullc_quantum = quantum;
        scullc_qset = qset;
        scullc_devices = new scullc_dev[nr_devs];
    }

    public int scullc_quantum { get; }
    public int scullc_qset { get; }
    public scullc_dev[] scullc_devices { get; }

    public int scullc_init()
    {
        // SLAB_HWCACHE_ALIGN: quanta start on a cache line, at the price of a little padding.
        _cache = kmem_cache_create("scullc", scullc_quantum, 0, SLAB_HWCACHE_ALIGN, null, null);
        if (_cache is null) return -errno.ENOMEM;
        for (int i = 0; i < scullc_devices.Length; i++) scullc_devices[i] = new scullc_dev(_cache, scullc_quantum, scullc_qset);
        return 0;
    }

    public void scullc_cleanup()
    {
        if (_cache is null) return;
        foreach (scullc_dev dev in scullc_devices)
        {
            mutex_lock(dev.@lock);
            scull.scull_trim(dev);
            mutex_unlock(dev.@lock);
        }
        // Every object is back in the cache, so destroying it succeeds (it returns 0).
        kmem_cache_destroy(_cache);
        _cache = null;
    }
}
