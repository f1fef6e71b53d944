using System;
using System.Collections.Generic;
using KmemGuard;
using static KmemGuard.Kernel;

namespace Scull;

/// <summary>
/// <c>struct sbull_request</c>, in kernel memory: one transfer of whole sectors between the disk
/// and a kernel buffer (the block layer's bio page).
/// </summary>
public readonly struct sbull_request
{
    public const int SIZE = 24;

    public sbull_request(KPtr ptr) => this.ptr = ptr;

    public readonly KPtr ptr;

    public long sector { get => ptr.Read<long>(0); set => ptr.Write(0, value); }
    public int nr_sectors { get => ptr.Read<int>(8); set => ptr.Write(8, value); }
    public bool write { get => ptr.Read<int>(12) != 0; set => ptr.Write(12, value ? 1 : 0); }
    public KPtr buffer { get => ptr.Read<KPtr>(16); set => ptr.Write(16, value); }
}

/// <summary>
/// A RAM disk in the manner of LDD3's sbull, whose requests come from a mempool. Requests are
/// allocated on the I/O path, where running out of memory must not stall the I/O that would free
/// memory: the pool keeps SBULL_MIN_REQUESTS in reserve, and GFP_NOIO keeps reclaim from starting
/// I/O of its own. The disk itself is vmalloc'd, as in sbull: large, and never touched by hardware.
/// </summary>
public sealed class sbull_dev
{
    public const int KERNEL_SECTOR_SIZE = 512;
    public const int SBULL_MIN_REQUESTS = 4;

    private readonly KPtr _data;
    private readonly kmem_cache_t _request_cache;
    private readonly mempool_t _request_pool;
    private readonly spinlock_t _queue_lock = new();
    private readonly Queue<KPtr> _queue = new();
    private readonly work_struct _work = new();
    private long _completed;

    private sbull_dev(long nsectors, KPtr data, kmem_cache_t cache, mempool_t pool)
    {
        this.nsectors = nsectors;
        _data = data;
        _request_cache = cache;
        _request_pool = pool;
        spin_lock_init(_queue_lock);
        // The queue is run by a work item: process context, so the transfer may sleep if it must.
        INIT_WORK(_work, sbull_run_queue);
    }

    public long nsectors { get; }

    /// <summary>Requests completed so far.</summary>
    public long completed => System.Threading.Interlocked.Read(ref _completed);

    /// <summary>Sets up the disk, the request cache and its pool; NULL (here: null) when memory is short.</summary>
    public static sbull_dev? sbull_create(long nsectors)
    {
        KPtr data = vzalloc(nsectors * KERNEL_SECTOR_SIZE);
        if (data.IsNull) return null;
        kmem_cache_t? cache = kmem_cache_create("sbull_request", sbull_request.SIZE, 0, SLAB_HWCACHE_ALIGN, null);
        mempool_t? pool = cache is null ? null : mempool_create_slab_pool(SBULL_MIN_REQUESTS, cache);
        if (pool is null)
        {
            if (cache is not null) kmem_cache_destroy(cache);
            vfree(data);
            return null;
        }
        return new sbull_dev(nsectors, data, cache!, pool);
    }

    /// <summary>
    /// Queues a transfer of <paramref name="nr_sectors"/> sectors to or from <paramref name="buffer"/>
    /// and kicks the queue. Returns 0, or -EINVAL for a transfer beyond the end of the disk.
    /// </summary>
    public int sbull_submit(long sector, int nr_sectors, KPtr buffer, bool write)
    {
        if (sector < 0 || nr_sectors <= 0 || sector + nr_sectors > nsectors) return -errno.EINVAL;
        // A sleeping mask: mempool_alloc then never fails, it waits for a request to complete.
        var req = new sbull_request(mempool_alloc(_request_pool, GFP_NOIO));
        req.sector = sector;
        req.nr_sectors = nr_sectors;
        req.write = write;
        req.buffer = buffer;

        spin_lock_irqsave(_queue_lock, out ulong flags);
        _queue.Enqueue(req.ptr);
        spin_unlock_irqrestore(_queue_lock, flags);
        schedule_work(_work);
        return 0;
    }

    /// <summary>Waits until every queued request has completed.</summary>
    public void sbull_sync() => flush_work(_work);

    private void sbull_run_queue(work_struct work)
    {
        while (true)
        {
            KPtr next;
            spin_lock_irqsave(_queue_lock, out ulong flags);
            bool any = _queue.TryDequeue(out next);
            spin_unlock_irqrestore(_queue_lock, flags);
            if (!any) return;

            var req = new sbull_request(next);
            sbull_transfer(req.sector, req.nr_sectors, req.buffer, req.write);
            // Completing the request hands its memory back, refilling the reserve first.
            mempool_free(req.ptr, _request_pool);
            System.Threading.Interlocked.Increment(ref _completed);
        }
    }

    private void sbull_transfer(long sector, int nsect, KPtr buffer, bool write)
    {
        KPtr disk = _data + sector * KERNEL_SECTOR_SIZE;
        long nbytes = (long)nsect * KERNEL_SECTOR_SIZE;
        if (write) memcpy(disk, buffer, nbytes);
        else memcpy(buffer, disk, nbytes);
    }

    public void sbull_destroy()
    {
        flush_work(_work);
        mempool_destroy(_request_pool);
        kmem_cache_destroy(_request_cache);
        vfree(_data);
    }
}
