using System;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class BootmemTests
{
    private const ulong Top = 64UL << 20;

    private static Machine BootEarly(BugAction onBug = BugAction.Throw, Checks checks = Checks.All) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 2, EarlyBoot = true, OnBug = onBug, Checks = checks });

    [Fact]
    public void Early_boot_has_every_frame_reserved_and_no_buddy_pages()
    {
        using Machine m = BootEarly();
        Assert.True(m.InEarlyBoot);
        Assert.Equal(0UL, nr_free_pages());
        Assert.Equal(0UL, totalram_pages());
        Assert.True(m.Ram.PageAt(0).Has(PageFlags.Reserved));
        Assert.Null(alloc_page(GFP_NOWAIT | __GFP_NOWARN));
    }

    [Fact]
    public void Alloc_bootmem_is_cache_aligned_zeroed_top_down_and_stored()
    {
        using Machine m = BootEarly();
        memset(__va(Top - 4096), 0xEE, 4096); // garbage the allocation must not show
        KPtr a = alloc_bootmem(100);
        KPtr b = alloc_bootmem(100);
        Assert.Equal(Top - 128, __pa(a));
        Assert.Equal(Top - 256, __pa(b));
        Assert.True(a.AsSpan(100).ToArray().All(x => x == 0));
        a.Write(96, 0xCAFEu);
        Assert.Equal(0xCAFEu, a.Read<uint>(96));
        Assert.True(m.IsBootmem(__pa(a)));
        Assert.False(m.IsBootmem(0));
    }

    [Fact]
    public void Low_and_page_variants_honour_their_limits_and_alignment()
    {
        using Machine m = BootEarly();
        KPtr low = alloc_bootmem_low(4096);
        KPtr pages = alloc_bootmem_pages(8192);
        KPtr lowPages = alloc_bootmem_low_pages(100);
        Assert.Equal((16UL << 20) - 4096, __pa(low));
        Assert.Equal(Top - 8192, __pa(pages));
        Assert.Equal((16UL << 20) - 8192, __pa(lowPages));
        Assert.Equal(0UL, __pa(pages) % (ulong)PAGE_SIZE);
        Assert.True(alloc_bootmem_low(17L << 20).IsNull); // more than the low memory holds
    }

    [Fact]
    public void Finish_boot_hands_what_is_left_to_the_buddy_allocator_and_allocations_stay_reserved()
    {
        using Machine m = BootEarly();
        KPtr bm = alloc_bootmem(1 << 20);
        KPtr low = alloc_bootmem_low(4096);
        KPtr pages = alloc_bootmem_pages(8192);
        KPtr lowPages = alloc_bootmem_low_pages(4096);
        free_bootmem(__pa(bm), 1 << 20);
        m.FinishBoot();
        Assert.False(m.InEarlyBoot);
        Assert.Equal(16384UL - 4, totalram_pages());
        Assert.Equal(totalram_pages(), nr_free_pages());
        foreach (KPtr kept in new[] { low, pages, pages + PAGE_SIZE, lowPages })
        {
            page frame = virt_to_page(kept);
            Assert.True(frame.Has(PageFlags.Reserved));
            Assert.True(m.IsBootmem(__pa(kept)));
        }
        Assert.False(virt_to_page(bm).Has(PageFlags.Reserved));
        low[0] = 7; // bootmem stays usable for ever
        Assert.Equal(7, low[0]);
        page? after = alloc_page(GFP_KERNEL);
        Assert.NotNull(after);
        Assert.Throws<InvalidOperationException>(() => m.FinishBoot());
    }

    [Fact]
    public void A_page_shared_by_two_small_allocations_stays_reserved_until_both_are_freed()
    {
        using Machine m = BootEarly();
        KPtr a = alloc_bootmem(100);
        KPtr b = alloc_bootmem(100);
        free_bootmem(__pa(a), 100);
        Assert.True(m.IsBootmem(__pa(b)));
        Assert.Single(m.Bootmem.Allocations());
        m.FinishBoot();
        Assert.Equal(16383UL, totalram_pages());
    }

    [Fact]
    public void A_partly_freed_allocation_keeps_its_other_pages()
    {
        using Machine m = BootEarly();
        KPtr p = alloc_bootmem_pages(4 * PAGE_SIZE);
        free_bootmem(__pa(p) + PAGE_SIZE, 2 * PAGE_SIZE);
        Assert.Equal(new[] { ((ulong)p, (ulong)PAGE_SIZE), ((ulong)(p + 3 * PAGE_SIZE), (ulong)PAGE_SIZE) }, m.Bootmem.Allocations().OrderBy(r => r.Start));
        m.FinishBoot();
        Assert.Equal(16382UL, totalram_pages());
    }

    [Fact]
    public void Bootmem_blocks_describe_themselves_for_reports_and_kmemleak()
    {
        using Machine m = BootEarly();
        KPtr p = alloc_bootmem(300);
        ObjectInfo info = m.Memory.Describe((ulong)p + 10)!;
        Assert.Equal(MemoryFamily.Bootmem, info.Family);
        Assert.Equal((ulong)p, info.Start);
        Assert.Equal(300UL, info.RequestedSize);
        Assert.True(info.Allocated);
        Assert.Equal(nameof(Bootmem_blocks_describe_themselves_for_reports_and_kmemleak), info.AllocTrack!.Site.Member);
        Assert.Equal(((ulong)p, 300UL), Assert.Single(m.Bootmem.Allocations()));
    }

    [Fact]
    public void Running_out_of_bootmem_returns_NULL_with_the_kernels_panic_text_in_the_log()
    {
        using Machine m = BootEarly();
        Assert.True(alloc_bootmem(128L << 20).IsNull);
        Assert.True(alloc_bootmem(0).IsNull);
        Assert.True(alloc_bootmem(-1).IsNull);
        Assert.Contains(m.Log, l => l.Contains("alloc_bootmem: bootmem alloc of 134217728 bytes failed!") && l.Contains("Kernel panic - not syncing: Out of memory"));
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Alloc_bootmem_after_boot_is_reported_and_returns_NULL()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 2 });
        var e = Assert.Throws<KernelBugException>(() => alloc_bootmem(64));
        Assert.Equal(BugKind.BootmemAfterBoot, e.Kind);
        Assert.Contains("------------[ cut here ]------------", e.Report);
        Assert.Contains("WARNING: CPU:", e.Report);
        Assert.Contains("alloc_bootmem(64) called after boot", e.Report);
        Assert.Contains(nameof(Alloc_bootmem_after_boot_is_reported_and_returns_NULL), e.Report);
    }

    [Fact]
    public void In_report_mode_every_bootmem_call_after_boot_is_reported_and_does_nothing()
    {
        using Machine m = BootEarly(BugAction.Report);
        KPtr kept = alloc_bootmem_pages(PAGE_SIZE);
        m.FinishBoot();
        Assert.True(alloc_bootmem_low(64).IsNull);
        Assert.True(alloc_bootmem_pages(4096).IsNull);
        Assert.True(alloc_bootmem_low_pages(4096).IsNull);
        free_bootmem(__pa(kept), PAGE_SIZE);
        Assert.Equal(4, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.BootmemAfterBoot, r.Kind));
        Assert.Contains("free_bootmem(4096) called after boot", m.Reports[3].Text);
        Assert.True(m.IsBootmem(__pa(kept)));
    }

    [Fact]
    public void Without_sanity_checks_a_late_bootmem_call_only_warns()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 2, Checks = Checks.All & ~Checks.Sanity });
        Assert.True(alloc_bootmem(64).IsNull);
        Assert.Empty(m.Reports);
        Assert.Contains(m.Log, l => l.Contains("alloc_bootmem(64) called after boot"));
    }

    [Fact]
    public void Freeing_bootmem_with_the_page_functions_is_a_bad_page_state()
    {
        using Machine m = BootEarly(BugAction.Report);
        KPtr p = alloc_bootmem_pages(PAGE_SIZE);
        m.FinishBoot();
        ulong free = nr_free_pages();
        free_page((ulong)p);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.BadPageState, r.Kind);
        Assert.Contains("page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set", r.Text);
        Assert.Contains("allocated by alloc_bootmem()", r.Text);
        Assert.Contains("flags: 0x2(reserved)", r.Text);
        Assert.Equal(free, nr_free_pages());
        Assert.True(m.IsBootmem(__pa(p)));
    }

    /// <summary>The contract probe's Boot() section.</summary>
    [Fact]
    public void Contract_probe_boot_section_runs_clean()
    {
        using Machine early = Machine.Boot(new MachineOptions { EarlyBoot = true, MemoryBytes = 64L << 20 });
        KPtr bm = alloc_bootmem(1 << 20);
        KPtr low = alloc_bootmem_low(4096);
        KPtr pages = alloc_bootmem_pages(8192);
        KPtr lowPages = alloc_bootmem_low_pages(4096);
        free_bootmem(__pa(bm), 1 << 20);
        early.FinishBoot();
        Assert.False(low.IsNull || pages.IsNull || lowPages.IsNull);
        Assert.Empty(early.Reports);
    }
}
