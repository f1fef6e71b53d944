using System;
using System.Collections.Generic;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class SlabCheckerTests
{
    private static Machine Reporting(Checks checks = Checks.All) => SlabTests.Boot(checks, BugAction.Report);

    [Fact]
    public void Kasan_reports_an_access_past_the_requested_size_in_the_kernels_words()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(115, GFP_KERNEL);
        p[114] = 1;
        var e = Assert.Throws<KernelBugException>(() => p[115] = 1);
        Assert.Equal(BugKind.SlabOutOfBounds, e.Kind);
        Assert.Contains("BUG: KASAN: slab-out-of-bounds in", e.Report);
        Assert.Contains("Write of size 1 at addr " + (p.Address + 115).ToString("x16"), e.Report);
        Assert.Contains("which belongs to the cache kmalloc-128 of size 128", e.Report);
        Assert.Contains("located 0 bytes to the right of\n allocated 115-byte region", e.Report);
        Assert.Contains("Allocated by task", e.Report);
        Assert.Contains(nameof(Kasan_reports_an_access_past_the_requested_size_in_the_kernels_words), e.Report);
        kfree(p);
    }

    [Fact]
    public void Kasan_catches_a_use_after_free_and_the_quarantine_keeps_the_object_from_reuse()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(64, GFP_KERNEL);
        kfree(p);
        var e = Assert.Throws<KernelBugException>(() => p.Read<long>(8));
        Assert.Equal(BugKind.SlabUseAfterFree, e.Kind);
        Assert.Contains("BUG: KASAN: slab-use-after-free in", e.Report);
        Assert.Contains("Freed by task", e.Report);
        Assert.Contains("freed 64-byte region", e.Report);
        for (int i = 0; i < 500; i++) Assert.NotEqual(p, kmalloc(64, GFP_KERNEL));
    }

    [Fact]
    public void Kmem_cache_objects_are_accessible_exactly_over_the_object_size()
    {
        using Machine m = SlabTests.Boot();
        kmem_cache_t c = kmem_cache_create("obj123", 123, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        o[122] = 1;
        var e = Assert.Throws<KernelBugException>(() => o[123]);
        Assert.Equal(BugKind.SlabOutOfBounds, e.Kind);
        Assert.Contains("which belongs to the cache obj123 of size 123", e.Report);
        var left = Assert.Throws<KernelBugException>(() => (o - 1)[0]);
        Assert.Equal(BugKind.SlabOutOfBounds, left.Kind);
        kmem_cache_free(c, o);
    }

    [Fact]
    public void Double_free_is_reported_and_not_done()
    {
        using Machine m = Reporting();
        KPtr p = kmalloc(32, GFP_KERNEL);
        kfree(p);
        kfree(p);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.DoubleFree, r.Kind);
        Assert.Contains("BUG: KASAN: double-free in kfree", r.Text);
        Assert.Contains("which belongs to the cache kmalloc-32 of size 32", r.Text);
        kmem_cache_t c = kmem_cache_create("twice", 40, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        kmem_cache_free(c, o);
        kmem_cache_free(c, o);
        Assert.Equal(BugKind.DoubleFree, m.Reports[1].Kind);
        Assert.Equal(0, kmem_cache_destroy(c));
    }

    [Fact]
    public void Double_free_is_caught_by_slub_debug_alone_too()
    {
        using Machine m = Reporting(Checks.SlubDebug);
        KPtr p = kmalloc(32, GFP_KERNEL);
        kfree(p);
        kfree(p);
        Assert.Equal(BugKind.DoubleFree, Assert.Single(m.Reports).Kind);
        KPtr a = kmalloc(32, GFP_KERNEL), b = kmalloc(32, GFP_KERNEL);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Freeing_an_interior_pointer_is_an_invalid_free()
    {
        using Machine m = Reporting();
        KPtr p = kmalloc(100, GFP_KERNEL);
        kfree(p + 1);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.InvalidFree, r.Kind);
        Assert.Contains("BUG: KASAN: invalid-free in kfree", r.Text);
        p[99] = 1;
        kfree(p);
        Assert.Single(m.Reports);
        KPtr big = kmalloc(10000, GFP_KERNEL);
        kfree(big + PAGE_SIZE);
        Assert.Equal(BugKind.InvalidFree, m.Reports[1].Kind);
        kfree(big);
    }

    [Fact]
    public void Freeing_to_the_wrong_cache_or_a_kmalloc_block_to_a_cache_is_mismatched()
    {
        using Machine m = Reporting();
        kmem_cache_t a = kmem_cache_create("cache-a", 64, 0, 0, null)!;
        kmem_cache_t b = kmem_cache_create("cache-b", 64, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(a, GFP_KERNEL);
        kmem_cache_free(b, o);
        Assert.Equal(BugKind.MismatchedFree, m.Reports[0].Kind);
        Assert.Contains("kmem_cache_free: Wrong slab cache. cache-b but object is from cache-a", m.Reports[0].Text);
        KPtr k = kmalloc(64, GFP_KERNEL);
        kmem_cache_free(a, k);
        Assert.Equal(BugKind.MismatchedFree, m.Reports[1].Kind);
        Assert.Contains("but object is from kmalloc-64", m.Reports[1].Text);
        kmem_cache_free(a, o);
        kfree(k);
        Assert.Equal(2, m.Reports.Count);
        Assert.Equal(0, kmem_cache_destroy(a));
    }

    [Fact]
    public void Kfree_of_page_allocator_memory_is_mismatched_and_not_done()
    {
        using Machine m = Reporting();
        page block = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        var p = new KPtr(PageAllocator.PageVirt(block));
        kfree(p);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.MismatchedFree, r.Kind);
        Assert.Contains("kfree() of memory from the page allocator", r.Text);
        Assert.Equal(1, block.RefCount);
    }

    [Fact]
    public void Kfree_of_vmalloc_percpu_and_ioremap_addresses_is_mismatched()
    {
        using Machine m = Reporting();
        kfree(new KPtr(AddressLayout.VMALLOC_START + 0x1000));
        kfree(new KPtr(AddressLayout.PERCPU_START + 0x40));
        kfree(new KPtr(AddressLayout.IOREMAP_START));
        Assert.Equal(3, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.MismatchedFree, r.Kind));
        Assert.Contains("vmalloc memory", m.Reports[0].Text);
        Assert.Contains("per-CPU memory", m.Reports[1].Text);
        Assert.Contains("ioremap", m.Reports[2].Text);
    }

    [Fact]
    public void Large_kmalloc_double_free_is_reported()
    {
        using Machine m = Reporting();
        KPtr p = kmalloc(50000, GFP_KERNEL);
        kfree(p);
        long free = m.PageAllocator.FreePages;
        kfree(p);
        Assert.Equal(BugKind.DoubleFree, Assert.Single(m.Reports).Kind);
        Assert.Equal(free, m.PageAllocator.FreePages);
    }

    [Fact]
    public void A_write_past_the_requested_size_through_a_span_is_a_right_redzone_overwrite_on_free()
    {
        using Machine m = Reporting();
        KPtr p = kmalloc(60, GFP_KERNEL);
        Span<byte> s = p.AsSpan(60);
        System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref s[0], 62)[60] = 0x41;
        kfree(p);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.RedzoneOverwritten, r.Kind);
        Assert.Contains("BUG kmalloc-64 (Not tainted): Right Redzone overwritten", r.Text);
        Assert.Contains($"INFO: 0x{p.Address + 60:x16}-0x{p.Address + 60:x16} @offset=", r.Text);
        Assert.Contains("First byte 0x41 instead of 0xcc", r.Text);
        KPtr again = kmalloc(60, GFP_KERNEL);
        kfree(again);
        Assert.Single(m.Reports);
    }

    [Fact]
    public void A_write_before_the_object_is_a_left_redzone_overwrite()
    {
        using Machine m = Reporting(Checks.SlubDebug);
        kmem_cache_t c = kmem_cache_create("rz", 200, 8, SLAB_RED_ZONE, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        unsafe { m.Slab.HostOf(o.Address)[-1] = 0; }
        kmem_cache_free(c, o);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.RedzoneOverwritten, r.Kind);
        Assert.Contains("BUG rz (Not tainted): Left Redzone overwritten", r.Text);
        Assert.Contains("First byte 0x0 instead of 0xcc", r.Text);
    }

    [Fact]
    public void A_write_to_a_freed_object_is_found_as_poison_overwritten_on_the_next_allocation()
    {
        using Machine m = Reporting(Checks.SlubDebug);
        KPtr p = kmalloc(64, GFP_KERNEL);
        kfree(p);
        unsafe { m.Slab.HostOf(p.Address)[10] = 0x42; }
        KPtr q = kmalloc(64, GFP_KERNEL);
        Assert.Equal(p, q);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.PoisonOverwritten, r.Kind);
        Assert.Contains("BUG kmalloc-64 (Not tainted): Poison overwritten", r.Text);
        Assert.Contains($"INFO: 0x{p.Address + 10:x16}-0x{p.Address + 10:x16} @offset=", r.Text);
        Assert.Contains("First byte 0x42 instead of 0x6b", r.Text);
        kfree(q);
        Assert.Single(m.Reports);
    }

    [Fact]
    public void Slab_poison_flag_alone_poisons_free_objects_of_its_cache()
    {
        using Machine m = SlabTests.Boot(Checks.None);
        kmem_cache_t c = kmem_cache_create("poisoned", 32, 0, SLAB_POISON, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        kmem_cache_free(c, o);
        unsafe
        {
            byte* host = m.Slab.HostOf(o.Address);
            Assert.Equal(0x6b, host[0]);
            Assert.Equal(0xa5, host[31]);
        }
    }

    [Fact]
    public void Highmem_flag_is_invalid_for_slab_and_is_fixed_up()
    {
        using Machine m = Reporting();
        KPtr p = kmalloc(64, GFP_KERNEL | __GFP_HIGHMEM);
        Assert.False(p.IsNull);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.InvalidFlags, r.Kind);
        Assert.StartsWith("Unexpected gfp: 0x2 (__GFP_HIGHMEM). Fixing up to gfp: 0xcc0 (GFP_KERNEL). Fix your code!", r.Text);
        kfree(p);
        kmem_cache_t c = kmem_cache_create("hm", 64, 0, 0, null)!;
        kmem_cache_free(c, kmem_cache_alloc(c, GFP_HIGHUSER));
        Assert.Contains("Unexpected gfp: 0x2 (__GFP_HIGHMEM). Fixing up to gfp: 0x100cc0 (GFP_USER)", m.Reports[1].Text);
    }

    [Fact]
    public void Checks_off_report_nothing()
    {
        using Machine m = Reporting(Checks.None);
        KPtr p = kmalloc(64, GFP_KERNEL | __GFP_HIGHMEM);
        p[70] = 1;
        kfree(p);
        kfree(new KPtr(AddressLayout.VMALLOC_START));
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Kasan_sees_the_whole_block_after_ksize()
    {
        using Machine m = SlabTests.Boot();
        KPtr p = kmalloc(100, GFP_KERNEL);
        Assert.Throws<KernelBugException>(() => p[100] = 1);
        Assert.Equal((nuint)128, ksize(p));
        p[127] = 1;
        kfree(p);
    }

    [Fact]
    public void Quarantined_objects_of_a_destroyed_cache_are_released()
    {
        using Machine m = SlabTests.Boot();
        long before = m.PageAllocator.FreePages;
        kmem_cache_t c = kmem_cache_create("q", 256, 0, 0, null)!;
        var objs = new List<KPtr>();
        for (int i = 0; i < 100; i++) objs.Add(kmem_cache_alloc(c, GFP_KERNEL));
        foreach (KPtr o in objs) kmem_cache_free(c, o);
        Assert.True(m.Slab.Quarantine!.Count(c) > 0);
        Assert.Equal(0, kmem_cache_destroy(c));
        Assert.Equal(before, m.PageAllocator.FreePages);
    }

    [Fact]
    public void Allocated_objects_are_listed_with_size_cache_and_track_for_kmemleak()
    {
        using Machine m = SlabTests.Boot();
        KPtr a = kmalloc(115, GFP_KERNEL);
        KPtr b = kmalloc(30, GFP_KERNEL);
        kfree(b);
        ObjectInfo info = Assert.Single(m.Slab.AllocatedObjects(), o => o.CacheName!.StartsWith("kmalloc-"));
        Assert.Equal(a.Address, info.Start);
        Assert.Equal(115UL, info.RequestedSize);
        Assert.Equal("kmalloc-128", info.CacheName);
        Assert.Equal(MemoryFamily.Kmalloc, info.Family);
        Assert.Equal(m.CurrentTask.Pid, info.AllocTrack!.Pid);
        Assert.Contains(nameof(Allocated_objects_are_listed_with_size_cache_and_track_for_kmemleak), info.AllocTrack.StackText);
        kfree(a);
    }

    [Fact]
    public void The_quarantine_is_bounded_so_freed_objects_are_reused_eventually()
    {
        using Machine m = SlabTests.Boot();
        KPtr first = kmalloc(64, GFP_KERNEL);
        kfree(first);
        bool reused = false;
        for (int i = 0; i < 20000 && !reused; i++)
        {
            KPtr p = kmalloc(64, GFP_KERNEL);
            reused = p == first;
            kfree(p);
        }
        Assert.True(reused);
        Assert.InRange(m.Slab.Quarantine!.GlobalBytes, 0, (long)m.Ram.TotalBytes / 32);
    }

    [Fact]
    public void Destroying_a_busy_cache_throws_in_throw_mode_and_the_cache_keeps_working()
    {
        using Machine m = SlabTests.Boot();
        kmem_cache_t c = kmem_cache_create("busy", 64, 0, 0, null)!;
        KPtr o = kmem_cache_alloc(c, GFP_KERNEL);
        var e = Assert.Throws<KernelBugException>(() => kmem_cache_destroy(c));
        Assert.Equal(BugKind.CacheNotEmpty, e.Kind);
        KPtr other = kmem_cache_alloc(c, GFP_KERNEL);
        kmem_cache_free(c, other);
        kmem_cache_free(c, o);
        Assert.Equal(0, kmem_cache_destroy(c));
    }
}
