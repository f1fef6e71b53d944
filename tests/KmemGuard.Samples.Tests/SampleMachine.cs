using System;
using System.Linq;
using Scull;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Samples.Tests;

/// <summary>Small machines for the sample tests, and the user-space moves the tests make.</summary>
internal static class SampleMachine
{
    public static Machine Boot(BugAction onBug = BugAction.Throw) =>
        Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 2, OnBug = onBug });

    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)(i * 31 + seed * 7 + (i >> 8));
        return data;
    }

    /// <summary>Opens the device as open(2) would, with the given flags.</summary>
    public static @file Open(file_operations fops, object dev, int flags)
    {
        var filp = new file(flags);
        Assert.Equal(0, fops.open!(new inode(dev), filp));
        return filp;
    }

    /// <summary>One read(2) of <paramref name="count"/> bytes: what it returned and the bytes it delivered.</summary>
    public static (long Result, byte[] Bytes) ReadOnce(file_operations fops, file filp, int count)
    {
        byte[] buf = new byte[count];
        long r = fops.read!(filp, buf, count, ref filp.f_pos);
        return (r, r > 0 ? buf.AsSpan(0, (int)r).ToArray() : Array.Empty<byte>());
    }

    public static long WriteOnce(file_operations fops, file filp, byte[] data) => fops.write!(filp, data, data.Length, ref filp.f_pos);

    /// <summary>The checker found nothing, and kmemleak finds nothing unreachable from the roots.</summary>
    public static void AssertClean(Machine m, params object[] roots)
    {
        Assert.Empty(m.Reports.Select(r => r.Text));
        Assert.Empty(m.ScanLeaks(roots).Select(r => r.Text));
    }

    public static void Trim(scull_dev dev)
    {
        mutex_lock(dev.@lock);
        scull.scull_trim(dev);
        mutex_unlock(dev.@lock);
    }
}
