using System;
using System.Linq;
using Scull;
using Xunit;
using static KmemGuard.Kernel;
using static KmemGuard.Samples.Tests.SampleMachine;
using static Scull.fcntl;

namespace KmemGuard.Samples.Tests;

public class ScullTests
{
    private static readonly file_operations fops = scull.scull_fops;

    [Fact]
    public void Data_written_across_quanta_and_quantum_sets_reads_back()
    {
        using Machine m = Boot();
        var dev = new scull_dev(quantum: 1000, qset: 4); // 4000 bytes per set: 10,000 bytes need three sets
        byte[] data = Pattern(10_000, 1);

        file w = Open(fops, dev, O_WRONLY);
        Assert.Equal(10_000, user.write_all(fops, w, data, chunk: 1700));
        Assert.Equal(10_000, dev.size);
        Assert.False(dev.data.next.next.IsNull);
        Assert.True(dev.data.next.next.next.IsNull);

        file r = Open(fops, dev, O_RDONLY);
        Assert.Equal(data, user.read_all(fops, r, chunk: 777));
        AssertClean(m, dev);

        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void Read_stops_at_the_end_of_a_quantum_and_at_end_of_file()
    {
        using Machine m = Boot();
        var dev = new scull_dev(quantum: 1000, qset: 2);
        byte[] data = Pattern(2500, 2);
        file w = Open(fops, dev, O_WRONLY);
        Assert.Equal(2500, user.write_all(fops, w, data));

        file r = Open(fops, dev, O_RDONLY);
        r.f_pos = 300;
        var (first, bytes) = ReadOnce(fops, r, 1500);
        Assert.Equal(700, first); // up to the end of quantum 0
        Assert.Equal(data.AsSpan(300, 700).ToArray(), bytes);
        Assert.Equal(1000, r.f_pos);

        Assert.Equal(1000, ReadOnce(fops, r, 4000).Result); // quantum 1
        var (last, tail) = ReadOnce(fops, r, 4000);          // quantum 0 of the second set: only 500 stored
        Assert.Equal(500, last);
        Assert.Equal(data.AsSpan(2000).ToArray(), tail);
        Assert.Equal(0, ReadOnce(fops, r, 10).Result);       // end of file
        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void Write_stops_at_the_end_of_a_quantum()
    {
        using Machine m = Boot();
        var dev = new scull_dev(quantum: 1000, qset: 8);
        file w = Open(fops, dev, O_WRONLY);
        w.f_pos = 900;
        Assert.Equal(100, WriteOnce(fops, w, Pattern(500, 3)));
        Assert.Equal(1000, w.f_pos);
        Assert.Equal(1000, dev.size);
        Assert.Equal(400, WriteOnce(fops, w, Pattern(400, 4)));
        Assert.Equal(1400, dev.size);
        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void Llseek_follows_whence_and_refuses_negative_positions()
    {
        using Machine m = Boot();
        var dev = new scull_dev();
        file w = Open(fops, dev, O_WRONLY);
        Assert.Equal(5000, user.write_all(fops, w, Pattern(5000, 5)));

        file r = Open(fops, dev, O_RDONLY);
        Assert.Equal(100, fops.llseek!(r, 100, SEEK_SET));
        Assert.Equal(150, fops.llseek!(r, 50, SEEK_CUR));
        Assert.Equal(4990, fops.llseek!(r, -10, SEEK_END));
        Assert.Equal(Pattern(5000, 5).AsSpan(4990).ToArray(), user.read_all(fops, r));
        Assert.Equal(-errno.EINVAL, fops.llseek!(r, -1, SEEK_SET));
        Assert.Equal(-errno.EINVAL, fops.llseek!(r, 0, 7));
        Assert.Equal(5000, r.f_pos); // a refused seek leaves the position alone
        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void A_hole_left_by_seeking_past_the_end_reads_as_end_of_data()
    {
        using Machine m = Boot();
        var dev = new scull_dev(quantum: 1000, qset: 4);
        file w = Open(fops, dev, O_WRONLY);
        fops.llseek!(w, 9500, SEEK_SET);
        Assert.Equal(500, WriteOnce(fops, w, Pattern(500, 6)));
        Assert.Equal(10_000, dev.size);

        file r = Open(fops, dev, O_RDONLY);
        Assert.Equal(0, ReadOnce(fops, r, 100).Result); // scull does not fill holes on read
        r.f_pos = 9500;
        Assert.Equal(Pattern(500, 6), ReadOnce(fops, r, 1000).Bytes);
        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void Opening_write_only_trims_the_device_and_frees_its_memory()
    {
        using Machine m = Boot();
        var dev = new scull_dev(quantum: 1000, qset: 4);
        user.write_all(fops, Open(fops, dev, O_WRONLY), Pattern(9000, 7));
        Assert.NotEmpty(m.ScanLeaks()); // without the device as a root, its quanta look unreferenced

        file again = Open(fops, dev, O_WRONLY);
        Assert.Equal(0, dev.size);
        Assert.True(dev.data.IsNull);
        Assert.Equal(0, again.f_pos);
        AssertClean(m); // nothing left to find, even with no roots

        Open(fops, dev, O_RDWR); // read-write does not trim
        Assert.Equal(0, dev.size);
    }

    [Theory]
    [InlineData(1)] // the quantum set
    [InlineData(2)] // its array of quantum pointers
    [InlineData(3)] // the quantum itself
    public void Write_returns_ENOMEM_when_an_allocation_fails_and_leaves_nothing_behind(int nth)
    {
        using Machine m = Boot();
        m.FailSlab.IgnoreGfpWait = false; // GFP_KERNEL allocations may fail too
        var dev = new scull_dev(quantum: 1000, qset: 4);
        file w = Open(fops, dev, O_WRONLY);

        m.SetFailNth(nth);
        Assert.Equal(-errno.ENOMEM, WriteOnce(fops, w, Pattern(100, 10)));
        Assert.Equal(0, m.FailNth); // the failure was injected
        Assert.Equal(0, w.f_pos);
        Assert.Equal(0, dev.size);

        Assert.Equal(100, WriteOnce(fops, w, Pattern(100, 10))); // the next try succeeds
        Trim(dev);
        AssertClean(m);
    }

    [Fact]
    public void A_user_buffer_shorter_than_count_faults()
    {
        using Machine m = Boot(BugAction.Report);
        var dev = new scull_dev(quantum: 1000, qset: 4);
        file w = Open(fops, dev, O_WRONLY);
        byte[] small = Pattern(10, 8);
        long r = fops.write!(w, small, 100, ref w.f_pos);
        Assert.Equal(-errno.EFAULT, r);
        Assert.Equal(0, w.f_pos);
        Trim(dev);
    }

    [Fact]
    public void Per_cpu_statistics_sum_every_transfer()
    {
        using Machine m = Boot();
        var dev = new scull_dev(quantum: 1000, qset: 4);
        user.write_all(fops, Open(fops, dev, O_WRONLY), Pattern(6000, 9));
        byte[] back = user.read_all(fops, Open(fops, dev, O_RDONLY));
        Assert.Equal(6000, back.Length);
        Assert.Equal(6000, scull_stats.scull_total_written());
        Assert.Equal(6000, scull_stats.scull_total_read());
        Assert.Equal(6000, Enumerable.Range(0, m.Options.Cpus).Sum(scull_stats.scull_read_on));
        Trim(dev);
        AssertClean(m);
    }
}
