using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

// Until the allocators call Kmemleak.Track themselves, these tests take pages from the buddy
// allocator and register them by hand, as an allocator would.
public class KmemleakTests
{
    private static Machine Boot(Checks checks = Checks.All, BugAction onBug = BugAction.Throw) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, Checks = checks, OnBug = onBug });

    /// <summary>A tracked block of <paramref name="size"/> bytes at the start of a fresh page.</summary>
    private static KPtr Block(Machine m, ulong size = 128, MemoryFamily family = MemoryFamily.Kmalloc, string? cache = "kmalloc-128",
        [System.Runtime.CompilerServices.CallerMemberName] string caller = "", [System.Runtime.CompilerServices.CallerFilePath] string file = "",
        [System.Runtime.CompilerServices.CallerLineNumber] int line = 0)
    {
        var site = new CallSite(caller, file, line);
        page frame = m.PageAllocator.Alloc(GFP_KERNEL | __GFP_ZERO, 0, -1, site)!;
        ulong start = PageAllocator.PageVirt(frame);
        m.Kmemleak.Track(start, size, family, cache, new Track(m.CurrentTask, site, m.Jiffies));
        return new KPtr(start);
    }

    private static ulong[] LeakedAddresses(IReadOnlyList<KernelBugReport> reports) => reports.Select(r => r.Address).ToArray();

    [Fact]
    public void An_unreferenced_block_is_reported_in_kmemleaks_format()
    {
        using Machine m = Boot();
        KPtr p = Block(m, 128);
        memset(p, 0x6b, 31);
        p[31] = 0xa5;

        KernelBugReport leak = Assert.Single(m.ScanLeaks());

        Assert.Equal(BugKind.Leak, leak.Kind);
        Assert.Equal(p.Address, leak.Address);
        Assert.Equal($"unreferenced object 0x{p.Address:x16} (size 128):", leak.Title);
        string[] lines = leak.Text.Split('\n');
        Assert.Equal($"  comm \"{m.CurrentTask.Comm}\", pid {m.CurrentTask.Pid}, jiffies {m.Jiffies}", lines[1]);
        Assert.Equal("  hex dump (first 32 bytes):", lines[2]);
        Assert.Equal("    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b  kkkkkkkkkkkkkkkk", lines[3]);
        Assert.Equal("    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b a5  kkkkkkkkkkkkkkk.", lines[4]);
        Assert.Equal("  backtrace:", lines[5]);
        string[] frames = lines[6..].Where(l => l.Length > 0).ToArray();
        Assert.All(frames, f => Assert.Matches(@"^    \[<[0-9a-f]{16}>\] \S", f));
        Assert.Contains(frames, f => f.Contains(nameof(An_unreferenced_block_is_reported_in_kmemleaks_format)));
    }

    [Fact]
    public void A_small_block_dumps_only_its_bytes_with_the_ascii_column_aligned()
    {
        using Machine m = Boot();
        KPtr p = Block(m, 5, MemoryFamily.Kmalloc, "kmalloc-8");
        "scull"u8.CopyTo(p.AsSpan(5));

        KernelBugReport leak = Assert.Single(m.ScanLeaks());

        string[] lines = leak.Text.Split('\n');
        Assert.Equal("  hex dump (first 5 bytes):", lines[2]);
        Assert.Equal("    73 63 75 6c 6c" + new string(' ', 49 - 14) + "scull", lines[3]);
    }

    [Fact]
    public void A_block_a_root_points_to_is_not_a_leak()
    {
        using Machine m = Boot();
        var driver = new ScullDevice { Data = Block(m) };
        KPtr leaked = Block(m);

        Assert.Equal(new[] { leaked.Address }, LeakedAddresses(m.ScanLeaks(driver)));
    }

    [Fact]
    public void Roots_are_searched_through_arrays_collections_nested_objects_structs_and_integers()
    {
        using Machine m = Boot();
        KPtr inArray = Block(m), inList = Block(m), inDictionary = Block(m), inNested = Block(m), inStruct = Block(m),
            asUlong = Block(m), inProperty = Block(m), inTuple = Block(m), inSet = Block(m), leaked = Block(m);
        var roots = new object[]
        {
            new KPtr[] { NULL, inArray },
            new List<KPtr> { inList },
            new Dictionary<string, KPtr> { ["dev"] = inDictionary },
            new ScullDevice { Next = new ScullDevice { Data = inNested } },
            new Holder { Pair = new Pair { First = 7, Second = inStruct } },
            new Holder { Address = asUlong.Address },
            new Holder { Property = inProperty },
            (1, inTuple),
            new HashSet<KPtr> { inSet },
        };

        Assert.Equal(new[] { leaked.Address }, LeakedAddresses(m.ScanLeaks(roots)));
    }

    [Fact]
    public void A_type_as_root_scans_its_static_fields()
    {
        using Machine m = Boot();
        KPtr global = Block(m);
        StaticDriver.Buffer = global;
        try
        {
            Assert.Empty(m.ScanLeaks(typeof(StaticDriver)));
            Assert.Single(m.ScanLeaks());
        }
        finally
        {
            StaticDriver.Buffer = NULL;
        }
    }

    [Fact]
    public void A_page_descriptor_as_root_points_to_its_first_byte()
    {
        using Machine m = Boot();
        KPtr p = Block(m, (ulong)PAGE_SIZE, MemoryFamily.Pages, null);
        page frame = m.Ram.PageAt(KernelMemory.ToPhys(p.Address) >> PAGE_SHIFT);

        Assert.Empty(m.ScanLeaks(new List<page> { frame }));
    }

    [Fact]
    public void Blocks_reachable_through_pointers_stored_in_simulated_memory_are_not_leaks()
    {
        using Machine m = Boot();
        KPtr head = Block(m), middle = Block(m), tail = Block(m);
        head.Write(8, middle.Address);
        middle.Write(120, tail.Address);

        Assert.Empty(m.ScanLeaks(new ScullDevice { Data = head }));
        Assert.Equal(new[] { head.Address, middle.Address, tail.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void A_cycle_that_no_root_reaches_is_a_leak()
    {
        using Machine m = Boot();
        KPtr a = Block(m), b = Block(m);
        a.Write(0, b.Address);
        b.Write(0, a.Address);

        Assert.Equal(new[] { a.Address, b.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void A_pointer_into_the_middle_of_a_block_keeps_it_but_one_past_its_end_does_not()
    {
        using Machine m = Boot();
        KPtr inside = Block(m, 128), past = Block(m, 128);

        Assert.Equal(new[] { past.Address }, LeakedAddresses(m.ScanLeaks(new[] { inside + 127, past + 128 })));
    }

    [Fact]
    public void A_zero_sized_block_is_referenced_by_a_pointer_to_its_start()
    {
        using Machine m = Boot();
        KPtr low = Block(m, 64), empty = Block(m, 0, MemoryFamily.None, null);

        Assert.Equal(new[] { low.Address }, LeakedAddresses(m.ScanLeaks(empty)));
        Assert.Equal(new[] { low.Address, empty.Address }, LeakedAddresses(m.ScanLeaks(empty + 1)));
    }

    [Fact]
    public void Only_the_block_itself_is_scanned_not_the_rest_of_its_page()
    {
        using Machine m = Boot();
        KPtr holder = Block(m, 64), target = Block(m);
        holder.Write(64, target.Address); // beyond the 64 tracked bytes

        Assert.Equal(new[] { target.Address }, LeakedAddresses(m.ScanLeaks(holder)));
    }

    [Fact]
    public void Unaligned_words_are_not_pointers()
    {
        using Machine m = Boot();
        KPtr holder = Block(m), target = Block(m);
        holder.Write(4, target.Address);

        Assert.Equal(new[] { target.Address }, LeakedAddresses(m.ScanLeaks(holder)));
    }

    [Fact]
    public void kmemleak_not_leak_silences_a_block_and_keeps_what_it_points_to()
    {
        using Machine m = Boot();
        KPtr kept = Block(m), child = Block(m), other = Block(m);
        kept.Write(16, child.Address);

        kmemleak_not_leak(kept);

        Assert.Equal(new[] { other.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void kmemleak_ignore_silences_a_block_but_does_not_scan_it()
    {
        using Machine m = Boot();
        KPtr ignored = Block(m), child = Block(m);
        ignored.Write(0, child.Address);

        kmemleak_ignore(ignored);

        Assert.Equal(new[] { child.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void kmemleak_no_scan_block_can_leak_and_hides_its_pointers()
    {
        using Machine m = Boot();
        KPtr opaque = Block(m), child = Block(m);
        opaque.Write(0, child.Address);

        kmemleak_no_scan(opaque);

        Assert.Equal(new[] { child.Address }, LeakedAddresses(m.ScanLeaks(opaque)));
        Assert.Equal(new[] { opaque.Address, child.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void kmemleak_calls_ignore_NULL_and_unknown_pointers()
    {
        using Machine m = Boot();
        KPtr p = Block(m);
        kmemleak_not_leak(NULL);
        kmemleak_not_leak(ZERO_SIZE_PTR);
        kmemleak_not_leak(p + 8); // not the start: the kernel warns and changes nothing

        Assert.Single(m.ScanLeaks());
    }

    [Fact]
    public void A_freed_block_is_forgotten()
    {
        using Machine m = Boot();
        KPtr p = Block(m);
        Assert.Single(m.ScanLeaks());

        m.Kmemleak.Untrack(p.Address);

        Assert.Empty(m.ScanLeaks());
        Assert.Equal(0, m.Kmemleak.Count);
    }

    [Fact]
    public void A_leak_is_reported_again_by_every_scan_while_it_is_unreferenced()
    {
        using Machine m = Boot();
        KPtr p = Block(m);
        Assert.Single(m.ScanLeaks());
        Assert.Single(m.ScanLeaks());
        Assert.Empty(m.ScanLeaks(p));
    }

    [Fact]
    public void Bootmem_and_per_cpu_blocks_are_roots_that_are_never_reported()
    {
        using Machine m = Boot();
        KPtr boot = Block(m, 256, MemoryFamily.Bootmem, null), percpu = Block(m, 64, MemoryFamily.PerCpu, null);
        KPtr fromBoot = Block(m), fromPercpu = Block(m);
        boot.Write(128, fromBoot.Address);
        percpu.Write(8, fromPercpu.Address);

        Assert.Empty(m.ScanLeaks());
    }

    [Fact]
    public void Registered_scan_areas_and_providers_are_roots()
    {
        using Machine m = Boot();
        page area = m.PageAllocator.Alloc(GFP_KERNEL | __GFP_ZERO, 0, -1, default)!;
        var section = new KPtr(PageAllocator.PageVirt(area));
        KPtr fromArea = Block(m), fromProvider = Block(m), leaked = Block(m);
        section.Write(0, fromArea.Address);
        section.Write(PAGE_SIZE - 8, fromProvider.Address);

        m.Kmemleak.AddScanArea(section.Address, 64);
        m.Kmemleak.AddScanAreaProvider(() => new[] { (section.Address + (ulong)PAGE_SIZE - 8, 8UL) });

        Assert.Equal(new[] { leaked.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void Blocks_in_the_vmalloc_area_are_scanned_through_their_frames()
    {
        using Machine m = Boot();
        ulong area = m.Memory.Vmalloc.Start + 16 * (ulong)PAGE_SIZE;
        page first = m.PageAllocator.Alloc(GFP_KERNEL | __GFP_ZERO, 0, -1, default)!;
        page second = m.PageAllocator.Alloc(GFP_KERNEL | __GFP_ZERO, 0, -1, default)!;
        m.Memory.Vmalloc.Map(area, first);
        m.Memory.Vmalloc.Map(area + (ulong)PAGE_SIZE, second);
        m.Kmemleak.Track(area, 2 * (ulong)PAGE_SIZE, MemoryFamily.Vmalloc, null, new Track(m.CurrentTask, default, m.Jiffies));
        KPtr child = Block(m);
        new KPtr(area).Write(PAGE_SIZE + 8, child.Address); // on the second page

        Assert.Empty(m.ScanLeaks(new KPtr(area)));
        Assert.Equal(new[] { area, child.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void The_scan_reads_memory_that_KASAN_has_poisoned_without_a_report()
    {
        using Machine m = Boot(onBug: BugAction.Throw);
        KPtr holder = Block(m), child = Block(m);
        holder.Write(64, child.Address);
        m.Memory.Kasan!.Poison(holder.Address + 64, 64, Kasan.SlabRedzone);

        Assert.Empty(m.ScanLeaks(holder));
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void The_runtimes_own_objects_are_not_roots()
    {
        using Machine m = Boot();
        KPtr p = Block(m);

        Assert.Single(m.ScanLeaks(m, m.Options, m.Kmemleak));
        Assert.Equal(p.Address, m.ScanLeaks(m)[0].Address);
    }

    [Fact]
    public void A_driver_collection_subclass_is_scanned_through_its_elements_and_fields()
    {
        using Machine m = Boot();
        KPtr element = Block(m), field = Block(m), leaked = Block(m);
        var list = new DeviceList { Extra = field };
        list.Add(element);

        Assert.Equal(new[] { leaked.Address }, LeakedAddresses(m.ScanLeaks(list)));
    }

    [Fact]
    public void A_lazy_sequence_is_not_run_by_the_scan()
    {
        using Machine m = Boot();
        KPtr p = Block(m);
        int runs = 0;
        IEnumerable<KPtr> lazy = Enumerable.Range(0, 1).Select(_ => { runs++; return p; });

        Assert.Single(m.ScanLeaks(new Holder { Lazy = lazy }));
        Assert.Equal(0, runs);
    }

    [Fact]
    public void Cyclic_managed_roots_terminate()
    {
        using Machine m = Boot();
        KPtr p = Block(m);
        var a = new ScullDevice();
        var b = new ScullDevice { Next = a, Data = p };
        a.Next = b;

        Assert.Empty(m.ScanLeaks(a));
    }

    [Fact]
    public void kmemleak_alloc_registers_a_drivers_own_block()
    {
        using Machine m = Boot();
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        var pool = new KPtr(PageAllocator.PageVirt(frame));
        KPtr chunk = pool + 256;

        kmemleak_alloc(chunk, 64, 1, GFP_KERNEL);
        KernelBugReport leak = Assert.Single(m.ScanLeaks());
        Assert.StartsWith($"unreferenced object 0x{chunk.Address:x16} (size 64):", leak.Text);
        Assert.Contains(nameof(kmemleak_alloc_registers_a_drivers_own_block), leak.Text);

        kmemleak_free(chunk);
        Assert.Empty(m.ScanLeaks());
        Assert.Throws<ArgumentOutOfRangeException>(() => kmemleak_alloc(chunk, 64, -2, GFP_KERNEL));
    }

    [Fact]
    public void A_block_with_min_count_2_needs_two_references()
    {
        using Machine m = Boot();
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        var shared = new KPtr(PageAllocator.PageVirt(frame));
        kmemleak_alloc(shared, 64, 2, GFP_KERNEL);

        Assert.Single(m.ScanLeaks(new ScullDevice { Data = shared }));
        Assert.Empty(m.ScanLeaks(new ScullDevice { Data = shared, Next = new ScullDevice { Data = shared + 8 } }));
    }

    [Fact]
    public void Null_roots_and_open_generic_types_are_no_roots()
    {
        using Machine m = Boot();
        Block(m);

        Assert.Single(m.ScanLeaks(null!));
        Assert.Single(m.ScanLeaks(typeof(List<>), null!));
    }

    [Fact]
    public void ClearLeaks_silences_what_the_last_scan_reported_but_not_later_blocks()
    {
        using Machine m = Boot();
        KPtr fromSetup = Block(m), child = Block(m);
        fromSetup.Write(0, child.Address);
        Assert.Equal(new[] { fromSetup.Address, child.Address }, LeakedAddresses(m.ScanLeaks()));

        m.ClearLeaks();
        KPtr fromTest = Block(m);

        Assert.Equal(new[] { fromTest.Address }, LeakedAddresses(m.ScanLeaks()));
    }

    [Fact]
    public void The_allocator_hooks_track_and_forget_blocks()
    {
        using Machine m = Boot();
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        ulong start = PageAllocator.PageVirt(frame);

        m.KmemleakAlloc(start, 96, MemoryFamily.SlabCache, "scullc", new Track(m.CurrentTask, default, m.Jiffies));
        KernelBugReport leak = Assert.Single(m.ScanLeaks());
        Assert.StartsWith($"unreferenced object 0x{start:x16} (size 96):", leak.Text);

        m.KmemleakFree(start);
        Assert.Empty(m.ScanLeaks());
    }

    [Fact]
    public void ScanLeaks_with_kmemleak_off_throws_and_the_annotations_do_nothing()
    {
        using Machine m = Boot(Checks.All & ~Checks.Kmemleak);
        page frame = m.PageAllocator.Alloc(GFP_KERNEL, 0, -1, default)!;
        var p = new KPtr(PageAllocator.PageVirt(frame));
        kmemleak_not_leak(p);
        kmemleak_alloc(p, 64, 1, GFP_KERNEL);
        m.KmemleakAlloc(p.Address, 64, MemoryFamily.Kmalloc, "kmalloc-64", new Track(m.CurrentTask, default, m.Jiffies));
        m.KmemleakFree(p.Address);

        var e = Assert.Throws<InvalidOperationException>(() => m.ScanLeaks());
        Assert.Contains("kmemleak is off", e.Message);
        Assert.Throws<InvalidOperationException>(() => m.ClearLeaks());
    }

    [Fact]
    public void ScanLeaks_on_a_machine_that_was_shut_down_throws()
    {
        Machine m = Boot();
        m.Dispose();
        Assert.Throws<ObjectDisposedException>(() => m.ScanLeaks());
    }

    [Fact]
    public async Task Tracking_from_many_threads_while_scanning_loses_nothing()
    {
        using Machine m = Boot();
        const int threads = 4, perThread = 200;
        var kept = new KPtr[threads][];
        await ScanningThreads.RunWhileScanning(m, threads, t =>
        {
            kept[t] = new KPtr[perThread];
            for (int i = 0; i < perThread; i++)
            {
                ulong start = 0x1000UL * (ulong)(t * perThread + i) + PAGE_OFFSET_FOR_TESTS;
                m.Kmemleak.Track(start, 64, MemoryFamily.Kmalloc, "kmalloc-64", new Track(m.CurrentTask, default, m.Jiffies));
                if (i % 2 == 0) m.Kmemleak.Untrack(start);
                else kept[t][i] = new KPtr(start);
            }
        });

        Assert.Equal(threads * perThread / 2, m.Kmemleak.Count);
        Assert.Empty(m.ScanLeaks(kept));
        Assert.Equal(threads * perThread / 2, m.ScanLeaks().Count);
    }

    private const ulong PAGE_OFFSET_FOR_TESTS = 0xffff_8880_0000_0000;

    private sealed class ScullDevice
    {
        public KPtr Data;
        public ScullDevice? Next;
    }

    private struct Pair
    {
        public int First;
        public KPtr Second;
    }

    private sealed class Holder
    {
        public Pair Pair;
        public ulong Address;
        public KPtr Property { get; set; }
        public IEnumerable<KPtr>? Lazy;
    }

    private sealed class DeviceList : List<KPtr>
    {
        public KPtr Extra;
    }

    private static class StaticDriver
    {
        public static KPtr Buffer;
    }
}
