using System;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class VmallocTests
{
    private static Machine Boot(Checks checks = Checks.All, BugAction onBug = BugAction.Throw, int nodes = 1) =>
        Machine.Boot(new MachineOptions { MemoryBytes = (32L << 20) * nodes, Cpus = 2, NumaNodes = nodes, Checks = checks, OnBug = onBug });

    private static KPtr DirectMap(page frame) => new(PageAllocator.PageVirt(frame));

    [Fact]
    public void Bytes_written_through_vmalloc_are_the_bytes_of_its_pages()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(3 * PAGE_SIZE + 100);
        Assert.False(v.IsNull);
        Assert.True(is_vmalloc_addr(v));
        for (int i = 0; i < 3 * PAGE_SIZE + 100; i += 97) v[i] = (byte)(i * 7);
        for (int i = 0; i < 3 * PAGE_SIZE + 100; i += 97)
        {
            page frame = vmalloc_to_page(v + i)!;
            Assert.Equal((byte)(i * 7), DirectMap(frame)[i % PAGE_SIZE]);
        }
        DirectMap(vmalloc_to_page(v + 2 * PAGE_SIZE + 5)!).Write(8, 0x1122334455667788UL);
        Assert.Equal(0x1122334455667788UL, v.Read<ulong>(2 * PAGE_SIZE + 8));
        Assert.Equal(vmalloc_to_page(v + 2 * PAGE_SIZE)!.Pfn, vmalloc_to_pfn(v + 2 * PAGE_SIZE + 4095));
        vfree(v);
    }

    [Fact]
    public void Each_page_is_a_separate_order_0_allocation_and_comes_back_on_vfree()
    {
        using Machine m = Boot();
        long before = m.PageAllocator.FreePages;
        KPtr v = vmalloc(5 * PAGE_SIZE - 1);
        Assert.Equal(before - 5, m.PageAllocator.FreePages);
        page[] pages = Enumerable.Range(0, 5).Select(i => vmalloc_to_page(v + i * PAGE_SIZE)!).ToArray();
        Assert.All(pages, p => Assert.Equal(0, p.Order));
        Assert.All(pages, p => Assert.True(p.Has(PageFlags.Vmalloc)));
        Assert.All(pages, p => Assert.Same(pages[0].Owner, p.Owner));
        Assert.Null(vmalloc_to_page(v + 5 * PAGE_SIZE));
        vfree(v);
        Assert.Equal(before, m.PageAllocator.FreePages);
        Assert.All(pages, p => Assert.False(p.Has(PageFlags.Vmalloc)));
        Assert.Equal(1, m.Vmalloc.Space.FreeRangeCount);
    }

    [Fact]
    public void Size_zero_and_huge_sizes_give_NULL_with_the_kernel_warning()
    {
        using Machine m = Boot();
        long before = m.PageAllocator.FreePages;
        Assert.True(vmalloc(0).IsNull);
        Assert.True(vmalloc(-1).IsNull);
        Assert.True(vmalloc(ulong.MaxValue).IsNull);
        Assert.True(vzalloc((32L << 20) + 1).IsNull);
        Assert.Equal(3, m.Log.Count);
        Assert.Contains("vmalloc error: size 18446744073709551615, exceeds total pages", m.Log[0]);
        Assert.True(__vmalloc(ulong.MaxValue, GFP_KERNEL | __GFP_NOWARN).IsNull);
        Assert.Equal(3, m.Log.Count);
        Assert.Equal(before, m.PageAllocator.FreePages);
    }

    [Fact]
    public void Failure_midway_gives_every_page_and_the_area_back()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, ReclaimTimeout = TimeSpan.Zero });
        page hold = m.PageAllocator.Alloc(GFP_KERNEL, MAX_ORDER, -1, default)!;
        long before = m.PageAllocator.FreePages;
        Assert.True(vmalloc((before + 1) * PAGE_SIZE).IsNull);
        Assert.Equal(before, m.PageAllocator.FreePages);
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
        Assert.Equal(1, m.Vmalloc.Space.FreeRangeCount);
        string warning = Assert.Single(m.Log, w => w.Contains("vmalloc error"));
        long got = long.Parse(warning.Split("vmalloc error: size ")[1].Split(',')[0]);
        Assert.InRange(got, PAGE_SIZE, before * PAGE_SIZE);
        Assert.EndsWith(", failed to allocate pages, mode:0xcc2(GFP_KERNEL|__GFP_HIGHMEM), nodemask=(null)", warning);
        Assert.DoesNotContain(m.Log, w => w.Contains("page allocation failure"));
        KPtr small = vmalloc(3 * PAGE_SIZE);
        Assert.False(small.IsNull);
        vfree(small);
        m.PageAllocator.Free(hold, MAX_ORDER, default);
    }

    [Fact]
    public void vzalloc_memory_is_zeroed_even_when_pages_are_reused()
    {
        using Machine m = Boot();
        KPtr dirty = vmalloc(2 * PAGE_SIZE);
        memset(dirty, 0xAA, 2 * PAGE_SIZE);
        vfree(dirty);
        KPtr z = vzalloc(2 * PAGE_SIZE);
        Assert.True(z.AsSpan(2 * PAGE_SIZE).ToArray().All(b => b == 0));
        vfree(z);
        KPtr u = vmalloc_user(100);
        Assert.True(u.AsSpan(100).ToArray().All(b => b == 0));
        vfree(u);
    }

    [Fact]
    public void Areas_are_separated_by_an_unmapped_guard_page()
    {
        using Machine m = Boot();
        KPtr a = vmalloc(2 * PAGE_SIZE);
        KPtr b = vmalloc(PAGE_SIZE);
        Assert.True(b.Address >= a.Address + 3 * PAGE_SIZE || a.Address >= b.Address + 2 * PAGE_SIZE);
        var e = Assert.Throws<KernelBugException>(() => a[2 * PAGE_SIZE] = 1);
        Assert.Equal(BugKind.VmallocOutOfBounds, e.Kind);
        Assert.Contains("BUG: KASAN: vmalloc-out-of-bounds in", e.Report);
        Assert.Contains("Write of size 1 at addr " + (a.Address + 2 * PAGE_SIZE).ToString("x16"), e.Report);
        Assert.Contains("The buggy address belongs to the virtual mapping at\n [" + a.Address.ToString("x16") + ", "
            + (a.Address + 3 * PAGE_SIZE).ToString("x16") + ") created by:\n", e.Report);
        Assert.Contains(" Kernel.vmalloc (Kernel.Vmalloc.cs:", e.Report);
        Assert.DoesNotContain("Freed by task", e.Report);
        vfree(a);
        vfree(b);
    }

    [Fact]
    public void Exactly_the_requested_bytes_are_accessible_the_tail_of_the_last_page_is_poisoned()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(100);
        v[99] = 5;
        Assert.Equal(5, v[99]);
        var e = Assert.Throws<KernelBugException>(() => v.Read<int>(98));
        Assert.Equal(BugKind.VmallocOutOfBounds, e.Kind);
        Assert.Contains("Read of size 4 at addr " + (v.Address + 100).ToString("x16"), e.Report);
        Assert.Contains("The buggy address belongs to the virtual mapping at\n [" + v.Address.ToString("x16") + ", "
            + (v.Address + 2 * PAGE_SIZE).ToString("x16") + ") created by:\n", e.Report);
        Assert.Contains("VmallocTests." + nameof(Exactly_the_requested_bytes_are_accessible_the_tail_of_the_last_page_is_poisoned) + " (VmallocTests.cs:", e.Report);
        KPtr edge = vmalloc(PAGE_SIZE - 4);
        e = Assert.Throws<KernelBugException>(() => edge[PAGE_SIZE - 4] = 1);
        Assert.Equal(BugKind.VmallocOutOfBounds, e.Kind);
        vfree(v);
        vfree(edge);
    }

    [Fact]
    public void Without_KASAN_the_guard_page_faults_and_the_tail_is_accessible()
    {
        using Machine m = Boot(Checks.All & ~Checks.Kasan);
        KPtr v = vmalloc(100);
        v[200] = 1;
        var e = Assert.Throws<KernelBugException>(() => v[PAGE_SIZE] = 1);
        Assert.Equal(BugKind.WildAccess, e.Kind);
        Assert.StartsWith("BUG: unable to handle page fault for address: " + (v.Address + PAGE_SIZE).ToString("x16"), e.Report);
        vfree(v);
    }

    [Fact]
    public void Use_after_vfree_is_reported_with_who_freed_it()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(64);
        vfree(v);
        var e = Assert.Throws<KernelBugException>(() => v[8] = 1);
        Assert.Equal(BugKind.VmallocOutOfBounds, e.Kind);
        Assert.Contains("Freed by task", e.Report);
        Assert.Contains(nameof(Use_after_vfree_is_reported_with_who_freed_it), e.Report);
    }

    [Fact]
    public void vfree_of_NULL_is_a_no_op()
    {
        using Machine m = Boot();
        vfree(NULL);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Double_vfree_is_reported_and_not_done()
    {
        using Machine m = Boot(onBug: BugAction.Report);
        long before = m.PageAllocator.FreePages;
        KPtr v = vmalloc(3 * PAGE_SIZE);
        vfree(v);
        vfree(v);
        Assert.Equal(before, m.PageAllocator.FreePages);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.DoubleFree, r.Kind);
        Assert.Contains("BUG: KASAN: double-free in " + nameof(Double_vfree_is_reported_and_not_done), r.Text);
        Assert.Contains("Freed by task", r.Text);
        Assert.Contains("which belongs to a vmalloc area", r.Text);
        Assert.Equal(1, m.Vmalloc.Space.FreeRangeCount);
    }

    [Fact]
    public void Double_vfree_throws_in_Throw_mode()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(10);
        vfree(v);
        Assert.Equal(BugKind.DoubleFree, Assert.Throws<KernelBugException>(() => vfree(v)).Kind);
    }

    [Fact]
    public void vfree_inside_an_area_is_an_invalid_free_and_frees_nothing()
    {
        using Machine m = Boot(onBug: BugAction.Report);
        long before = m.PageAllocator.FreePages;
        KPtr v = vmalloc(2 * PAGE_SIZE);
        vfree(v + 8);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.InvalidFree, r.Kind);
        Assert.Contains("Trying to vfree() bad address", r.Text);
        v[PAGE_SIZE] = 3;
        Assert.Equal(3, v[PAGE_SIZE]);
        vfree(v);
        Assert.Equal(before, m.PageAllocator.FreePages);
    }

    [Fact]
    public void vfree_of_an_address_nothing_mapped_is_an_invalid_free()
    {
        using Machine m = Boot();
        var e = Assert.Throws<KernelBugException>(() => vfree(new KPtr(m.Memory.Vmalloc.Start + 1000 * (ulong)PAGE_SIZE)));
        Assert.Equal(BugKind.InvalidFree, e.Kind);
        Assert.Contains("Trying to vfree() nonexistent vm area", e.Report);
    }

    [Fact]
    public void vfree_of_page_allocator_memory_is_a_mismatched_free_and_not_done()
    {
        using Machine m = Boot(onBug: BugAction.Report);
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        KPtr direct = DirectMap(frame);
        vfree(direct);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.MismatchedFree, r.Kind);
        Assert.Contains("a page block of the buddy allocator", r.Text);
        Assert.Equal(1, frame.RefCount);
        direct[0] = 1;
        m.PageAllocator.Free(frame, 0, default);
    }

    [Fact]
    public void A_vmalloc_page_seen_through_the_direct_map_is_described_as_its_area()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(2 * PAGE_SIZE + 10);
        ObjectInfo viaVmalloc = m.Memory.Describe(v.Address + PAGE_SIZE + 3)!;
        ObjectInfo viaDirect = m.Memory.Describe(DirectMap(vmalloc_to_page(v + PAGE_SIZE)!).Address + 3)!;
        foreach (ObjectInfo info in new[] { viaVmalloc, viaDirect })
        {
            Assert.Equal(MemoryFamily.Vmalloc, info.Family);
            Assert.Equal(v.Address, info.Start);
            Assert.Equal(2UL * PAGE_SIZE + 10, info.RequestedSize);
            Assert.True(info.Allocated);
            Assert.NotNull(info.AllocTrack);
        }
        Assert.Equal(v.Address, m.Memory.Describe(v.Address + 3 * PAGE_SIZE)!.Start); // the guard page
        vfree(v);
        Assert.False(m.Memory.Describe(v.Address)!.Allocated);
    }

    [Fact]
    public void vmalloc_to_page_and_is_vmalloc_addr_outside_areas()
    {
        using Machine m = Boot();
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        Assert.False(is_vmalloc_addr(DirectMap(frame)));
        Assert.False(is_vmalloc_addr(NULL));
        Assert.Null(vmalloc_to_page(DirectMap(frame)));
        Assert.Null(vmalloc_to_page(new KPtr(m.Memory.Vmalloc.Start)));
        Assert.Equal(0UL, vmalloc_to_pfn(NULL));
    }

    [Fact]
    public void Freed_ranges_coalesce_whatever_the_order_of_frees()
    {
        using Machine m = Boot();
        var rng = new Random(7);
        KPtr[] areas = Enumerable.Range(0, 40).Select(i => vmalloc(1 + rng.Next(3 * PAGE_SIZE))).ToArray();
        Assert.All(areas, a => Assert.False(a.IsNull));
        foreach (KPtr a in areas.OrderBy(_ => rng.Next())) vfree(a);
        Assert.Equal(1, m.Vmalloc.Space.FreeRangeCount);
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
    }

    [Fact]
    public void vmalloc_node_takes_pages_from_that_node()
    {
        using Machine m = Boot(nodes: 2);
        KPtr v = vmalloc_node(3 * PAGE_SIZE, 1);
        for (int i = 0; i < 3; i++) Assert.Equal(1, vmalloc_to_page(v + i * PAGE_SIZE)!.Zone.Node.Id);
        Assert.Contains(" pages=3 vmalloc N1=3\n", m.RenderVmallocinfo());
        vfree(v);
    }

    [Fact]
    public void vmap_maps_given_pages_and_vunmap_leaves_them_allocated()
    {
        using Machine m = Boot();
        page p0 = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!, p1 = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        KPtr v = vmap(new[] { p0, p1 }, 2, VM_MAP, PAGE_KERNEL);
        Assert.True(is_vmalloc_addr(v));
        v[PAGE_SIZE + 1] = 0x5A;
        Assert.Equal(0x5A, DirectMap(p1)[1]);
        Assert.Same(p0, vmalloc_to_page(v));
        Assert.Contains(" vmap\n", m.RenderVmallocinfo());
        var e = Assert.Throws<KernelBugException>(() => vfree(v));
        Assert.Equal(BugKind.MismatchedFree, e.Kind);
        Assert.Contains("undo it with vunmap()", e.Report);
        vunmap(v);
        Assert.Equal(1, p1.RefCount);
        Assert.Equal(0x5A, DirectMap(p1)[1]);
        Assert.Equal(BugKind.DoubleFree, Assert.Throws<KernelBugException>(() => vunmap(v)).Kind);
        m.PageAllocator.Free(p0, 0, default);
        m.PageAllocator.Free(p1, 0, default);
    }

    [Fact]
    public void Vmallocinfo_lists_each_area_in_the_kernel_format()
    {
        using Machine m = Boot();
        KPtr v = vmalloc(4 * PAGE_SIZE);
        KPtr w = vzalloc(1);
        string expected =
            $"0x{v.Address:x16}-0x{v.Address + 5 * PAGE_SIZE:x16}   20480 {nameof(Vmallocinfo_lists_each_area_in_the_kernel_format)}+0x0/0x0 pages=4 vmalloc N0=4\n" +
            $"0x{w.Address:x16}-0x{w.Address + 2 * PAGE_SIZE:x16}    8192 {nameof(Vmallocinfo_lists_each_area_in_the_kernel_format)}+0x0/0x0 pages=1 vmalloc N0=1\n";
        Assert.Equal(expected, m.RenderVmallocinfo());
        vfree(v);
        vfree(w);
        Assert.Equal("", m.RenderVmallocinfo());
    }

    [Fact]
    public void vmalloc_is_not_available_in_early_boot()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, EarlyBoot = true });
        Assert.Throws<InvalidOperationException>(() => vmalloc(10));
        vfree(NULL);
    }
}
