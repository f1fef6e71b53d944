using System;
using System.Runtime.CompilerServices;
using System.Text;

namespace KmemGuard;

// include/linux/uaccess.h, lib/usercopy.c and mm/usercopy.c (CONFIG_HARDENED_USERCOPY). User
// memory is a managed buffer; the bytes past its end are unmapped, so a copy stops there and
// returns how many bytes it did not copy, as a faulting copy does.
public static partial class Kernel
{
    /// <summary>
    /// Copies <paramref name="n"/> bytes from user space into kernel memory; returns the bytes not
    /// copied (the kernel tail of a short copy is zeroed). May sleep (a fault in user memory).
    /// </summary>
    [MaySleep]
    public static ulong copy_from_user(KPtr to, byte[]? from, size_t n, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        from is null ? n.Value : CopyFromUser(to, from, n.Value, new CallSite(caller, file, line));

    [MaySleep]
    public static ulong copy_from_user(KPtr to, ReadOnlySpan<byte> from, size_t n, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        CopyFromUser(to, from, n.Value, new CallSite(caller, file, line));

    /// <summary>Copies <paramref name="n"/> bytes of kernel memory to user space; returns the bytes not copied. May sleep.</summary>
    [MaySleep]
    public static ulong copy_to_user(byte[]? to, KPtr from, size_t n, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        to is null ? n.Value : CopyToUser(to, from, n.Value, new CallSite(caller, file, line));

    [MaySleep]
    public static ulong copy_to_user(Span<byte> to, KPtr from, size_t n, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        CopyToUser(to, from, n.Value, new CallSite(caller, file, line));

    private static unsafe ulong CopyFromUser(KPtr to, ReadOnlySpan<byte> from, ulong n, CallSite site)
    {
        if (n == 0) return 0;
        Machine machine = Machine.Current;
        if (!CheckObjectSize(machine, to.Address, n, toUser: false)) return n;
        MightSleep(site);
        byte* kernel = machine.Memory.Access(to.Address, n, AccessKind.Write);
        if (kernel == null) return n;
        ulong copied = Math.Min(n, (ulong)from.Length);
        var destination = new Span<byte>(kernel, checked((int)n));
        from.Slice(0, (int)copied).CopyTo(destination);
        destination.Slice((int)copied).Clear();
        return n - copied;
    }

    private static unsafe ulong CopyToUser(Span<byte> to, KPtr from, ulong n, CallSite site)
    {
        if (n == 0) return 0;
        Machine machine = Machine.Current;
        if (!CheckObjectSize(machine, from.Address, n, toUser: true)) return n;
        MightSleep(site);
        ulong copied = Math.Min(n, (ulong)to.Length);
        if (copied == 0) return n;
        byte* kernel = machine.Memory.Access(from.Address, copied, AccessKind.Read);
        if (kernel == null) return n;
        new ReadOnlySpan<byte>(kernel, (int)copied).CopyTo(to);
        return n - copied;
    }

    /// <summary>
    /// __check_object_size: the kernel side of a user copy must lie inside one object (a slab
    /// object's whole object size, a vmalloc area, a page block). Reports UsercopyExposure
    /// (copy_to_user) or an overwrite attempt (copy_from_user); false means: do not copy.
    /// </summary>
    private static bool CheckObjectSize(Machine machine, ulong address, ulong n, bool toUser)
    {
        if (!machine.IsChecking(Checks.Usercopy)) return true;
        if (address + (n - 1) < address) return UsercopyAbort(machine, "wrapped address", null, toUser, 0, address + (n - 1));
        if (address <= ZERO_SIZE_PTR.Address) return UsercopyAbort(machine, "null address", null, toUser, address, n);
        ObjectInfo? info = machine.Memory.Describe(address);
        if (info == null) return true;
        (string name, ulong size) = info.CacheName != null
            ? ("SLUB object", info.CacheObjectSize)
            : info.Family switch
            {
                MemoryFamily.Vmalloc => ("vmalloc", info.RequestedSize),
                // Like check_heap_object, only a compound (multi-page) block is checked.
                MemoryFamily.Pages when info.RequestedSize > (ulong)PAGE_SIZE => ("page alloc", info.RequestedSize),
                _ => ("", 0UL),
            };
        if (size == 0) return true;
        ulong offset = address >= info.Start ? address - info.Start : 0;
        if (address >= info.Start && offset < size && n <= size - offset) return true;
        return UsercopyAbort(machine, name, info.CacheName, toUser, offset, n);
    }

    private static bool UsercopyAbort(Machine machine, string name, string? detail, bool toUser, ulong offset, ulong len)
    {
        KTask task = machine.CurrentTask;
        var text = new StringBuilder();
        text.Append("usercopy: Kernel memory ").Append(toUser ? "exposure" : "overwrite").Append(" attempt detected ")
            .Append(toUser ? "from " : "to ").Append(name);
        if (detail != null) text.Append(" '").Append(detail).Append('\'');
        text.Append(" (offset ").Append(offset).Append(", size ").Append(len).Append(")!\n");
        text.Append("------------[ cut here ]------------\nkernel BUG at mm/usercopy.c:102!\n");
        text.Append("invalid opcode: 0000 [#1] SMP KASAN\n");
        ContextReport.AppendTail(text, task);
        machine.Reporter.Raise(BugKind.UsercopyExposure, text.ToString());
        return false;
    }
}
