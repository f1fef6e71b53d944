using System;
using System.IO;

namespace Scull;

/// <summary>
/// The user-space side of the file operations, as a C program would loop over read(2) and
/// write(2): a driver may transfer fewer bytes than asked (scull stops at each quantum's end).
/// </summary>
public static class user
{
    /// <summary>Writes all of <paramref name="data"/> through <paramref name="chunk"/>-byte write calls; returns bytes written or the first -errno.</summary>
    public static long write_all(file_operations fops, file filp, ReadOnlySpan<byte> data, int chunk = 4096)
    {
        long done = 0;
        byte[] buf = new byte[chunk];
        while (done < data.Length)
        {
            int n = Math.Min(chunk, data.Length - (int)done);
            data.Slice((int)done, n).CopyTo(buf);
            long r = fops.write!(filp, buf, n, ref filp.f_pos);
            if (r < 0) return r;
            if (r == 0) break;
            done += r;
        }
        return done;
    }

    /// <summary>Reads until end of file (or <paramref name="max"/> bytes) through <paramref name="chunk"/>-byte read calls.</summary>
    public static byte[] read_all(file_operations fops, file filp, long max = long.MaxValue, int chunk = 4096)
    {
        var result = new MemoryStream();
        byte[] buf = new byte[chunk];
        while (result.Length < max)
        {
            int n = (int)Math.Min(chunk, max - result.Length);
            long r = fops.read!(filp, buf, n, ref filp.f_pos);
            if (r < 0) throw new IOException($"read returned {r}");
            if (r == 0) break;
            result.Write(buf, 0, (int)r);
        }
        return result.ToArray();
    }
}
