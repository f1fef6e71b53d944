using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// The machine's slab allocator: the list of caches (slab_caches under slab_mutex), the per-CPU
/// fast path, slab growth from the buddy allocator and the return of empty slabs.
/// Allocation and free on one CPU take no shared lock: the task becomes non-preemptible and
/// uses its CPU's array; refill and flush move a batch under the node's list_lock.
/// </summary>
internal sealed unsafe partial class SlabAllocator
{
    private const int TrackSlotsPerCpu = 64;

    private readonly List<kmem_cache_t> _caches = new();
    private readonly Lock _slabMutex = new();
    private readonly Track?[] _tracks;
    private readonly KTask _ipiTask;

    public SlabAllocator(Machine machine)
    {
        Machine = machine;
        Ram = machine.Ram;
        _kasan = machine.Memory.Kasan;
        _slubDebug = machine.IsChecking(Checks.SlubDebug);
        _tracking = machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak | Checks.SlubDebug);
        _checkFrees = machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.SlubDebug);
        _sanity = machine.IsChecking(Checks.Sanity);
        _tracks = new Track?[machine.Cpus.Length * TrackSlotsPerCpu];
        _ipiTask = new KTask(machine, 0, "slab_ipi", 0);
        if (Kasan != null) _quarantine = new Quarantine(this, machine.Ram.TotalBytes / 32, machine.Cpus.Length);
        if (machine.IsChecking(Checks.Kmemleak))
        {
            _kmemleak = machine.Kmemleak;
            _kmemleak.AddObjectSource(this);
        }
    }

    public Machine Machine { get; }
    public PhysicalMemory Ram { get; }
    public Kasan? Kasan => Machine.ChecksCompiledIn ? _kasan : null;
    public Quarantine? Quarantine => Machine.ChecksCompiledIn ? _quarantine : null;

    // Read through Machine.ChecksCompiledIn, so that a build without the check code folds them to false.
    private readonly bool _slubDebug, _tracking, _checkFrees, _sanity;
    private readonly Quarantine? _quarantine;
    private readonly Kasan? _kasan;

    /// <summary>slub_debug for every cache (red zones and poison).</summary>
    public bool SlubDebug => Machine.ChecksCompiledIn && _slubDebug;

    /// <summary>Per-object state, requested size and alloc/free tracks are kept.</summary>
    public bool Tracking => Machine.ChecksCompiledIn && _tracking;

    /// <summary>Double, invalid and mismatched frees are looked for (Frees, or KASAN's and slub_debug's own free checks).</summary>
    public bool CheckFrees => Machine.ChecksCompiledIn && _checkFrees;
    public bool Sanity => Machine.ChecksCompiledIn && _sanity;

    /// <summary>Pages in slabs of SLAB_RECLAIM_ACCOUNT caches (SReclaimable in /proc/meminfo).</summary>
    public long ReclaimablePages => Machine.Stats[MemStat.SlabReclaimableBytes] >> Kernel.PAGE_SHIFT;

    /// <summary>Pages in other slabs and in large kmalloc blocks (SUnreclaim in /proc/meminfo).</summary>
    public long UnreclaimablePages => Machine.Stats[MemStat.SlabUnreclaimableBytes] >> Kernel.PAGE_SHIFT;

    internal void AccountLargeKmalloc(int order, int sign) => Machine.Stats.Add(MemStat.SlabUnreclaimableBytes, sign * ((long)Kernel.PAGE_SIZE << order));

    private void AccountSlabPages(kmem_cache_t cache, int sign) =>
        Machine.Stats.Add(cache.Reclaimable ? MemStat.SlabReclaimableBytes : MemStat.SlabUnreclaimableBytes, sign * ((long)Kernel.PAGE_SIZE << cache.Order));

    /// <summary>Where an allocation that may sleep begins: might_sleep (DEBUG_ATOMIC_SLEEP) and a preemption point.</summary>
    private static void BeforeBlockingAllocation(CallSite site) => Kernel.MightSleep(site);

    /// <summary>Logs a warning to the kernel log (<see cref="Machine.Log"/>).</summary>
    public void Warn(string text) => Machine.Warn(text);

    /// <summary>Every live cache, newest first (the order of slab_caches and of /proc/slabinfo).</summary>
    public kmem_cache_t[] Caches()
    {
        lock (_slabMutex)
        {
            var list = _caches.ToArray();
            Array.Reverse(list);
            return list;
        }
    }

    public kmem_cache_t? CreateCache(string? name, size_t size, size_t align, ulong flags,
        kmem_cache_ctor_t? ctor, kmem_cache_ldd_ctor_t? lddCtor, kmem_cache_ldd_ctor_t? dtor, bool isKmalloc = false)
    {
        string? error = name == null ? "NULL name"
            : size.Value == 0 ? "size 0"
            : size.Value > Kernel.KMALLOC_MAX_SIZE ? $"size {size.Value} is larger than KMALLOC_MAX_SIZE"
            : align.Value > Kernel.KMALLOC_MAX_SIZE ? $"alignment {align.Value} is larger than KMALLOC_MAX_SIZE"
            : (flags & ~Kernel.SLAB_VALID_FLAGS) != 0 ? $"invalid flags 0x{flags & ~Kernel.SLAB_VALID_FLAGS:x}"
            : null;
        if (error != null)
        {
            // mm/slab_common.c: the sanity check fails, and without SLAB_PANIC the caller gets NULL.
            Warn($"kmem_cache_create({name ?? "(null)"}) failed with error -22: {error}");
            return null;
        }
        BeforeBlockingAllocation(new CallSite("kmem_cache_create", "mm/slab_common.c", 0));
        var cache = new kmem_cache_t(this, name!, (uint)size.Value, (uint)align.Value, flags, ctor, lddCtor, dtor, isKmalloc);
        if (cache.Order > Kernel.MAX_ORDER)
        {
            Warn($"kmem_cache_create({name}) failed with error -38: objects of {cache.Size} bytes do not fit a MAX_ORDER slab");
            return null;
        }
        lock (_slabMutex) _caches.Add(cache);
        return cache;
    }

    // ---- The calling task and its CPU -------------------------------------------------------

    /// <summary>The calling task, or the irq/softirq context running on this thread (allocations from a handler are the handler's).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public KTask CurrentTask() => Machine.CurrentTask;

    /// <summary>preempt_disable, as the kernel's preempt count does: the first level takes the CPU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PreemptDisable(KTask task) => Kernel.PreemptCountAdd(task, 1, default);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PreemptEnable(KTask task) => Kernel.PreemptEnableNoResched(task);

    /// <summary>
    /// Runs <paramref name="work"/> as CPU <paramref name="cpu"/>'s owner, the way an IPI runs a
    /// function on another CPU: its per-CPU arrays may then be touched. When
    /// <paramref name="wait"/> is false a busy CPU is skipped (returns false).
    /// </summary>
    public bool RunOnCpu(int cpu, Action<int> work, bool wait = true)
    {
        Cpu target = Machine.Cpus[cpu];
        if (ReferenceEquals(Volatile.Read(ref target.Owner), CurrentTask()))
        {
            work(cpu);
            return true;
        }
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref target.Owner, _ipiTask, null) != null)
        {
            if (!wait) return false;
            spin.SpinOnce();
        }
        try
        {
            work(cpu);
        }
        finally
        {
            Volatile.Write(ref target.Owner, null);
        }
        return true;
    }

    /// <summary>A Track for this call site, shared by the calls from it on this CPU in the same jiffy (the caller owns the CPU).</summary>
    public Track TrackFor(KTask task, CallSite site)
    {
        ulong jiffies = Machine.Jiffies;
        int slot = task.CpuId * TrackSlotsPerCpu + (site.Line & (TrackSlotsPerCpu - 1));
        Track? track = _tracks[slot];
        if (track != null && track.Site.Line == site.Line && track.Pid == task.Pid && track.Jiffies == jiffies
            && track.Cpu == task.CpuId && ReferenceEquals(track.Site.File, site.File) && ReferenceEquals(track.Site.Member, site.Member))
            return track;
        track = new Track(task, site, jiffies);
        _tracks[slot] = track;
        return track;
    }

    // ---- Address to slab ---------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public page? HeadPageOf(ulong address)
    {
        ulong phys = address - AddressLayout.PAGE_OFFSET;
        if (phys >= Ram.TotalBytes) return null;
        page frame = Ram.PageAt(phys >> Kernel.PAGE_SHIFT);
        return frame.Head ?? frame;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Slab? SlabOf(ulong address) => HeadPageOf(address)?.Owner as Slab;

    /// <summary>get_order: the smallest order whose block holds <paramref name="bytes"/>.</summary>
    public static int PageOrder(ulong bytes)
    {
        if (bytes <= (ulong)Kernel.PAGE_SIZE) return 0;
        return 64 - System.Numerics.BitOperations.LeadingZeroCount((bytes - 1) >> Kernel.PAGE_SHIFT);
    }

    // ---- Allocation --------------------------------------------------------------------------

    /// <summary>
    /// slab_alloc_node: an object of <paramref name="cache"/>, or 0. <paramref name="requested"/>
    /// is what the caller asked for (kmalloc) or the object size; <paramref name="node"/> is a
    /// NUMA preference (-1: the CPU's node).
    /// </summary>
    public ulong Alloc(kmem_cache_t cache, gfp_t flags, int node, uint requested, CallSite site)
    {
        if (cache.Destroyed) cache.ThrowIfDestroyed("kmem_cache_alloc");
        if ((flags & GfpSlabBugMask) != 0) flags = FixFlags(flags, site);
        KTask task = CurrentTask();
        if ((flags & Kernel.__GFP_DIRECT_RECLAIM) != 0) Kernel.MightSleep(Machine, task, site);
        if (Machine.ShouldFailSlab(flags, cache.ObjectSize)) return 0;
        PreemptDisable(task);
        ulong obj;
        if (node >= 0 && node < cache.Nodes.Length && node != Machine.Cpus[task.CpuId].Node)
        {
            obj = AllocFromNodeGuarded(cache, task, flags, node, site);
        }
        else
        {
            CpuCache cc = cache.CpuCaches[task.CpuId];
            obj = cc.Count != 0 ? cc.Objects[--cc.Count] : RefillGuarded(cache, task, flags, site);
        }
        Track? track = Tracking && obj != 0 ? TrackFor(task, site) : null;
        // kmemleak's order number is an atomic add: taken here, before the object's memory is
        // touched, it does not wait for those cache misses (a locked instruction drains them).
        long leakSequence = LeakTracking && obj != 0 ? _kmemleak!.NextSequence() : 0;
        PreemptEnable(task);
        if (obj == 0)
        {
            if ((flags & Kernel.__GFP_NOWARN) == 0)
                Warn($"SLUB: Unable to allocate memory on node {node}, gfp={GfpNames.Names(flags)}\n  cache: {cache.Name}, object size: {cache.ObjectSize}, buffer size: {cache.Size}, default order: {cache.Order}, min order: {cache.Order}");
            return 0;
        }
        if (cache.Debug) PostAlloc(cache, obj, requested, track, leakSequence);
        if ((flags & Kernel.__GFP_ZERO) != 0) new Span<byte>(HostOf(obj), (int)(cache.RedZone ? requested : cache.ObjectSize)).Clear();
        return obj;
    }

    public byte* HostOf(ulong address) => Ram.Host(KernelMemory.ToPhys(address));

    private ulong RefillGuarded(kmem_cache_t cache, KTask task, gfp_t flags, CallSite site)
    {
        try
        {
            return Refill(cache, task, flags, site);
        }
        catch
        {
            PreemptEnable(task);
            throw;
        }
    }

    private ulong AllocFromNodeGuarded(kmem_cache_t cache, KTask task, gfp_t flags, int node, CallSite site)
    {
        try
        {
            return AllocFromNode(cache, task, flags, node, site);
        }
        catch
        {
            PreemptEnable(task);
            throw;
        }
    }

    /// <summary>
    /// The CPU's array is empty: move a batch from the node's partial (then empty) slabs, or grow
    /// the cache by a slab. Entered and left with the CPU held (even when it throws); the CPU is
    /// let go while a new slab is built, as SLUB enables interrupts around allocate_slab, so the
    /// task may come back on another CPU.
    /// </summary>
    private ulong Refill(kmem_cache_t cache, KTask task, gfp_t flags, CallSite site)
    {
        CpuCache cc = cache.CpuCaches[task.CpuId];
        KmemCacheNode node = cache.Nodes[Machine.Cpus[task.CpuId].Node];
        lock (node.ListLock) TakeObjects(cache, node, cc, cache.BatchCount);
        if (cc.Count != 0) return cc.Objects[--cc.Count];

        Slab? slab = GrowWithCpuLetGo(cache, task, flags, Machine.Cpus[task.CpuId].Node, site);
        if (slab == null) return 0;
        cc = cache.CpuCaches[task.CpuId];
        KmemCacheNode home = cache.Nodes[slab.NodeId];
        lock (home.ListLock)
        {
            AddSlab(cache, home, slab);
            TakeFromSlab(cache, home, slab, cc, Math.Min(cache.BatchCount, cc.Objects.Length - cc.Count));
        }
        return cc.Count != 0 ? cc.Objects[--cc.Count] : 0;
    }

    /// <summary>An object from a given node's slabs, bypassing the CPU's array (____cache_alloc_node).</summary>
    private ulong AllocFromNode(kmem_cache_t cache, KTask task, gfp_t flags, int nodeId, CallSite site)
    {
        KmemCacheNode node = cache.Nodes[nodeId];
        lock (node.ListLock)
        {
            ulong obj = TakeOne(cache, node);
            if (obj != 0) return obj;
        }
        Slab? slab = GrowWithCpuLetGo(cache, task, flags, nodeId, site);
        if (slab == null) return 0;
        KmemCacheNode home = cache.Nodes[slab.NodeId];
        lock (home.ListLock)
        {
            AddSlab(cache, home, slab);
            return TakeOne(cache, home);
        }
    }

    private Slab? GrowWithCpuLetGo(kmem_cache_t cache, KTask task, gfp_t flags, int nodeId, CallSite site)
    {
        bool outermost = task.PreemptCount == 1;
        if (outermost) PreemptEnable(task);
        try
        {
            return NewSlab(cache, flags, nodeId, site);
        }
        finally
        {
            if (outermost) PreemptDisable(task);
        }
    }

    private ulong TakeOne(kmem_cache_t cache, KmemCacheNode node)
    {
        Slab? slab = node.Partial.First ?? node.Empty.First;
        if (slab == null) return 0;
        int index = slab.FreeStack[--slab.FreeCount];
        node.FreeObjects--;
        Relist(cache, node, slab);
        return slab.ObjectAddress(index);
    }

    /// <summary>Moves up to <paramref name="max"/> free objects from the node's slabs to a CPU array (under list_lock).</summary>
    private static void TakeObjects(kmem_cache_t cache, KmemCacheNode node, CpuCache cc, int max)
    {
        while (max > 0)
        {
            Slab? slab = node.Partial.First ?? node.Empty.First;
            if (slab == null) return;
            max -= TakeFromSlab(cache, node, slab, cc, max);
        }
    }

    private static int TakeFromSlab(kmem_cache_t cache, KmemCacheNode node, Slab slab, CpuCache cc, int max)
    {
        int n = Math.Min(max, slab.FreeCount);
        for (int i = 0; i < n; i++) cc.Objects[cc.Count++] = slab.ObjectAddress(slab.FreeStack[--slab.FreeCount]);
        node.FreeObjects -= n;
        Relist(cache, node, slab);
        return n;
    }

    /// <summary>Puts a slab on the list its free count says: full, partial or empty.</summary>
    private static void Relist(kmem_cache_t cache, KmemCacheNode node, Slab slab)
    {
        SlabList target = slab.FreeCount == 0 ? node.Full : slab.FreeCount == cache.ObjectsPerSlab ? node.Empty : node.Partial;
        if (slab.List == target) return;
        slab.List?.Remove(slab);
        target.Add(slab);
    }

    private static void AddSlab(kmem_cache_t cache, KmemCacheNode node, Slab slab)
    {
        node.Slabs++;
        node.TotalObjects += cache.ObjectsPerSlab;
        node.FreeObjects += slab.FreeCount;
        node.Empty.Add(slab);
    }

    /// <summary>allocate_slab: buddy pages, the slab's metadata, KASAN and debug state, then the constructor on every object.</summary>
    private Slab? NewSlab(kmem_cache_t cache, gfp_t flags, int nodeId, CallSite site)
    {
        gfp_t pageGfp = (flags & ~(Kernel.__GFP_ZERO | GfpSlabBugMask | Kernel.__GFP_DMA)) | cache.PageGfp | Kernel.__GFP_COMP;
        page? head = Machine.PageAllocator.Alloc(pageGfp, cache.Order, nodeId, site);
        if (head == null && Quarantine != null && Quarantine.DrainAll() > 0)
            head = Machine.PageAllocator.Alloc(pageGfp, cache.Order, nodeId, site);
        if (head == null) return null;
        var slab = new Slab(cache, head, Tracking, LeakTracking);
        head.Flags |= PageFlags.Slab;
        head.Owner = slab;
        AccountSlabPages(cache, +1);
        Kasan?.Poison(slab.Base, slab.Bytes, Kasan.SlabRedzone);
        if (cache.RedZone || cache.Poison)
            for (int i = 0; i < cache.ObjectsPerSlab; i++) InitObjectDebug(cache, slab, slab.ObjectAddress(i));
        if (cache.HasCtor) RunConstructors(cache, slab, flags);
        return slab;
    }

    private void RunConstructors(kmem_cache_t cache, Slab slab, gfp_t flags)
    {
        ulong ctorFlags = Kernel.SLAB_CTOR_CONSTRUCTOR | (Kernel.gfpflags_allow_blocking(flags) ? 0 : Kernel.SLAB_CTOR_ATOMIC);
        for (int i = 0; i < cache.ObjectsPerSlab; i++)
        {
            ulong obj = slab.ObjectAddress(i);
            Kasan?.Unpoison(obj, cache.ObjectSize);
            try
            {
                if (cache.Ctor != null) cache.Ctor(new KPtr(obj));
                else cache.LddCtor!(new KPtr(obj), cache, ctorFlags);
            }
            finally
            {
                Kasan?.Poison(obj, cache.ObjectSize, Kasan.SlabRedzone);
            }
        }
    }

    // ---- Free --------------------------------------------------------------------------------

    /// <summary>Frees an object that the checks (if on) found valid: debug state, KASAN, quarantine, then the CPU's array.</summary>
    public void FreeObject(kmem_cache_t cache, Slab? slab, ulong obj, CallSite site)
    {
        if (cache.Debug)
        {
            slab ??= SlabOf(obj)!;
            PreFreeDebug(cache, slab, obj);
        }
        KTask task = CurrentTask();
        PreemptDisable(task);
        if (cache.Debug) MarkFreed(cache, slab!, obj, task, site);
        if (Quarantine != null)
        {
            Quarantine.Put(task.CpuId, slab!, obj, site);
        }
        else
        {
            CpuCache cc = cache.CpuCaches[task.CpuId];
            if (cc.Count == cc.Objects.Length) Flush(cc, cache.BatchCount, site);
            cc.Objects[cc.Count++] = obj;
        }
        PreemptEnable(task);
    }

    /// <summary>Gives the oldest <paramref name="count"/> objects of a CPU's array back to their slabs (free_block).</summary>
    private void Flush(CpuCache cc, int count, CallSite site = default)
    {
        ReturnToSlabs(cc.Objects, null, count, site);
        Array.Copy(cc.Objects, count, cc.Objects, 0, cc.Count - count);
        cc.Count -= count;
    }

    /// <summary>
    /// Returns free objects to their slabs, holding each node's list_lock for a run of objects;
    /// slabs that become empty beyond min_partial go back to the page allocator afterwards.
    /// <paramref name="site"/> is the free that caused it: the pages' free track (a known site
    /// costs a depot lookup; an unknown one a stack walk per slab). <paramref name="slabs"/>, when
    /// the caller kept them, are the objects' slabs (else they are looked up).
    /// </summary>
    public void ReturnToSlabs(ulong[] objects, Slab[]? slabs, int count, CallSite site = default)
    {
        Slab? discard = null;
        KmemCacheNode? locked = null;
        try
        {
            for (int i = 0; i < count; i++)
            {
                Slab slab = slabs?[i] ?? SlabOf(objects[i])!;
                KmemCacheNode node = slab.Cache.Nodes[slab.NodeId];
                if (node != locked)
                {
                    locked?.ListLock.Exit();
                    node.ListLock.Enter();
                    locked = node;
                }
                if (ReturnOne(slab, node, objects[i])) (slab.Next, discard) = (discard, slab);
            }
        }
        finally
        {
            locked?.ListLock.Exit();
        }
        DiscardChain(discard, site);
    }

    /// <summary>One object back on its slab's freelist (list_lock held); true when the slab is to be discarded.</summary>
    private static bool ReturnOne(Slab slab, KmemCacheNode node, ulong obj)
    {
        kmem_cache_t cache = slab.Cache;
        // A double free that no check caught (checks off) must still not overrun the freelist.
        if (slab.FreeCount == cache.ObjectsPerSlab) return false;
        slab.FreeStack[slab.FreeCount++] = slab.StrideIndex(obj);
        node.FreeObjects++;
        Relist(cache, node, slab);
        if (slab.FreeCount != cache.ObjectsPerSlab || node.Empty.Count <= cache.MinPartial || (cache.Flags & Kernel.SLAB_NO_REAP) != 0)
            return false;
        UnlinkSlab(cache, node, slab);
        return true;
    }

    private static void UnlinkSlab(kmem_cache_t cache, KmemCacheNode node, Slab slab)
    {
        slab.List!.Remove(slab);
        node.Slabs--;
        node.TotalObjects -= cache.ObjectsPerSlab;
        node.FreeObjects -= cache.ObjectsPerSlab;
    }

    private void DiscardChain(Slab? chain, CallSite site = default)
    {
        while (chain != null)
        {
            Slab next = chain.Next!;
            chain.Next = null;
            DiscardSlab(chain, site);
            chain = next;
        }
    }

    /// <summary>discard_slab: the LDD3 destructor on every object, then the pages go back to the buddy allocator.</summary>
    private void DiscardSlab(Slab slab, CallSite site)
    {
        kmem_cache_t cache = slab.Cache;
        if (cache.Dtor != null)
        {
            Kasan?.Unpoison(slab.Base, slab.Bytes);
            for (int i = 0; i < cache.ObjectsPerSlab; i++) cache.Dtor(new KPtr(slab.ObjectAddress(i)), cache, 0);
        }
        AccountSlabPages(cache, -1);
        Machine.PageAllocator.Free(slab.Page, cache.Order, site);
    }

    // ---- Shrinking and destroying ------------------------------------------------------------

    /// <summary>
    /// The slab shrinker: drains every idle CPU's arrays and the KASAN quarantine, then frees every
    /// empty slab (but those of SLAB_NO_REAP caches). Returns the pages given back.
    /// </summary>
    public long ShrinkAll()
    {
        long before = ReclaimablePages + UnreclaimablePages;
        kmem_cache_t[] caches = Caches();
        for (int cpu = 0; cpu < Machine.Cpus.Length; cpu++)
            RunOnCpu(cpu, c => DrainCpu(caches, c), wait: false);
        Quarantine?.DrainAll();
        foreach (kmem_cache_t cache in caches)
            if ((cache.Flags & Kernel.SLAB_NO_REAP) == 0) FreeEmptySlabs(cache);
        return before - (ReclaimablePages + UnreclaimablePages);
    }

    private void DrainCpu(kmem_cache_t[] caches, int cpu)
    {
        Quarantine?.FlushPending(cpu);
        foreach (kmem_cache_t cache in caches)
        {
            CpuCache cc = cache.CpuCaches[cpu];
            if (cc.Count != 0) Flush(cc, cc.Count);
        }
    }

    private void FreeEmptySlabs(kmem_cache_t cache)
    {
        Slab? discard = null;
        foreach (KmemCacheNode node in cache.Nodes)
        {
            lock (node.ListLock)
            {
                while (node.Empty.First != null)
                {
                    Slab slab = node.Empty.First!;
                    UnlinkSlab(cache, node, slab);
                    (slab.Next, discard) = (discard, slab);
                }
            }
        }
        DiscardChain(discard);
    }

    /// <summary>
    /// kmem_cache_destroy: drains the quarantine and every CPU's array of the cache; with objects
    /// still live nothing is destroyed (CacheNotEmpty) and -EBUSY is returned.
    /// </summary>
    public int Destroy(kmem_cache_t cache, CallSite site)
    {
        cache.ThrowIfDestroyed("kmem_cache_destroy");
        BeforeBlockingAllocation(site);
        kmem_cache_t[] only = { cache };
        for (int cpu = 0; cpu < Machine.Cpus.Length; cpu++) RunOnCpu(cpu, c => DrainCpu(only, c));
        Quarantine?.RemoveCache(cache);
        long live = 0;
        foreach (KmemCacheNode node in cache.Nodes)
            lock (node.ListLock) live += node.TotalObjects - node.FreeObjects;
        if (live != 0)
        {
            if (Sanity) ReportCacheNotEmpty(cache, live, site);
            return -16; // -EBUSY
        }
        lock (_slabMutex)
        {
            if (cache.Destroyed) return 0;
            cache.Destroyed = true;
            _caches.Remove(cache);
        }
        FreeEmptySlabs(cache);
        return 0;
    }

    private void ReportCacheNotEmpty(kmem_cache_t cache, long live, CallSite site)
    {
        var text = new System.Text.StringBuilder();
        text.Append("kmem_cache_destroy ").Append(cache.Name).Append(": Slab cache still has objects when called from ")
            .Append(site.IsKnown ? site.ToString() : "<unknown>").Append('\n');
        text.Append("WARNING: CPU: ").Append(CurrentTask().CpuId).Append(" PID: ").Append(CurrentTask().Pid)
            .Append(" at mm/slab_common.c kmem_cache_destroy\n");
        text.Append("BUG ").Append(cache.Name).Append(" (Not tainted): Objects remaining in ").Append(cache.Name).Append(" on __kmem_cache_shutdown()\n");
        text.Append(live).Append(" object(s) still allocated\n");
        int listed = 0;
        VisitAllocated(cache, (slab, i) =>
        {
            ulong obj = slab.ObjectAddress(i);
            text.Append("INFO: Object 0x").Append(obj.ToString("x16")).Append(" @offset=").Append(obj - slab.Base);
            if (slab.Objects![i].AllocTrack is { } track) text.Append(" allocated in ").Append(track.Site).Append(" pid=").Append(track.Pid);
            text.Append('\n');
            return ++listed < 16;
        });
        text.Append("Call Trace:\n").Append(StackDepot.Walk());
        Machine.Reporter.Raise(BugKind.CacheNotEmpty, text.ToString());
    }

    /// <summary>Visits a tracked cache's allocated objects under each node's list_lock, until the visitor returns false.</summary>
    public static void VisitAllocated(kmem_cache_t cache, Func<Slab, int, bool> visit)
    {
        foreach (KmemCacheNode node in cache.Nodes)
            lock (node.ListLock)
                foreach (SlabList list in new[] { node.Partial, node.Full })
                    for (Slab? slab = list.First; slab != null; slab = slab.Next)
                        for (int i = 0; slab.Objects != null && i < cache.ObjectsPerSlab; i++)
                            if (slab.Objects[i].State == Slab.ObjectAllocated && !visit(slab, i)) return;
    }
}
