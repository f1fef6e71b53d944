using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class IoremapTests
{
    private const ulong DeviceBase = 0xfe00_0000;

    /// <summary>A register file that logs every access and, like real device models, is not thread-safe.</summary>
    private sealed class RegisterFile : IMmioDevice
    {
        public readonly byte[] Bytes = new byte[0x2000];
        public readonly List<(bool Write, ulong Offset, int Size, ulong Value)> Log = new();

        public ulong Read(ulong offset, int size)
        {
            ulong value = 0;
            for (int i = size - 1; i >= 0; i--) value = (value << 8) | Bytes[(int)offset + i];
            Log.Add((false, offset, size, value));
            return value;
        }

        public void Write(ulong offset, int size, ulong value)
        {
            Log.Add((true, offset, size, value));
            for (int i = 0; i < size; i++) Bytes[(int)offset + i] = (byte)(value >> (8 * i));
        }
    }

    /// <summary>Counts writes with a racy read-modify-write: exact only if calls are serialised.</summary>
    private sealed class RacyCounter : IMmioDevice
    {
        public long Count;

        public ulong Read(ulong offset, int size) => (ulong)Count;

        public void Write(ulong offset, int size, ulong value)
        {
            long seen = Count;
            Thread.SpinWait(20);
            Count = seen + 1;
        }
    }

    private static Machine Boot(BugAction onBug = BugAction.Throw) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 32L << 20, Cpus = 2, OnBug = onBug });

    [Fact]
    public void Register_accesses_reach_the_device_with_offset_and_size()
    {
        using Machine m = Boot();
        var dev = new RegisterFile();
        m.MapDevice(DeviceBase, 0x2000, dev);
        IoMem regs = ioremap(DeviceBase + 0x1010, 0x20);
        Assert.False(regs.IsNull);
        Assert.Equal(0x010UL, (ulong)regs & 0xfff);
        iowrite32(0xdeadbeef, regs + 4);
        iowrite16(0x1234, regs + 8);
        iowrite8(0x56, regs + 10);
        writel(0xcafef00d, regs + 12);
        writew(0xabcd, regs + 16);
        writeb(0xef, regs + 18);
        writeq(0x0102030405060708, regs + 24);
        Assert.Equal(0xdeadbeefu, ioread32(regs + 4));
        Assert.Equal((ushort)0x1234, ioread16(regs + 8));
        Assert.Equal((byte)0x56, ioread8(regs + 10));
        Assert.Equal(0xcafef00du, readl(regs + 12));
        Assert.Equal((ushort)0xabcd, readw(regs + 16));
        Assert.Equal((byte)0xef, readb(regs + 18));
        Assert.Equal(0x0102030405060708UL, readq(regs + 24));
        Assert.Equal(0x0102030405060708UL, ioread64(regs + 24));
        Assert.Equal((true, 0x1014UL, 4, 0xdeadbeefUL), dev.Log[0]);
        Assert.Equal((true, 0x1018UL, 2, 0x1234UL), dev.Log[1]);
        Assert.Equal((true, 0x101aUL, 1, 0x56UL), dev.Log[2]);
        Assert.Equal((false, 0x1014UL, 4, 0xdeadbeefUL), dev.Log[7]);
        Assert.Equal(0xef, dev.Bytes[0x1022]);
        iounmap(regs);
    }

    [Fact]
    public void The_whole_page_around_the_range_is_mapped_and_the_guard_page_after_it_faults()
    {
        using Machine m = Boot(BugAction.Report);
        var dev = new RegisterFile();
        m.MapDevice(DeviceBase, 0x2000, dev);
        IoMem regs = ioremap(DeviceBase + 0x10, 4);
        IoMem page0 = new((ulong)regs & ~0xfffUL);
        iowrite8(1, page0 + 0xfff);
        Assert.Equal(0xfff, (int)dev.Log.Single().Offset);
        Assert.Equal(0xffffffffu, ioread32(page0 + 0x1000));
        iowrite32(5, page0 + 0xffe);
        Assert.Equal(2, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.WildAccess, r.Kind));
        Assert.StartsWith("BUG: unable to handle page fault for address: " + ((ulong)page0 + 0x1000).ToString("x16"), m.Reports[0].Text);
        Assert.Contains("#PF: supervisor write access in kernel mode", m.Reports[1].Text);
        Assert.Single(dev.Log);
        iounmap(regs);
    }

    [Fact]
    public void ioremap_of_RAM_is_refused_with_the_kernel_warning()
    {
        using Machine m = Boot();
        Assert.True(ioremap(0x100000, 0x1000).IsNull);
        string warning = Assert.Single(m.Log);
        Assert.StartsWith("------------[ cut here ]------------\nWARNING: CPU: ", warning);
        Assert.EndsWith("arch/x86/mm/ioremap.c __ioremap_caller\nioremap on RAM at 0x0000000000100000 - 0x0000000000100fff", warning);
        Assert.True(ioremap((32UL << 20) - 1, 2).IsNull);
        Assert.Empty(m.Reports);
    }

    [Fact]
    public void ioremap_of_size_zero_or_a_wrapping_range_is_NULL()
    {
        using Machine m = Boot();
        Assert.True(ioremap(DeviceBase, 0).IsNull);
        Assert.True(ioremap(ulong.MaxValue - 10, 100).IsNull);
        Assert.Equal(0, m.Ioremap.Space.LiveCount);
    }

    [Fact]
    public void Physical_space_no_device_decodes_reads_all_ones_and_drops_writes()
    {
        using Machine m = Boot();
        IoMem hole = ioremap(0xf000_0000, 0x100);
        Assert.False(hole.IsNull);
        iowrite32(0, hole);
        Assert.Equal(0xffffffffu, ioread32(hole));
        Assert.Equal((ushort)0xffff, ioread16(hole + 2));
        Assert.Equal((byte)0xff, ioread8(hole + 7));
        Assert.Equal(ulong.MaxValue, ioread64(hole + 8));
        Assert.Empty(m.Reports);
        iounmap(hole);
    }

    [Fact]
    public void MapDevice_rejects_empty_RAM_and_overlapping_ranges()
    {
        using Machine m = Boot();
        var dev = new RegisterFile();
        Assert.Throws<ArgumentException>(() => m.MapDevice(DeviceBase, 0, dev));
        Assert.Contains("overlaps RAM", Assert.Throws<ArgumentException>(() => m.MapDevice(0x1000, 0x1000, dev)).Message);
        Assert.Throws<ArgumentException>(() => m.MapDevice(ulong.MaxValue - 0xfff, 0x2000, dev));
        Assert.Throws<ArgumentNullException>(() => m.MapDevice(DeviceBase, 0x1000, null!));
        m.MapDevice(DeviceBase, 0x1000, dev);
        Assert.Contains("overlaps the device", Assert.Throws<ArgumentException>(() => m.MapDevice(DeviceBase + 0xfff, 0x10, dev)).Message);
        m.MapDevice(DeviceBase + 0x1000, 0x10, new RegisterFile());
    }

    [Fact]
    public void Accesses_after_iounmap_fault()
    {
        using Machine m = Boot();
        m.MapDevice(DeviceBase, 0x1000, new RegisterFile());
        IoMem regs = ioremap(DeviceBase, 0x1000);
        iounmap(regs);
        var e = Assert.Throws<KernelBugException>(() => ioread32(regs));
        Assert.Equal(BugKind.WildAccess, e.Kind);
        Assert.Equal(BugKind.NullPtrDeref, Assert.Throws<KernelBugException>(() => readl(default(IoMem) + 4)).Kind);
    }

    [Fact]
    public void Double_iounmap_is_reported_and_not_done()
    {
        using Machine m = Boot(BugAction.Report);
        m.MapDevice(DeviceBase, 0x1000, new RegisterFile());
        IoMem regs = ioremap(DeviceBase + 4, 0x100);
        iounmap(regs);
        iounmap(regs);
        KernelBugReport r = Assert.Single(m.Reports);
        Assert.Equal(BugKind.DoubleFree, r.Kind);
        Assert.Contains("Freed by task", r.Text);
        Assert.Contains("which belongs to an ioremap mapping", r.Text);
        Assert.Equal(1, m.Ioremap.Space.FreeRangeCount);
    }

    [Fact]
    public void iounmap_of_what_ioremap_did_not_map_is_a_mismatched_free()
    {
        using Machine m = Boot(BugAction.Report);
        iounmap(new IoMem(AddressLayout.IOREMAP_START + 0x10_0000));
        KPtr v = vmalloc(64);
        iounmap((IoMem)(ulong)v);
        Assert.Equal(2, m.Reports.Count);
        Assert.All(m.Reports, r => Assert.Equal(BugKind.MismatchedFree, r.Kind));
        Assert.Contains("iounmap: bad address", m.Reports[0].Text);
        Assert.Contains("it belongs to a vmalloc area", m.Reports[1].Text);
        v[0] = 1;
        vfree(v);
        iounmap(default);
        Assert.Equal(2, m.Reports.Count);
    }

    [Fact]
    public void iounmap_inside_the_mapping_beyond_its_first_page_is_an_invalid_free()
    {
        using Machine m = Boot();
        m.MapDevice(DeviceBase, 0x2000, new RegisterFile());
        IoMem regs = ioremap(DeviceBase, 0x2000);
        Assert.Equal(BugKind.InvalidFree, Assert.Throws<KernelBugException>(() => iounmap(regs + 0x1000)).Kind);
        iowrite8(1, regs + 0x1fff);
        iounmap(regs + 0x10);
        Assert.Equal(0, m.Ioremap.Space.LiveCount);
    }

    [Fact]
    public void An_ioremap_address_is_described_as_its_mapping()
    {
        using Machine m = Boot();
        m.MapDevice(DeviceBase, 0x2000, new RegisterFile());
        IoMem regs = ioremap(DeviceBase + 0x10, 0x1000);
        ulong start = (ulong)regs & ~0xfffUL;
        ObjectInfo info = m.Ioremap.Describe((ulong)regs + 0x800)!;
        Assert.Equal(MemoryFamily.IoRemap, info.Family);
        Assert.Equal(start, info.Start);
        Assert.Equal(0x2000UL, info.RequestedSize); // the pages mapped: [start, start + 0x2000) holds [regs, regs + 0x1000)
        Assert.True(info.Allocated);
        iounmap(regs);
        Assert.False(m.Ioremap.Describe((ulong)regs)!.Allocated);
        Assert.Null(m.Ioremap.Describe(AddressLayout.IOREMAP_START + (1UL << 30)));
    }

    [Fact]
    public void Device_callbacks_are_serialised_across_threads()
    {
        using Machine m = Boot();
        var counter = new RacyCounter();
        m.MapDevice(DeviceBase, 0x1000, counter);
        IoMem regs = ioremap(DeviceBase, 0x1000);
        using var start = new Barrier(4);
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < 5000; i++) iowrite32(1, regs);
        })).ToArray();
        foreach (Thread t in threads) t.Start();
        foreach (Thread t in threads) t.Join();
        Assert.Equal(20000, counter.Count);
        Assert.Equal(20000u, ioread32(regs));
        iounmap(regs);
    }

    [Fact]
    public void memcpy_toio_fromio_and_memset_io_move_bytes()
    {
        using Machine m = Boot();
        var dev = new RegisterFile();
        m.MapDevice(DeviceBase, 0x2000, dev);
        IoMem regs = ioremap(DeviceBase, 0x100);
        KPtr buf = vmalloc(16);
        for (int i = 0; i < 16; i++) buf[i] = (byte)(i + 1);
        memcpy_toio(regs + 0x20, buf, 16);
        Assert.Equal(Enumerable.Range(1, 16).Select(i => (byte)i), dev.Bytes.Skip(0x20).Take(16));
        memset_io(regs + 0x20, 0x77, 4);
        memcpy_fromio(buf, regs + 0x20, 8);
        Assert.Equal(new byte[] { 0x77, 0x77, 0x77, 0x77, 5, 6, 7, 8 }, buf.AsSpan(8).ToArray());
        vfree(buf);
        iounmap(regs);
    }

    [Fact]
    public void Vmallocinfo_shows_ioremap_areas_with_their_physical_address()
    {
        using Machine m = Boot();
        m.MapDevice(DeviceBase, 0x2000, new RegisterFile());
        IoMem regs = ioremap_nocache(DeviceBase + 0x10, 0x1000);
        ulong start = (ulong)regs & ~0xfffUL;
        Assert.Equal(
            $"0x{start:x16}-0x{start + 3 * 4096:x16}   12288 {nameof(Vmallocinfo_shows_ioremap_areas_with_their_physical_address)}+0x0/0x0 phys=0x00000000fe000000 ioremap\n",
            m.RenderVmallocinfo());
        iounmap(regs);
        Assert.Equal("", m.RenderVmallocinfo());
    }
}
