using System;
using System.Collections.Generic;

namespace KmemGuard;

// The entry points behind Kernel.Slab.cs that are not the allocation core.
internal sealed partial class SlabAllocator
{
    /// <summary>might_sleep_if(gfpflags_allow_blocking(flags)) for callers outside the allocator (mempool).</summary>
    public static void MightSleepIf(gfp_t flags, CallSite site)
    {
        if ((flags & Kernel.__GFP_DIRECT_RECLAIM) != 0) BeforeBlockingAllocation(site);
    }

    public void CheckOwner(kmem_cache_t? cache)
    {
        if (cache == null) throw new ArgumentNullException("cachep", "A NULL slab cache (did kmem_cache_create fail?).");
        if (cache.Allocator != this) throw new ArgumentException($"The slab cache '{cache.Name}' belongs to another machine.", "cachep");
    }

    /// <summary>kmem_cache_free: the checked path finds the slab and checks the object; with no check on, it is a push onto the CPU's array.</summary>
    public void CacheFree(kmem_cache_t cache, ulong obj, CallSite site)
    {
        if (obj == 0) return;
        if (cache.Destroyed) cache.ThrowIfDestroyed("kmem_cache_free");
        if (!CheckFrees && !cache.Debug)
        {
            KTask task = CurrentTask();
            PreemptDisable(task);
            CpuCache cc = cache.CpuCaches[task.CpuId];
            if (cc.Count == cc.Objects.Length) Flush(cc, cache.BatchCount, site);
            cc.Objects[cc.Count++] = obj;
            PreemptEnable(task);
            return;
        }
        Slab? slab = SlabOf(obj);
        if (slab == null)
        {
            ReportNonSlabFree(obj, "kmem_cache_free", "free_pages()");
            return;
        }
        if (CheckFrees && !ValidSlabFree(slab, cache, obj, "kmem_cache_free")) return;
        FreeObject(slab.Cache, slab, obj, site);
    }

    /// <summary>Makes exactly <paramref name="requested"/> bytes of a slab object accessible to KASAN, the rest of the object a redzone.</summary>
    public void KasanSetRequested(kmem_cache_t cache, ulong obj, uint requested)
    {
        if (Kasan == null) return;
        ulong accessible = (requested + Kasan.GranuleSize - 1) & ~(Kasan.GranuleSize - 1);
        if (accessible < cache.ObjectSize) Kasan.Poison(obj + accessible, cache.ObjectSize - accessible, Kasan.SlabRedzone);
        Kasan.Unpoison(obj, requested);
    }

    /// <summary>kmem_cache_shrink: drain the CPUs' arrays and the quarantine of the cache, then free its empty slabs.</summary>
    public void Shrink(kmem_cache_t cache)
    {
        kmem_cache_t[] only = { cache };
        for (int cpu = 0; cpu < Machine.Cpus.Length; cpu++) RunOnCpu(cpu, c => DrainCpu(only, c));
        Quarantine?.RemoveCache(cache);
        FreeEmptySlabs(cache);
    }

    /// <summary>Objects of the cache sitting in the CPUs' arrays (a racy count: for tests).</summary>
    public int CpuCached(kmem_cache_t cache)
    {
        int count = 0;
        foreach (CpuCache cc in cache.CpuCaches) count += System.Threading.Volatile.Read(ref cc.Count);
        return count;
    }

    /// <summary>
    /// Every allocated slab object (kmalloc blocks up to KMALLOC_MAX_CACHE_SIZE included) with
    /// what is known of it, for kmemleak's scan. Empty unless objects are tracked
    /// (Frees, Kasan, Kmemleak or SlubDebug checks). Large kmalloc blocks are the pages with
    /// PageFlags.LargeKmalloc.
    /// </summary>
    public List<ObjectInfo> AllocatedObjects()
    {
        var objects = new List<ObjectInfo>();
        foreach (kmem_cache_t cache in Caches())
            VisitAllocated(cache, (slab, i) =>
            {
                objects.Add(slab.Describe(slab.ObjectAddress(i))!);
                return true;
            });
        return objects;
    }
}
