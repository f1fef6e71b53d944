using System;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class UsercopyTests
{
    /// <summary>Stands in for a slab page: every 64 bytes are one object of a 'kmalloc-64' cache.</summary>
    private sealed class Kmalloc64Page : IObjectOwner
    {
        private readonly ulong _start;

        public Kmalloc64Page(ulong start) => _start = start;

        public ObjectInfo Describe(ulong address) => new()
        {
            Start = _start + (address - _start) / 64 * 64,
            RequestedSize = 64,
            CacheName = "kmalloc-64",
            CacheObjectSize = 64,
            Family = MemoryFamily.Kmalloc,
            Allocated = true,
        };
    }

    private static KPtr SlabPage(Machine m)
    {
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        ulong start = PageAllocator.PageVirt(frame);
        frame.Owner = new Kmalloc64Page(start);
        return new KPtr(start);
    }

    [Fact]
    public void Copies_round_trip_and_return_zero()
    {
        using Machine m = Ctx.Boot();
        KPtr k = Ctx.Page(m);
        byte[] user = { 1, 2, 3, 4, 5, 6, 7, 8 };
        Assert.Equal(0UL, copy_from_user(k, user, 8));
        Assert.Equal(5, k[4]);
        var back = new byte[8];
        Assert.Equal(0UL, copy_to_user(back, k, 8));
        Assert.Equal(user, back);
        Assert.Equal(0UL, copy_to_user(back.AsSpan(4), k, 4));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 1, 2, 3, 4 }, back);
    }

    [Fact]
    public void A_short_user_buffer_copies_what_is_there_and_zeroes_the_kernel_tail()
    {
        using Machine m = Ctx.Boot();
        KPtr k = Ctx.Page(m);
        memset(k, 0xff, 16);
        Assert.Equal(6UL, copy_from_user(k, new byte[] { 9, 9 }, 8));
        Assert.Equal(9, k[1]);
        Assert.Equal(0, k[2]);
        Assert.Equal(0, k[7]);
        Assert.Equal(0xff, k[8]);
        Assert.Equal(12UL, copy_to_user(new byte[4], k, 16));
        Assert.Equal(16UL, copy_to_user((byte[]?)null, k, 16));
    }

    [Fact]
    public void Copy_to_user_past_a_slab_object_is_a_kernel_memory_exposure()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        KPtr obj = SlabPage(m);
        var user = new byte[128];
        Array.Fill(user, (byte)0x5a);
        Assert.Equal(128UL, copy_to_user(user, obj, 128));
        KernelBugReport report = Ctx.Single(m, BugKind.UsercopyExposure);
        Assert.Equal("usercopy: Kernel memory exposure attempt detected from SLUB object 'kmalloc-64' (offset 0, size 128)!", report.Title);
        Assert.Contains("kernel BUG at mm/usercopy.c", report.Text);
        Assert.All(user, b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public void Copy_from_user_past_a_slab_object_is_an_overwrite_attempt_and_nothing_is_written()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        KPtr obj = SlabPage(m) + 64;
        memset(obj, 0, 64);
        memset(obj + 64, 0x11, 64);
        var user = new byte[100];
        Array.Fill(user, (byte)0xee);
        Assert.Equal(100UL, copy_from_user(obj + 8, user, 100));
        Assert.Equal("usercopy: Kernel memory overwrite attempt detected to SLUB object 'kmalloc-64' (offset 8, size 100)!", Ctx.Single(m, BugKind.UsercopyExposure).Title);
        Assert.Equal(0, obj[8]);
        Assert.Equal(0x11, obj[64]);
    }

    [Fact]
    public void Copies_inside_one_slab_object_are_silent()
    {
        using Machine m = Ctx.Boot();
        KPtr obj = SlabPage(m) + 128;
        Assert.Equal(0UL, copy_from_user(obj + 16, new byte[48], 48));
        Assert.Equal(0UL, copy_to_user(new byte[64], obj, 64));
    }

    [Fact]
    public void A_null_kernel_pointer_is_reported_as_such()
    {
        using Machine m = Ctx.Boot();
        var e = Assert.Throws<KernelBugException>(() => copy_to_user(new byte[8], NULL, 8));
        Assert.Equal(BugKind.UsercopyExposure, e.Kind);
        Assert.StartsWith("usercopy: Kernel memory exposure attempt detected from null address (offset 0, size 8)!", e.Report);
    }

    [Fact]
    public void Switched_off_the_hardened_check_lets_the_copy_through()
    {
        using Machine m = Ctx.Boot(checks: Checks.All & ~Checks.Usercopy);
        KPtr obj = SlabPage(m);
        Assert.Equal(0UL, copy_to_user(new byte[128], obj, 128));
    }

    [Fact]
    public void User_copies_may_fault_so_they_may_not_run_under_a_spinlock()
    {
        using Machine m = Ctx.Boot();
        KPtr k = Ctx.Page(m);
        var lk = new spinlock_t();
        spin_lock(lk);
        Assert.Equal(BugKind.SleepInAtomic, Assert.Throws<KernelBugException>(() => copy_to_user(new byte[8], k, 8)).Kind);
        spin_unlock(lk);
    }

    [Fact]
    public void A_copy_past_a_multi_page_block_is_reported_and_one_within_it_is_not()
    {
        using Machine m = Ctx.Boot(onBug: BugAction.Report);
        var block = new KPtr(PageAllocator.PageVirt(m.PageAllocator.Alloc(GFP_KERNEL, 1, -1, default)!));
        Assert.Equal(0UL, copy_to_user(new byte[2 * PAGE_SIZE], block, 2 * PAGE_SIZE));
        Assert.Empty(m.Reports);
        Assert.Equal(16UL, copy_to_user(new byte[16], block + (2 * PAGE_SIZE - 8), 16));
        Assert.Equal($"usercopy: Kernel memory exposure attempt detected from page alloc (offset {2 * PAGE_SIZE - 8}, size 16)!", Ctx.Single(m, BugKind.UsercopyExposure).Title);
    }
}
