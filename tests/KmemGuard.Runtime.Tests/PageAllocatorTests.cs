using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class PageAllocatorTests
{
    private static Machine Boot(BugAction onBug = BugAction.Throw, Checks checks = Checks.All, int reclaimMs = 20, long memory = 64L << 20, int cpus = 4) =>
        Machine.Boot(new MachineOptions { MemoryBytes = memory, Cpus = cpus, OnBug = onBug, Checks = checks, ReclaimTimeout = TimeSpan.FromMilliseconds(reclaimMs) });

    /// <summary>Takes order-0 pages with the mask until it fails.</summary>
    private static List<page> Exhaust(gfp_t gfp)
    {
        var held = new List<page>();
        while (alloc_page(gfp | __GFP_NOWARN) is { } p) held.Add(p);
        return held;
    }

    private static List<page> TakeLast(List<page> held, int count)
    {
        List<page> last = held.GetRange(held.Count - count, count);
        held.RemoveRange(held.Count - count, count);
        return last;
    }

    private static void FreeAll(IEnumerable<page> pages)
    {
        foreach (page p in pages) __free_page(p);
    }

    [Theory]
    [InlineData(1UL, 0)]
    [InlineData(4096UL, 0)]
    [InlineData(4097UL, 1)]
    [InlineData(8192UL, 1)]
    [InlineData(20000UL, 3)]
    [InlineData(4UL << 20, 10)]
    [InlineData((4UL << 20) + 1, 11)]
    [InlineData(1UL << 40, 28)]
    [InlineData(0UL, 52)]
    [InlineData(ulong.MaxValue, 52)]
    public void Get_order_rounds_up_like_the_kernel(ulong size, int order) => Assert.Equal(order, get_order(size));

    [Fact]
    public void Get_order_takes_any_integer_and_a_negative_size_is_huge()
    {
        Assert.Equal(2, get_order(16384));
        Assert.Equal(2, get_order(16384L));
        Assert.Equal(52, get_order(-1));
    }

    [Fact]
    public void Free_pages_returns_an_aligned_writable_block_and_free_gives_it_back()
    {
        using Machine m = Boot();
        ulong before = nr_free_pages();
        ulong addr = __get_free_pages(GFP_KERNEL, 2);
        Assert.NotEqual(0UL, addr);
        Assert.Equal(0UL, __pa((KPtr)addr) % (4UL * PAGE_SIZE));
        Assert.Equal(before - 4, nr_free_pages());
        var p = (KPtr)addr;
        p.Write(4 * PAGE_SIZE - 8, 0x0102030405060708UL);
        Assert.Equal(0x0102030405060708UL, p.Read<ulong>(4 * PAGE_SIZE - 8));
        free_pages(addr, 2);
        Assert.Equal(before, nr_free_pages());
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Get_zeroed_page_clears_a_reused_dirty_page()
    {
        using Machine m = Boot();
        ulong dirty = __get_free_page(GFP_KERNEL);
        memset((KPtr)dirty, 0xAB, PAGE_SIZE);
        free_page(dirty);
        ulong zeroed = get_zeroed_page(GFP_KERNEL);
        Assert.Equal(dirty, zeroed); // the hot page comes straight back from this CPU's list
        Assert.True(((KPtr)zeroed).AsSpan(PAGE_SIZE).ToArray().All(b => b == 0));
        free_page(zeroed);
    }

    [Fact]
    public void Hot_pages_come_back_first_and_cold_ones_serve_GFP_COLD()
    {
        using Machine m = Boot();
        page a = alloc_page(GFP_KERNEL)!, b = alloc_page(GFP_KERNEL)!;
        free_hot_page(a);
        free_cold_page(b);
        Assert.True(a.Has(PageFlags.PerCpuList) && b.Has(PageFlags.PerCpuList));
        Assert.Same(a, alloc_page(GFP_KERNEL));
        Assert.Same(b, alloc_page(GFP_KERNEL | __GFP_COLD));
        __free_page(a);
        __free_page(b);
    }

    [Fact]
    public void Order_zero_frees_stay_on_the_cpu_list_counted_free_but_not_in_buddyinfo()
    {
        using Machine m = Boot();
        ulong before = nr_free_pages();
        var pages = Enumerable.Range(0, 5).Select(_ => alloc_page(GFP_KERNEL)!).ToList();
        FreeAll(pages);
        Assert.Equal(before, nr_free_pages());
        long onLists = m.Ram.Zones.Sum(z => m.PageAllocator.PerCpuFreePages(z));
        Assert.True(onLists >= 5);
        Assert.Equal((long)before - onLists, BuddyinfoPages(m));
        m.PageAllocator.DrainAllPages();
        Assert.Equal((long)before, BuddyinfoPages(m));
        Assert.Equal(0, m.Ram.Zones.Sum(z => m.PageAllocator.PerCpuFreePages(z)));
    }

    internal static long BuddyinfoPages(Machine m) =>
        m.ReadProc("/proc/buddyinfo").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Sum(line => line.Substring(line.IndexOf("zone", StringComparison.Ordinal) + 13)
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select((n, order) => long.Parse(n) << order).Sum());

    [Fact]
    public void Per_cpu_batch_and_high_follow_zone_batchsize()
    {
        using Machine m = Boot();
        PerCpuPages dma = m.PageAllocator.PerCpuList(m.Ram.Zones[0], 0), dma32 = m.PageAllocator.PerCpuList(m.Ram.Zones[1], 0);
        // DMA: 4096 pages -> 4/4 = 1 -> rounddown_pow_of_two(1) - 1 = 0: no list (high 0), batches of 1.
        Assert.Equal((0, 1), (dma.High, dma.Batch));
        // DMA32: 12288 pages -> 12/4 = 3 -> rounddown_pow_of_two(4) - 1 = 3, high = 6 * 3.
        Assert.Equal((18, 3), (dma32.High, dma32.Batch));
    }

    [Fact]
    public void A_full_cpu_list_sends_a_batch_of_its_coldest_pages_back_to_the_buddy_lists()
    {
        // One CPU: a task may migrate at preemption points, and the lists of several CPUs would add up.
        using Machine m = Boot(cpus: 1);
        Zone zone = m.Ram.Zones[1];
        var pages = Enumerable.Range(0, 40).Select(_ => alloc_page(GFP_KERNEL)!).ToList();
        Assert.All(pages, p => Assert.Same(zone, p.Zone));
        FreeAll(pages);
        long count = m.PageAllocator.PerCpuFreePages(zone);
        Assert.InRange(count, 1, 17);
    }

    [Fact]
    public void Gfp_dma_takes_the_first_16_MiB_and_never_falls_back_upwards()
    {
        using Machine m = Boot();
        page? dma = alloc_page(GFP_KERNEL | GFP_DMA);
        Assert.NotNull(dma);
        Assert.True(page_to_pfn(dma!) < (16UL << 20) >> PAGE_SHIFT);
        Assert.Equal(ZoneType.DMA, dma!.Zone.Type);
        page normal = alloc_page(GFP_KERNEL)!;
        Assert.Equal(ZoneType.DMA32, normal.Zone.Type); // the highest zone first
        List<page> held = Exhaust(GFP_ATOMIC | GFP_DMA);
        Assert.All(held, p => Assert.True(page_to_pfn(p) < 4096));
        Assert.NotNull(alloc_page(GFP_ATOMIC)); // DMA32 still has pages
        __free_page(dma);
        __free_page(normal);
        FreeAll(held);
    }

    [Fact]
    public void Normal_allocations_fall_back_to_the_dma_zone_when_dma32_runs_out()
    {
        using Machine m = Boot();
        List<page> held = Exhaust(GFP_NOWAIT);
        Assert.Contains(held, p => p.Zone.Type == ZoneType.DMA);
        Assert.Contains(held, p => p.Zone.Type == ZoneType.DMA32);
        FreeAll(held);
    }

    [Fact]
    public void Gfp_dma32_stays_below_4_GiB()
    {
        using Machine m = Boot(memory: 64L << 20);
        page p = alloc_page(GFP_KERNEL | GFP_DMA32)!;
        Assert.True(page_to_pfn(p) << PAGE_SHIFT < 4UL << 30);
        __free_page(p);
    }

    [Fact]
    public void Highmem_pages_come_from_ZONE_HIGHMEM_and_get_free_pages_ignores_the_flag()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 1024L << 20, HighMem = true, Cpus = 2 });
        page high = alloc_page(GFP_HIGHUSER)!;
        Assert.Equal(ZoneType.HighMem, high.Zone.Type);
        Assert.True(page_to_pfn(high) << PAGE_SHIFT >= 896UL << 20);
        ulong low = __get_free_page(GFP_KERNEL | __GFP_HIGHMEM);
        Assert.Equal(ZoneType.Normal, virt_to_page((KPtr)low).Zone.Type);
        page normal = alloc_page(GFP_KERNEL)!;
        Assert.Equal(ZoneType.Normal, normal.Zone.Type);
        __free_page(high);
        __free_page(normal);
        free_page(low);
    }

    [Fact]
    public void Alloc_pages_node_takes_the_nodes_memory_first_and_thisnode_stays_there()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 128L << 20, NumaNodes = 2, ReclaimTimeout = TimeSpan.FromMilliseconds(10) });
        page on1 = alloc_pages_node(1, GFP_KERNEL, 2)!;
        page on0 = alloc_pages_node(0, GFP_KERNEL, 0)!;
        Assert.Equal(1, page_to_nid(on1));
        Assert.Equal(0, page_to_nid(on0));
        Assert.True(page_to_pfn(on1) >= m.Ram.Nodes[1].StartPfn);
        var thisNode = new List<page>();
        while (alloc_pages_node(1, GFP_NOWAIT | __GFP_THISNODE | __GFP_NOWARN, 0) is { } p) thisNode.Add(p);
        Assert.All(thisNode, p => Assert.Equal(1, page_to_nid(p)));
        page spill = alloc_pages_node(1, GFP_NOWAIT, 0)!;
        Assert.Equal(0, page_to_nid(spill)); // without __GFP_THISNODE it falls back to node 0
        Assert.Throws<ArgumentOutOfRangeException>(() => alloc_pages_node(2, GFP_KERNEL, 0));
        Assert.NotNull(alloc_pages_node(NUMA_NO_NODE, GFP_KERNEL, 0));
        __free_pages(on1, 2);
        __free_page(on0);
        __free_page(spill);
        FreeAll(thisNode);
    }

    [Fact]
    public void Order_above_MAX_ORDER_or_negative_fails_with_a_warning_unless_nowarn()
    {
        using Machine m = Boot();
        Assert.Null(alloc_pages(GFP_KERNEL, MAX_ORDER + 1));
        Assert.Contains(m.Log, line => line.Contains("WARNING: CPU:") && line.Contains("order 11 > MAX_ORDER (10)") && line.Contains("mode:0xcc0(GFP_KERNEL)"));
        int logged = m.Log.Count;
        Assert.Equal(0UL, __get_free_pages(GFP_KERNEL | __GFP_NOWARN, 12));
        Assert.Null(alloc_pages(GFP_KERNEL | __GFP_NOWARN, -1));
        Assert.Equal(logged, m.Log.Count);
        Assert.Null(alloc_pages(GFP_ATOMIC, -3));
        Assert.Contains(m.Log, line => line.Contains("order -3 > MAX_ORDER"));
    }

    [Fact]
    public void A_MAX_ORDER_block_is_4_MiB_aligned()
    {
        using Machine m = Boot();
        page? big = alloc_pages(GFP_KERNEL, MAX_ORDER);
        Assert.NotNull(big);
        Assert.Equal(0UL, page_to_pfn(big!) % (1UL << MAX_ORDER));
        Assert.True(big!.Has(PageFlags.Head));
        Assert.Same(big, pfn_to_page(page_to_pfn(big) + 1023).Head);
        __free_pages(big, MAX_ORDER);
        Assert.Equal(totalram_pages(), nr_free_pages());
    }

    [Fact]
    public void Watermarks_follow_min_free_kbytes()
    {
        using Machine m = Boot();
        // lowmem 65536 kB -> sqrt(65536 * 16) = 1024 kB = 256 pages, shared by zone size.
        Assert.Equal(1024, m.PageAllocator.MinFreeKbytes);
        Zone dma = m.Ram.Zones[0], dma32 = m.Ram.Zones[1];
        Assert.Equal(64, dma.WatermarkMin);
        Assert.Equal(192, dma32.WatermarkMin);
        Assert.Equal(64 + 16, dma.WatermarkLow);
        Assert.Equal(64 + 32, dma.WatermarkHigh);
        Assert.Equal(192 + 48, dma32.WatermarkLow);
        Assert.Equal(192 + 96, dma32.WatermarkHigh);
    }

    [Fact]
    public void Lower_zones_keep_a_lowmem_reserve_from_allocations_that_could_go_higher()
    {
        using Machine m = Boot();
        Zone dma = m.Ram.Zones[0], dma32 = m.Ram.Zones[1];
        // 12288 DMA32 pages above ZONE_DMA, lowmem_reserve_ratio 256.
        Assert.Equal(0, m.PageAllocator.LowmemReserve(dma, ZoneType.DMA));
        Assert.Equal(48, m.PageAllocator.LowmemReserve(dma, ZoneType.DMA32));
        Assert.Equal(48, m.PageAllocator.LowmemReserve(dma, ZoneType.Normal));
        Assert.Equal(0, m.PageAllocator.LowmemReserve(dma32, ZoneType.Normal));
        List<page> normal = Exhaust(GFP_NOWAIT);
        Assert.Equal(dma.WatermarkMin + 48, dma.FreePages);
        List<page> dmaOnly = Exhaust(GFP_NOWAIT | GFP_DMA); // its own zone: no reserve against it
        Assert.Equal(48, dmaOnly.Count);
        Assert.Equal(dma.WatermarkMin, dma.FreePages);
        FreeAll(normal);
        FreeAll(dmaOnly);
    }

    [Fact]
    public void Atomic_allocations_dip_into_the_reserve_that_others_may_not_touch()
    {
        using Machine m = Boot();
        Zone dma = m.Ram.Zones[0], dma32 = m.Ram.Zones[1];
        List<page> nowait = Exhaust(GFP_NOWAIT);
        Assert.Equal(dma32.WatermarkMin, dma32.FreePages);
        Assert.Equal(dma.WatermarkMin + 48, dma.FreePages); // ZONE_DMA keeps its lowmem reserve from normal allocations
        List<page> high = Exhaust(__GFP_HIGH); // ALLOC_HIGH: half of min
        Assert.Equal(dma32.WatermarkMin - dma32.WatermarkMin / 2, dma32.FreePages);
        List<page> atomic = Exhaust(GFP_ATOMIC); // ALLOC_HIGH | ALLOC_HARDER: a further quarter
        long halved = dma32.WatermarkMin - dma32.WatermarkMin / 2;
        Assert.Equal(halved - halved / 4, dma32.FreePages);
        Assert.Null(alloc_page(GFP_ATOMIC | __GFP_NOWARN));
        Assert.NotNull(alloc_page(GFP_ATOMIC | __GFP_MEMALLOC)); // ALLOC_NO_WATERMARKS
        FreeAll(nowait);
        FreeAll(high);
        FreeAll(atomic);
    }

    [Fact]
    public void An_allocation_that_may_not_sleep_fails_at_once_and_warns()
    {
        using Machine m = Boot(reclaimMs: 5000);
        List<page> held = Exhaust(GFP_ATOMIC);
        var watch = Stopwatch.StartNew();
        Assert.Null(alloc_page(GFP_ATOMIC));
        Assert.True(watch.ElapsedMilliseconds < 1000);
        Assert.Contains(m.Log, line => line.Contains(": page allocation failure: order:0, mode:0xa20(GFP_ATOMIC), nodemask=(null)") && line.Contains("Mem-Info:"));
        FreeAll(held);
    }

    [Fact]
    public void A_sleeping_allocation_fails_after_the_reclaim_timeout_with_the_kernels_warning()
    {
        using Machine m = Boot(reclaimMs: 30);
        List<page> held = Exhaust(GFP_ATOMIC);
        var watch = Stopwatch.StartNew();
        Assert.Equal(0UL, __get_free_pages(GFP_KERNEL, 1));
        Assert.True(watch.ElapsedMilliseconds >= 25);
        Assert.Contains(m.Log, line => line.Contains("page allocation failure: order:1, mode:0xcc0(GFP_KERNEL)"));
        int logged = m.Log.Count;
        Assert.Null(alloc_page(GFP_KERNEL | __GFP_NOWARN | __GFP_ZERO));
        Assert.Equal(logged, m.Log.Count);
        FreeAll(held);
    }

    [Fact]
    public void Reclaim_calls_the_shrinkers_and_uses_what_they_free()
    {
        using Machine m = Boot(reclaimMs: 5000);
        List<page> held = Exhaust(GFP_ATOMIC);
        long asked = 0;
        m.PageAllocator.RegisterShrinker(wanted =>
        {
            asked = wanted;
            if (held.Count < 200) return 0;
            foreach (page p in held.GetRange(held.Count - 200, 200)) m.PageAllocator.Free(p, 0, default);
            held.RemoveRange(held.Count - 200, 200);
            return 200; // a shrinker may give back more than it was asked for
        });
        var watch = Stopwatch.StartNew();
        page? got = alloc_page(GFP_ATOMIC | __GFP_NOWARN);
        Assert.Null(got); // no reclaim for a mask that may not sleep
        got = alloc_page(GFP_KERNEL);
        Assert.NotNull(got);
        Assert.Equal(1, asked);
        Assert.True(watch.ElapsedMilliseconds < 2000);
        __free_page(got!);
        FreeAll(held);
    }

    [Fact]
    public void A_sleeping_allocation_waits_for_a_free_from_another_task()
    {
        using Machine m = Boot(reclaimMs: 5000);
        List<page> held = Exhaust(GFP_ATOMIC);
        List<page> victims = TakeLast(held, 200); // enough to lift the zone over its min watermark
        var freer = new Thread(() => { Thread.Sleep(80); FreeAll(victims); });
        var watch = Stopwatch.StartNew();
        freer.Start();
        page? got = alloc_page(GFP_KERNEL);
        freer.Join();
        Assert.NotNull(got);
        Assert.InRange(watch.ElapsedMilliseconds, 60, 4000);
        __free_page(got!);
        FreeAll(held);
    }

    [Fact]
    public void Noretry_gives_up_after_one_reclaim_pass_without_waiting()
    {
        using Machine m = Boot(reclaimMs: 5000);
        List<page> held = Exhaust(GFP_ATOMIC);
        var watch = Stopwatch.StartNew();
        Assert.Null(alloc_page(GFP_KERNEL | __GFP_NORETRY));
        Assert.Null(alloc_pages(GFP_KERNEL, PAGE_ALLOC_COSTLY_ORDER + 1)); // costly orders give up early too
        Assert.True(watch.ElapsedMilliseconds < 2000);
        Assert.Contains(m.Log, line => line.Contains("mode:0x10cc0(GFP_KERNEL|__GFP_NORETRY)"));
        FreeAll(held);
    }

    [Fact]
    public void Nofail_waits_past_the_timeout_until_memory_comes_back()
    {
        using Machine m = Boot(reclaimMs: 10);
        List<page> held = Exhaust(GFP_ATOMIC);
        List<page> victims = TakeLast(held, 200);
        var freer = new Thread(() => { Thread.Sleep(150); FreeAll(victims); });
        var watch = Stopwatch.StartNew();
        freer.Start();
        page? got = alloc_page(GFP_KERNEL | __GFP_NOFAIL);
        freer.Join();
        Assert.NotNull(got);
        Assert.True(watch.ElapsedMilliseconds >= 100);
        Assert.DoesNotContain(m.Log, line => line.Contains("page allocation failure"));
        __free_page(got!);
        FreeAll(held);
    }

    [Fact]
    public void Double_free_is_reported_and_not_done()
    {
        using Machine m = Boot(BugAction.Report);
        ulong addr = __get_free_page(GFP_KERNEL);
        free_page(addr);
        ulong free = nr_free_pages();
        free_page(addr);
        Assert.Equal(free, nr_free_pages());
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.DoubleFree, r.Kind);
        Assert.Contains("BUG: KASAN: double-free in Double_free_is_reported_and_not_done", r.Text);
        Assert.Contains("Free of addr " + addr.ToString("x16"), r.Text);
        Assert.Contains("Freed by task", r.Text);
    }

    [Fact]
    public void Double_free_of_a_block_merged_back_into_the_buddy_lists_is_caught()
    {
        using Machine m = Boot(BugAction.Report);
        page p = alloc_pages(GFP_KERNEL, 3)!;
        __free_pages(p, 3);
        __free_pages(p, 3);
        Assert.Equal(BugKind.DoubleFree, Assert.Single(m.Reports).Kind);
        Assert.Equal(totalram_pages(), nr_free_pages());
    }

    [Fact]
    public void Freeing_with_the_wrong_order_is_a_mismatched_free_and_changes_nothing()
    {
        using Machine m = Boot();
        ulong addr = __get_free_pages(GFP_KERNEL, 2);
        ulong free = nr_free_pages();
        var e = Assert.Throws<KernelBugException>(() => free_pages(addr, 1));
        Assert.Equal(BugKind.MismatchedFree, e.Kind);
        Assert.Contains("BUG: KASAN: mismatched-free in", e.Report);
        Assert.Contains("free_pages: freed with order 1, but the block was allocated with order 2", e.Report);
        Assert.Equal(free, nr_free_pages());
        Assert.Equal(1, page_count(virt_to_page((KPtr)addr)));
        free_pages(addr, 2);
        Assert.Equal(free + 4, nr_free_pages());
    }

    [Fact]
    public void Freeing_a_tail_page_or_an_address_inside_a_page_is_an_invalid_free()
    {
        using Machine m = Boot(BugAction.Report);
        page head = alloc_pages(GFP_KERNEL, 2)!;
        ulong addr = (ulong)page_address(head);
        __free_page(pfn_to_page(page_to_pfn(head) + 1));
        free_pages(addr + (ulong)PAGE_SIZE, 0);
        free_page(addr + 8);
        Assert.Equal(3, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.InvalidFree, r.Kind));
        Assert.Contains("is a tail page of the order-2 block", m.Reports[0].Text);
        Assert.Contains("BUG: KASAN: invalid-free in", m.Reports[0].Text);
        Assert.Contains("is not the start of a page block (it is 8 bytes into its page)", m.Reports[2].Text);
        Assert.Equal(1, page_count(head));
        __free_pages(head, 2);
        Assert.Equal(totalram_pages(), nr_free_pages());
    }

    [Fact]
    public void Addresses_of_other_allocators_are_mismatched_and_wild_ones_invalid()
    {
        using Machine m = Boot(BugAction.Report);
        free_pages(AddressLayout.VMALLOC_START + 0x1000, 0);
        free_page(AddressLayout.IOREMAP_START);
        free_page(0xdead_0000_0000);
        free_pages(0, 3); // free_pages(0) is a no-op, as in the kernel
        Assert.Equal(new[] { BugKind.MismatchedFree, BugKind.MismatchedFree, BugKind.InvalidFree }, m.Reports.Select(r => r.Kind));
        Assert.Contains("belongs to a vmalloc area: free it with vfree()", m.Reports[0].Text);
        Assert.Contains("virt_addr_valid() fails", m.Reports[2].Text);
    }

    [Fact]
    public void Freeing_a_slab_page_with_the_page_functions_is_a_bad_page_state()
    {
        using Machine m = Boot(BugAction.Report);
        page slab = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        slab.Flags |= PageFlags.Slab;
        ulong free = nr_free_pages();
        __free_page(slab);
        Assert.Equal(free, nr_free_pages());
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.BadPageState, r.Kind);
        Assert.StartsWith("BUG: Bad page state in process ", r.Text);
        Assert.Contains($"pfn:{page_to_pfn(slab):x5}", r.Title);
        Assert.Contains("flags: 0x4(slab)", r.Text);
        Assert.Contains("page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set", r.Text);
        Assert.Contains("Tainted: G    B", r.Text);
        m.PageAllocator.Free(slab, 0, default); // the slab allocator's own free is fine
        Assert.Equal(free + 1, nr_free_pages());
    }

    [Fact]
    public void Freeing_vmalloc_or_percpu_backing_pages_is_a_mismatched_free()
    {
        using Machine m = Boot(BugAction.Report);
        page vm = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        vm.Flags |= PageFlags.Vmalloc;
        page pcpu = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        pcpu.Flags |= PageFlags.PerCpu;
        free_hot_page(vm);
        free_cold_page(pcpu);
        Assert.Equal(new[] { BugKind.MismatchedFree, BugKind.MismatchedFree }, m.Reports.Select(r => r.Kind));
        Assert.Contains("the page belongs to a vmalloc area: free it with vfree()", m.Reports[0].Text);
        Assert.Contains("a per-CPU chunk: free it with free_percpu()", m.Reports[1].Text);
        Assert.Equal(1, page_count(vm));
    }

    [Fact]
    public void A_tail_page_with_a_reference_is_a_bad_page_state_at_free()
    {
        using Machine m = Boot(BugAction.Report);
        page head = alloc_pages(GFP_KERNEL, 1)!;
        page tail = pfn_to_page(page_to_pfn(head) + 1);
        tail.RefCount = 1;
        __free_pages(head, 1);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.BadPageState, r.Kind);
        Assert.Contains("page dumped because: nonzero _refcount", r.Text);
        tail.RefCount = 0;
        __free_pages(head, 1);
        Assert.Single(m.Reports);
    }

    [Fact]
    public void With_checks_off_a_bad_free_is_still_not_done()
    {
        using Machine m = Boot(checks: Checks.None);
        ulong addr = __get_free_pages(GFP_KERNEL, 1);
        free_pages(addr, 1);
        ulong free = nr_free_pages();
        free_pages(addr, 1);
        free_pages(addr, 0);
        Assert.Equal(free, nr_free_pages());
        Assert.Empty(m.Reports);
        Assert.Null(virt_to_page((KPtr)addr).AllocTrack);
    }

    [Fact]
    public void References_keep_a_block_until_the_last_put()
    {
        using Machine m = Boot();
        page p = alloc_pages(GFP_KERNEL, 1)!;
        ulong free = nr_free_pages();
        get_page(pfn_to_page(page_to_pfn(p) + 1)); // a tail's reference goes to the head
        Assert.Equal(2, page_count(p));
        __free_pages(p, 1);
        Assert.Equal(1, page_count(p));
        Assert.Equal(free, nr_free_pages());
        put_page(p);
        Assert.Equal(0, page_count(p));
        Assert.Equal(free + 2, nr_free_pages());
    }

    [Fact]
    public void A_reference_to_a_free_page_is_a_bad_page_state_and_is_not_taken()
    {
        using Machine m = Boot(BugAction.Report);
        page p = alloc_page(GFP_KERNEL)!;
        __free_page(p);
        get_page(p);
        Assert.Equal(0, page_count(p));
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.BadPageState, r.Kind);
        Assert.Contains("get_page() of a page that is not allocated", r.Text);
    }

    [Fact]
    public void Alloc_pages_exact_keeps_only_the_pages_asked_for()
    {
        using Machine m = Boot();
        ulong free = nr_free_pages();
        KPtr p = alloc_pages_exact(5 * PAGE_SIZE - 100, GFP_KERNEL | __GFP_ZERO);
        Assert.False(p.IsNull);
        Assert.Equal(free - 5, nr_free_pages());
        Assert.Equal(0, p[5 * PAGE_SIZE - 1]);
        free_pages_exact(p, 5 * PAGE_SIZE - 100);
        Assert.Equal(free, nr_free_pages());
    }

    [Fact]
    public void Address_conversions_round_trip()
    {
        using Machine m = Boot();
        page pg = alloc_page(GFP_KERNEL)!;
        KPtr va = page_address(pg);
        Assert.Same(pg, virt_to_page(va));
        Assert.Same(pg, virt_to_page(va + 100));
        Assert.Equal(page_to_pfn(pg) << PAGE_SHIFT, __pa(va));
        Assert.Equal(va, __va(__pa(va)));
        Assert.Same(pg, pfn_to_page(page_to_pfn(pg)));
        Assert.True(virt_addr_valid(va));
        Assert.True(pfn_valid(page_to_pfn(pg)));
        Assert.False(pfn_valid(totalram_pages()));
        Assert.False(virt_addr_valid(new KPtr(AddressLayout.VMALLOC_START)));
        Assert.Throws<ArgumentException>(() => virt_to_page(new KPtr(AddressLayout.VMALLOC_START)));
        Assert.Throws<ArgumentException>(() => __pa(new KPtr(AddressLayout.VMALLOC_START)));
        Assert.Throws<ArgumentOutOfRangeException>(() => pfn_to_page(1UL << 40));
        __free_page(pg);
    }

    [Fact]
    public void Use_after_free_of_a_page_is_caught_by_KASAN()
    {
        using Machine m = Boot();
        ulong addr = __get_free_page(GFP_KERNEL);
        free_page(addr);
        var e = Assert.Throws<KernelBugException>(() => ((KPtr)addr).Read<int>(16));
        Assert.Equal(BugKind.UseAfterFree, e.Kind);
        Assert.Contains("which belongs to a page block of the buddy allocator", e.Report);
    }

    [Fact]
    public void Allocations_record_who_made_them_when_checking()
    {
        using Machine m = Boot();
        page p = alloc_page(GFP_KERNEL)!;
        Assert.Equal(nameof(Allocations_record_who_made_them_when_checking), p.AllocTrack!.Site.Member);
        Assert.Equal(m.CurrentTask.Pid, p.AllocTrack.Pid);
        __free_page(p);
        Assert.Equal(nameof(Allocations_record_who_made_them_when_checking), p.FreeTrack!.Site.Member);
    }

    [Fact]
    public void Totals_count_every_managed_page()
    {
        using Machine m = Boot();
        Assert.Equal(16384UL, totalram_pages());
        Assert.Equal(16384UL, nr_free_pages());
    }

    [Fact]
    public void Gfp_masks_print_as_the_kernel_prints_them()
    {
        Assert.Equal("0xcc0(GFP_KERNEL)", GfpNames.Format(GFP_KERNEL));
        Assert.Equal("0xa20(GFP_ATOMIC)", GfpNames.Format(GFP_ATOMIC));
        Assert.Equal("0x2dc1(GFP_KERNEL|GFP_DMA|__GFP_NOWARN|__GFP_ZERO)", GfpNames.Format(GFP_KERNEL | GFP_DMA | __GFP_NOWARN | __GFP_ZERO));
        Assert.Equal("0x1000cc0(GFP_KERNEL|__GFP_COLD)", GfpNames.Format(GFP_KERNEL | __GFP_COLD));
        Assert.Equal("0x2cc1(GFP_KERNEL|GFP_DMA|__GFP_NOWARN)", GfpNames.Format(GFP_KERNEL | GFP_DMA | __GFP_NOWARN));
        Assert.Equal("0x0()", GfpNames.Format(0));
    }

    /// <summary>The contract probe's Pages() section, run for real.</summary>
    [Fact]
    public void Contract_probe_pages_section_runs_clean()
    {
        using Machine m = Boot();
        ulong a = __get_free_pages(GFP_KERNEL, 2);
        free_pages(a, 2);
        ulong z = get_zeroed_page(GFP_KERNEL);
        free_page(z);
        ulong one = __get_free_page(GFP_ATOMIC);
        free_page(one);
        int order = get_order(8192);
        ulong big = __get_free_pages(GFP_KERNEL, get_order(20000));
        free_pages(big, get_order(20000));
        page? pg = alloc_pages(GFP_KERNEL, order);
        Assert.NotNull(pg);
        KPtr va = page_address(pg!);
        page same = virt_to_page(va);
        ulong pfn = page_to_pfn(same);
        ulong phys = __pa(va);
        KPtr back = __va(phys);
        Assert.Equal(va, back);
        Assert.Equal(pfn << PAGE_SHIFT, phys);
        __free_pages(pg!, order);
        page? single = alloc_page(GFP_HIGHUSER);
        if (single is not null) __free_page(single);
        page? onNode = alloc_pages_node(0, GFP_KERNEL, 0);
        if (onNode is not null) free_hot_page(onNode);
        page? cold = alloc_page(GFP_KERNEL | __GFP_COLD);
        if (cold is not null) free_cold_page(cold);
        Assert.Empty(m.Reports);
        Assert.Equal(totalram_pages(), nr_free_pages());
    }
}
