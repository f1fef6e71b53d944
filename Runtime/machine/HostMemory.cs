using System;
using System.ComponentModel;
using System.Runtime.InteropServices;

namespace KmemGuard;

/// <summary>
/// The host's virtual memory, used as the simulated machine's MMU: each node's RAM is a memfd,
/// and the vmalloc and per-CPU areas map its pages again at other host addresses, so that one
/// physical page seen through two kernel addresses really is the same bytes (Linux hosts).
/// </summary>
internal static unsafe class HostMemory
{
    private const int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2;
    private const int MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
    private const uint MFD_CLOEXEC = 1;
    private static readonly nint MapFailed = -1;

    [DllImport("libc", SetLastError = true)]
    private static extern int memfd_create(string name, uint flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int ftruncate(int fd, long length);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(nint addr, nuint length);

    public static void RequireLinux()
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("KmemGuard's simulated MMU maps memory with memfd and mmap: it runs on Linux hosts only.");
    }

    /// <summary>A file of <paramref name="bytes"/> zero bytes that backs one node's RAM.</summary>
    public static int CreateRamFile(string name, long bytes)
    {
        int fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0) throw Failure("memfd_create");
        if (ftruncate(fd, bytes) != 0)
        {
            close(fd);
            throw Failure("ftruncate");
        }
        return fd;
    }

    public static void CloseFile(int fd) => close(fd);

    /// <summary>Reserves host address space with no access; pages are mapped into it later.</summary>
    public static byte* Reserve(ulong bytes)
    {
        nint p = mmap(0, (nuint)bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MapFailed) throw Failure("mmap (reserve)");
        return (byte*)p;
    }

    public static void Release(byte* start, ulong bytes)
    {
        if (start != null) munmap((nint)start, (nuint)bytes);
    }

    /// <summary>Maps <paramref name="bytes"/> of the file at <paramref name="fileOffset"/> to <paramref name="at"/>.</summary>
    public static void MapFile(byte* at, ulong bytes, int fd, long fileOffset)
    {
        nint p = mmap((nint)at, (nuint)bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, fileOffset);
        if (p == MapFailed) throw Failure("mmap (map)");
    }

    /// <summary>Takes the mapping away again, keeping the address space reserved.</summary>
    public static void Unmap(byte* at, ulong bytes)
    {
        nint p = mmap((nint)at, (nuint)bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        if (p == MapFailed) throw Failure("mmap (unmap)");
    }

    /// <summary>Zeroed host memory for bookkeeping (KASAN shadow), committed by the host only when touched.</summary>
    public static byte* AllocateZeroed(ulong bytes)
    {
        nint p = mmap(0, (nuint)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MapFailed) throw Failure("mmap (anonymous)");
        return (byte*)p;
    }

    private static Exception Failure(string call) =>
        new InvalidOperationException($"The host refused {call}: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");
}
