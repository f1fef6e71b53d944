using System;
using System.Linq;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class KvmallocTests
{
    private static Machine Boot(BugAction onBug = BugAction.Throw) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, OnBug = onBug });

    [Fact]
    public void Small_and_cheap_sizes_come_from_kmalloc()
    {
        using Machine m = Boot();
        KPtr small = kvmalloc(100, GFP_KERNEL);
        KPtr page = kvmalloc(PAGE_SIZE, GFP_KERNEL);
        KPtr big = kvmalloc(64 << 10, GFP_KERNEL);
        Assert.All(new[] { small, page, big }, p => Assert.False(is_vmalloc_addr(p)));
        Assert.True(ksize(big) >= 64 << 10);
        kvfree(small);
        kvfree(page);
        kvfree(big);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void Above_what_kmalloc_can_give_it_falls_back_to_vmalloc_quietly()
    {
        using Machine m = Boot();
        KPtr huge = kvzalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL);
        Assert.True(is_vmalloc_addr(huge));
        Assert.Equal(0, huge[(long)KMALLOC_MAX_SIZE]);
        Assert.DoesNotContain(m.Log, w => w.Contains("page allocation failure") || w.Contains("kmalloc"));
        kvfree(huge);
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void A_mask_that_is_not_GFP_KERNEL_never_falls_back_to_vmalloc()
    {
        using Machine m = Boot();
        Assert.True(kvmalloc(KMALLOC_MAX_SIZE + 1, GFP_ATOMIC | __GFP_NOWARN).IsNull);
        Assert.True(kvmalloc(KMALLOC_MAX_SIZE + 1, GFP_NOFS | __GFP_NOWARN).IsNull);
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
    }

    [Fact]
    public void Sizes_above_INT_MAX_and_overflowing_arrays_are_NULL()
    {
        using Machine m = Boot();
        Assert.True(kvmalloc((ulong)int.MaxValue + 1, GFP_KERNEL).IsNull);
        Assert.Contains(m.Log, w => w.Contains("> INT_MAX"));
        Assert.True(kvmalloc_array(ulong.MaxValue / 2, 4, GFP_KERNEL).IsNull);
        KPtr arr = kvcalloc(1000, 100, GFP_KERNEL);
        Assert.True(arr.AsSpan(100_000).ToArray().All(b => b == 0));
        kvfree(arr);
    }

    [Fact]
    public void kvfree_of_NULL_is_a_no_op_and_a_double_kvfree_is_reported()
    {
        using Machine m = Boot();
        kvfree(NULL);
        KPtr v = kvmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL);
        kvfree(v);
        Assert.Equal(BugKind.DoubleFree, Assert.Throws<KernelBugException>(() => kvfree(v)).Kind);
    }

    [Fact]
    public void vfree_of_kmalloc_memory_and_kfree_of_vmalloc_memory_are_mismatched_frees_and_not_done()
    {
        using Machine m = Boot(BugAction.Report);
        KPtr k = kmalloc(128, GFP_KERNEL);
        KPtr v = vmalloc(128);
        vfree(k);
        kfree(v);
        kfree(page_address(vmalloc_to_page(v)!));
        Assert.Equal(3, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.MismatchedFree, r.Kind));
        Assert.Contains("which belongs to the cache kmalloc-128", m.Reports[0].Text);
        k[127] = 1;
        v[127] = 1;
        kvfree(k);
        kvfree(v);
        Assert.Equal(3, m.Reports.Count);
    }
}
