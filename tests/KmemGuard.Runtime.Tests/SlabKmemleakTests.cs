using System.Linq;
using System.Threading.Tasks;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

/// <summary>
/// kmemleak over slab objects, whose state the slab keeps (a word per object) instead of
/// kmemleak's dictionary: tracked while allocated, marks that last as long as the allocation,
/// and scans that agree with the allocator's own count.
/// </summary>
public class SlabKmemleakTests
{
    private static Machine Boot(Checks checks = Checks.All) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, Checks = checks });

    private static ulong[] Leaked(Machine m, params object[] roots) => m.ScanLeaks(roots).Select(r => r.Address).ToArray();

    [Fact]
    public void A_dropped_cache_object_is_reported_with_the_object_size_and_the_allocating_method()
    {
        using Machine m = Boot();
        kmem_cache_t cache = kmem_cache_create("scullc", 100, 0, 0, null)!;
        KPtr obj = kmem_cache_alloc(cache, GFP_KERNEL);

        KernelBugReport leak = Assert.Single(m.ScanLeaks());

        Assert.Equal(obj.Address, leak.Address);
        Assert.Equal($"unreferenced object 0x{obj.Address:x16} (size 100):", leak.Title);
        Assert.Contains(nameof(A_dropped_cache_object_is_reported_with_the_object_size_and_the_allocating_method), leak.Text);
        kmem_cache_free(cache, obj);
        Assert.Empty(m.ScanLeaks());
        Assert.Equal(0, kmem_cache_destroy(cache));
    }

    [Fact]
    public void Freed_and_quarantined_objects_are_not_tracked()
    {
        using Machine m = Boot();
        int before = m.Kmemleak.Count;
        KPtr[] blocks = Enumerable.Range(0, 50).Select(_ => kmalloc(64, GFP_KERNEL)).ToArray();
        Assert.Equal(before + 50, m.Kmemleak.Count);

        foreach (KPtr p in blocks) kfree(p); // KASAN keeps them in quarantine

        Assert.Equal(before, m.Kmemleak.Count);
        Assert.Empty(m.ScanLeaks());
    }

    [Fact]
    public void Marks_on_a_kmalloc_object_work_and_end_with_its_allocation()
    {
        // Without KASAN's quarantine a freed object is the next one handed out, at the same address.
        using Machine m = Boot(Checks.All & ~Checks.Kasan);
        KPtr kept = kmalloc(64, GFP_KERNEL), child = kmalloc(64, GFP_KERNEL);
        kept.Write(8, child.Address);
        kmemleak_not_leak(kept);
        Assert.Empty(m.ScanLeaks());

        kfree(kept);
        KPtr again = kmalloc(64, GFP_KERNEL);
        Assert.Equal(kept.Address, again.Address);

        // The new allocation at the same address is a block of its own: not marked, so it leaks, and so does the child.
        Assert.Equal(new[] { child.Address, again.Address }, Leaked(m));
        kfree(again);
        kfree(child);
    }

    [Fact]
    public void kmemleak_ignore_and_no_scan_on_slab_objects()
    {
        using Machine m = Boot();
        KPtr ignored = kmalloc(32, GFP_KERNEL), opaque = kmalloc(32, GFP_KERNEL), child = kmalloc(32, GFP_KERNEL), grandchild = kmalloc(32, GFP_KERNEL);
        ignored.Write(0, child.Address);
        opaque.Write(0, grandchild.Address);
        kmemleak_ignore(ignored);
        kmemleak_no_scan(opaque);

        // ignored is neither reported nor scanned; opaque is held by the root but hides grandchild.
        Assert.Equal(new[] { child.Address, grandchild.Address }, Leaked(m, opaque));
        kmemleak_not_leak(opaque + 8); // not an object's start: nothing changes
        Assert.Equal(new[] { child.Address, grandchild.Address }, Leaked(m, opaque));
    }

    [Fact]
    public void ClearLeaks_silences_reported_slab_objects_but_not_later_ones()
    {
        using Machine m = Boot();
        KPtr fromSetup = kmalloc(128, GFP_KERNEL);
        Assert.Equal(new[] { fromSetup.Address }, Leaked(m));

        m.ClearLeaks();
        KPtr fromTest = kzalloc(128, GFP_KERNEL);

        Assert.Equal(new[] { fromTest.Address }, Leaked(m));
    }

    [Fact]
    public void Leaks_come_in_allocation_order_across_slab_objects_and_vmalloc_areas()
    {
        using Machine m = Boot();
        KPtr first = kmalloc(64, GFP_KERNEL);
        KPtr second = vmalloc(100);
        KPtr third = kmalloc(64, GFP_KERNEL);

        Assert.Equal(new[] { first.Address, second.Address, third.Address }, Leaked(m));
    }

    [Fact]
    public async Task Allocating_and_freeing_from_many_threads_while_scanning_keeps_the_count_exact()
    {
        using Machine m = Boot();
        const int threads = 4, perThread = 2000;
        int before = m.Kmemleak.Count;
        var kept = new KPtr[threads][];
        await ScanningThreads.RunWhileScanning(m, threads, t =>
        {
            kept[t] = new KPtr[perThread / 2];
            for (int i = 0; i < perThread; i++)
            {
                KPtr p = kmalloc(16 + (ulong)(i % 200), GFP_KERNEL);
                if (i % 2 == 0) kfree(p);
                else kept[t][i / 2] = p;
            }
        });

        Assert.Equal(before + threads * perThread / 2, m.Kmemleak.Count);
        Assert.Empty(m.ScanLeaks(kept));
        Assert.Equal(threads * perThread / 2, m.ScanLeaks().Count);
        foreach (KPtr p in kept.SelectMany(k => k)) kfree(p);
        Assert.Equal(before, m.Kmemleak.Count);
    }
}
