using System;

namespace Scull;

// The few pieces of <linux/fs.h> a character driver sees. In C the kernel hands a driver a
// struct inode and a struct file; here the caller (a test, the demo) plays the VFS and builds them.

/// <summary>The inode of the device node. <c>i_private</c> stands in for <c>inode->i_cdev</c>.</summary>
public sealed class inode
{
    public inode(object? i_private) => this.i_private = i_private;

    /// <summary>What <c>container_of(inode->i_cdev, struct scull_dev, cdev)</c> finds in the book.</summary>
    public object? i_private { get; }
}

/// <summary>An open file: position, open flags and the driver's private pointer.</summary>
public sealed class @file
{
    public @file(int f_flags = fcntl.O_RDWR) => this.f_flags = f_flags;

    /// <summary>The file position (<c>loff_t f_pos</c>); read and write advance it through <c>ref</c>.</summary>
    public long f_pos;

    public int f_flags { get; }

    /// <summary>Set by open to the device, as <c>filp->private_data = dev</c>.</summary>
    public object? private_data { get; set; }
}

/// <summary>
/// <c>struct file_operations</c>: the driver's method table, assigned once (the analyzers follow
/// calls through it). Read and write return bytes transferred or a negative errno, as in the kernel.
/// </summary>
public sealed class file_operations
{
    public delegate long read_write_fn(file filp, byte[] buf, KmemGuard.size_t count, ref long f_pos);

    public Func<inode, file, int>? open { get; init; }
    public read_write_fn? read { get; init; }
    public read_write_fn? write { get; init; }
    public Func<file, long, int, long>? llseek { get; init; }
    public Func<inode, file, int>? release { get; init; }
}

/// <summary>Open flags and whence values, as in <c>&lt;fcntl.h&gt;</c> and <c>&lt;linux/fs.h&gt;</c>.</summary>
public static class fcntl
{
    public const int O_ACCMODE = 3;
    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;

    public const int SEEK_SET = 0;
    public const int SEEK_CUR = 1;
    public const int SEEK_END = 2;
}

/// <summary>
/// The errno values these drivers return (negated, as the kernel does). Written `errno.EFAULT`:
/// the runtime defines a few errno values of its own, and a second `using static` would make them ambiguous.
/// </summary>
public static class errno
{
    public const int EFAULT = 14;
    public const int EINVAL = 22;
    public const int ENOMEM = 12;
    public const int EAGAIN = 11;
}
