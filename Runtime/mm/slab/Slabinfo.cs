using System.Globalization;
using System.Text;

namespace KmemGuard;

// /proc/slabinfo, version 2.1 (mm/slab_common.c cache_show).
internal sealed partial class SlabAllocator
{
    /// <summary>A cache's numbers: objects out of the slabs (in use or on a CPU's array) count as active, as SLUB counts them.</summary>
    public readonly record struct CacheStats(long ActiveObjects, long TotalObjects, long ActiveSlabs, long Slabs);

    public static CacheStats StatsOf(kmem_cache_t cache)
    {
        long active = 0, total = 0, activeSlabs = 0, slabs = 0;
        foreach (KmemCacheNode node in cache.Nodes)
        {
            lock (node.ListLock)
            {
                total += node.TotalObjects;
                active += node.TotalObjects - node.FreeObjects;
                slabs += node.Slabs;
                activeSlabs += node.Slabs - node.Empty.Count;
            }
        }
        return new CacheStats(active, total, activeSlabs, slabs);
    }

    internal string RenderSlabinfo()
    {
        var text = new StringBuilder();
        text.Append("slabinfo - version: 2.1\n");
        text.Append("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
        foreach (kmem_cache_t cache in Caches())
        {
            CacheStats stats = StatsOf(cache);
            text.Append(string.Format(CultureInfo.InvariantCulture, "{0,-17} {1,6} {2,6} {3,6} {4,4} {5,4} : tunables {6,4} {7,4} {8,4} : slabdata {9,6} {10,6} {11,6}\n",
                cache.Name, stats.ActiveObjects, stats.TotalObjects, cache.Size, cache.ObjectsPerSlab, 1 << cache.Order,
                cache.Limit, cache.BatchCount, 0, stats.ActiveSlabs, stats.Slabs, 0));
        }
        return text.ToString();
    }
}
