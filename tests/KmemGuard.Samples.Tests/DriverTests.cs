using System;
using System.Linq;
using System.Text;
using Scull;
using Xunit;
using static KmemGuard.Kernel;
using static KmemGuard.Samples.Tests.SampleMachine;

namespace KmemGuard.Samples.Tests;

public class DriverTests
{
    [Fact]
    public void Sbull_round_trips_sectors_through_mempool_requests()
    {
        using Machine m = Boot();
        sbull_dev? disk = sbull_dev.sbull_create(64);
        Assert.NotNull(disk);
        const int bytes = 3 * sbull_dev.KERNEL_SECTOR_SIZE;
        KPtr[] outbufs = Enumerable.Range(0, 10).Select(_ => kmalloc(bytes, GFP_KERNEL)).ToArray();
        KPtr inbuf = kzalloc(bytes, GFP_KERNEL);
        // More requests in flight than the pool's reserve: the backing cache serves the rest.
        for (int i = 0; i < outbufs.Length; i++)
        {
            Pattern(bytes, i).CopyTo(outbufs[i].AsSpan(bytes));
            Assert.Equal(0, disk!.sbull_submit(i * 3, 3, outbufs[i], write: true));
        }
        disk!.sbull_sync();
        Assert.Equal(0, disk.sbull_submit(7 * 3, 3, inbuf, write: false));
        disk.sbull_sync();
        Assert.Equal(Pattern(bytes, 7), inbuf.AsSpan(bytes).ToArray());
        Assert.Equal(11, disk.completed);

        Assert.Equal(-errno.EINVAL, disk.sbull_submit(63, 2, inbuf, write: false)); // past the end of the disk
        Assert.Equal(-errno.EINVAL, disk.sbull_submit(-1, 1, inbuf, write: false));

        foreach (KPtr b in outbufs) kfree(b);
        kfree(inbuf);
        AssertClean(m, disk);
        disk.sbull_destroy();
        AssertClean(m);
    }

    [Fact]
    public void Mempool_reserve_is_reachable_through_its_pool()
    {
        using Machine m = Boot();
        sbull_dev disk = sbull_dev.sbull_create(8)!;
        Assert.Empty(m.ScanLeaks(disk).Select(r => r.Text));
        disk.sbull_destroy();
        AssertClean(m);
    }

    [Fact]
    public void Short_delivers_bytes_from_the_interrupt_handler_in_order()
    {
        using Machine m = Boot();
        var hw = new short_hw(m, short_dev.SHORT_IRQ);
        m.MapDevice(short_dev.SHORT_BASE, short_dev.SHORT_NR_PORTS, hw);
        short_dev? dev = short_dev.short_init();
        Assert.NotNull(dev);
        file filp = Open(short_dev.short_fops, dev!, fcntl.O_RDONLY | fcntl.O_NONBLOCK);
        Assert.Equal(-errno.EAGAIN, ReadOnce(short_dev.short_fops, filp, 16).Result); // nothing yet

        byte[] first = Encoding.ASCII.GetBytes("interrupt-driven ");
        byte[] second = Encoding.ASCII.GetBytes("I/O, one byte per irq");
        hw.receive(first);
        hw.receive(second);
        byte[] got = user.read_all(short_dev.short_fops, Open(short_dev.short_fops, dev!, fcntl.O_RDONLY), first.Length + second.Length, chunk: 5);
        Assert.Equal(first.Concat(second).ToArray(), got);
        Assert.Equal(0, dev!.dropped);
        Assert.Equal(0, dev.short_available());
        AssertClean(m, dev);

        dev.short_cleanup();
        hw.receive(new byte[] { 1, 2, 3 }); // the device is quiet after cleanup: no handler, no report
        AssertClean(m);
    }

    [Fact]
    public void Every_correct_sample_runs_without_a_report_or_a_leak()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 4, OnBug = BugAction.Report });
        var sculls = new scull_dev[] { new(), new(1000, 3), new scullp_dev(1), new scullv_dev(1) };
        var scullc = new scullc_module(2000, 8, 2);
        Assert.Equal(0, scullc.scullc_init());
        foreach (scull_dev dev in sculls.Concat(scullc.scullc_devices))
        {
            byte[] data = Pattern(9000, dev.quantum);
            user.write_all(scull.scull_fops, Open(scull.scull_fops, dev, fcntl.O_WRONLY), data);
            Assert.Equal(data, user.read_all(scull.scull_fops, Open(scull.scull_fops, dev, fcntl.O_RDONLY)));
        }
        sbull_dev disk = sbull_dev.sbull_create(16)!;
        KPtr buf = kzalloc(512, GFP_KERNEL);
        disk.sbull_submit(1, 1, buf, write: true);
        disk.sbull_sync();
        var hw = new short_hw(m, short_dev.SHORT_IRQ);
        m.MapDevice(short_dev.SHORT_BASE, short_dev.SHORT_NR_PORTS, hw);
        short_dev irqdev = short_dev.short_init()!;
        hw.receive(new byte[] { 7, 8, 9 });
        Assert.Equal(new byte[] { 7, 8, 9 }, user.read_all(short_dev.short_fops, Open(short_dev.short_fops, irqdev, fcntl.O_RDONLY), 3));

        // Before cleanup, with the devices as roots: everything is reachable.
        AssertClean(m, sculls, scullc, disk, irqdev, new[] { buf });

        foreach (scull_dev dev in sculls) Trim(dev);
        scullc.scullc_cleanup();
        disk.sbull_destroy();
        irqdev.short_cleanup();
        kfree(buf);
        // After cleanup, with no roots at all: nothing is left.
        AssertClean(m);
    }
}
