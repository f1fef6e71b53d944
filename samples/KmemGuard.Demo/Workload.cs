using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Scull;
using static KmemGuard.Kernel;

namespace KmemGuard.Demo;

/// <summary>Drives each sample as user space would: write a pattern, seek back, read it, compare.</summary>
internal sealed class Workload
{
    private readonly Machine _machine;
    private readonly List<scull_dev> _sculls = new();
    private readonly scullc_module _scullc = new(quantum: 4000, nr_devs: 2);
    private sbull_dev? _sbull;
    private short_dev? _short;
    private int _failures;

    public Workload(Machine machine) => _machine = machine;

    public int Run()
    {
        _sculls.Add(new scull_dev());
        _sculls.Add(new scull_dev(quantum: 1000, qset: 4)); // small sets: the data spans a list of them
        _sculls.Add(new scullp_dev(order: 0));
        _sculls.Add(new scullp_dev(order: 2));
        _sculls.Add(new scullv_dev(order: 2));
        if (_scullc.scullc_init() != 0) Fail("scullc_init failed");
        _sculls.AddRange(_scullc.scullc_devices);

        int seed = 1;
        foreach (scull_dev dev in _sculls) Exercise(dev, 10_000 + 3_000 * seed, seed++);

        RunSbull();
        RunShort();
        Console.WriteLine($"  scull_stats (per-CPU counters, summed): {scull_stats.scull_total_written()} bytes written, {scull_stats.scull_total_read()} read; "
            + "per CPU read: " + string.Join(" ", Enumerable.Range(0, _machine.Options.Cpus).Select(cpu => $"cpu{cpu}={scull_stats.scull_read_on(cpu)}")));
        return _failures;
    }

    private void Exercise(scull_dev dev, int length, int seed)
    {
        byte[] data = Pattern(length, seed);
        var node = new inode(dev);
        var writer = new file(fcntl.O_WRONLY);
        scull.scull_fops.open!(node, writer);
        long written = user.write_all(scull.scull_fops, writer, data, chunk: 3000);
        scull.scull_fops.release!(node, writer);

        var reader = new file(fcntl.O_RDONLY);
        scull.scull_fops.open!(node, reader);
        scull.scull_fops.llseek!(reader, 0, fcntl.SEEK_SET);
        byte[] back = user.read_all(scull.scull_fops, reader);
        scull.scull_fops.release!(node, reader);

        bool ok = written == length && back.AsSpan().SequenceEqual(data);
        if (!ok) _failures++;
        long quanta = (length + dev.quantum - 1) / dev.quantum;
        Console.WriteLine($"  {dev.GetType().Name,-10} quantum {dev.quantum,6} × qset {dev.qset,4}: wrote {written,6} bytes ({quanta} quanta), read back {back.Length,6}: "
            + (ok ? Term.Green("ok") : Term.Red("MISMATCH")));
    }

    private void RunSbull()
    {
        _sbull = sbull_dev.sbull_create(nsectors: 256);
        if (_sbull is null)
        {
            Fail("sbull_create failed");
            return;
        }
        const int nsect = 8, bytes = nsect * sbull_dev.KERNEL_SECTOR_SIZE;
        KPtr outbuf = kmalloc(bytes, GFP_KERNEL), inbuf = kzalloc(bytes, GFP_KERNEL);
        byte[] data = Pattern(bytes, 42);
        data.CopyTo(outbuf.AsSpan(bytes));
        _sbull.sbull_submit(10, nsect, outbuf, write: true);
        _sbull.sbull_submit(10, nsect, inbuf, write: false);
        _sbull.sbull_sync();
        bool ok = inbuf.AsSpan(bytes).SequenceEqual(data);
        if (!ok) _failures++;
        kfree(outbuf);
        kfree(inbuf);
        Console.WriteLine($"  {"sbull",-10} {_sbull.nsectors} sectors, requests from a mempool: {_sbull.completed} completed, {bytes} bytes round-tripped: "
            + (ok ? Term.Green("ok") : Term.Red("MISMATCH")));
    }

    private void RunShort()
    {
        var hw = new short_hw(_machine, short_dev.SHORT_IRQ);
        _machine.MapDevice(short_dev.SHORT_BASE, short_dev.SHORT_NR_PORTS, hw);
        _short = short_dev.short_init();
        if (_short is null)
        {
            Fail("short_init failed");
            return;
        }
        byte[] message = Encoding.ASCII.GetBytes("hello from the short device, one interrupt per byte");
        hw.receive(message);
        var node = new inode(_short);
        var filp = new file(fcntl.O_RDONLY);
        short_dev.short_fops.open!(node, filp);
        byte[] got = user.read_all(short_dev.short_fops, filp, message.Length);
        bool ok = got.AsSpan().SequenceEqual(message);
        if (!ok) _failures++;
        Console.WriteLine($"  {"short",-10} irq {short_dev.SHORT_IRQ} at {short_dev.SHORT_BASE:x}: {message.Length} bytes through the irq handler and a tasklet: "
            + (ok ? Term.Green("ok") : Term.Red("MISMATCH")) + $" \"{Encoding.ASCII.GetString(got)}\"");
    }

    /// <summary>kmemleak with the devices as roots (nothing may be unreachable), then every module's exit path.</summary>
    public int Cleanup()
    {
        var roots = new List<object>(_sculls) { _scullc };
        if (_sbull is not null) roots.Add(_sbull);
        if (_short is not null) roots.Add(_short);
        var leaks = _machine.ScanLeaks(roots.ToArray());
        Console.WriteLine();
        Console.WriteLine($"  kmemleak scan with the devices as roots: {(leaks.Count == 0 ? Term.Green("no leaks") : Term.Red($"{leaks.Count} leak(s)"))}");
        _failures += leaks.Count;
        foreach (KernelBugReport leak in leaks) ReportPrinter.Print(leak, ReportPrinter.DefaultLines);

        foreach (scull_dev dev in _sculls.Where(d => d is not scullc_dev))
        {
            mutex_lock(dev.@lock);
            scull.scull_trim(dev);
            mutex_unlock(dev.@lock);
        }
        _scullc.scullc_cleanup();
        _sbull?.sbull_destroy();
        _short?.short_cleanup();

        var reports = _machine.Reports;
        Console.WriteLine($"  after every module's cleanup: {(reports.Count == 0 ? Term.Green("the checker reported nothing") : Term.Red($"{reports.Count} report(s)"))}, "
            + $"kmemleak: {_machine.ScanLeaks().Count} unreferenced object(s)");
        foreach (KernelBugReport r in reports) ReportPrinter.Print(r, ReportPrinter.DefaultLines);
        return _failures + reports.Count;
    }

    private void Fail(string what)
    {
        _failures++;
        Console.WriteLine("  " + Term.Red(what));
    }

    internal static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)(i * 31 + seed * 7 + (i >> 8));
        return data;
    }
}
