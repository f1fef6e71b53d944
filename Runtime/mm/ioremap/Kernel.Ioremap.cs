using System.Runtime.CompilerServices;

namespace KmemGuard;

// arch/x86/mm/ioremap.c and include/asm-generic/io.h: device memory and register access.
public static partial class Kernel
{
    /// <summary>__ioremap_caller: the mapping's bookkeeping allocates with GFP_KERNEL, so every variant may sleep.</summary>
    private static IoMem IoremapCaller(ulong offset, ulong size, CallSite site)
    {
        MightSleep(site);
        return Machine.Current.Ioremap.Map(offset, size, site);
    }

    /// <summary>
    /// Maps [<paramref name="offset"/>, +<paramref name="size"/>) of physical address space (device
    /// registers) into the ioremap area, page by page; the result keeps the offset within the page.
    /// NULL for size 0, a range that wraps, or RAM (refused with the kernel's warning). Space that
    /// no device decodes maps too: it reads as all ones.
    /// </summary>
    [MaySleep]
    [Allocates(MemoryFamily.IoRemap)]
    public static IoMem ioremap(ulong offset, size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        IoremapCaller(offset, size, new CallSite(caller, file, line));

    /// <summary>LDD3's uncached ioremap; x86's ioremap is uncached already.</summary>
    [MaySleep]
    [Allocates(MemoryFamily.IoRemap)]
    public static IoMem ioremap_nocache(ulong offset, size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        IoremapCaller(offset, size, new CallSite(caller, file, line));

    /// <summary>Write-combining ioremap (caching is not simulated: accesses reach the device in order).</summary>
    [MaySleep]
    [Allocates(MemoryFamily.IoRemap)]
    public static IoMem ioremap_wc(ulong offset, size_t size, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        IoremapCaller(offset, size, new CallSite(caller, file, line));

    /// <summary>Undoes an ioremap; NULL is a no-op. What ioremap did not map, or unmapped already, is reported and not done.</summary>
    [Frees(MemoryFamily.IoRemap, "addr")]
    public static void iounmap(IoMem addr, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (addr.IsNull) return;
        var site = new CallSite(caller, file, line);
        MightSleep(site); // remove_vm_area
        Machine.Current.Ioremap.Unmap(addr.Address, site);
    }

    public static byte ioread8(IoMem addr) => (byte)Machine.Current.Ioremap.Read(addr.Address, 1);
    public static ushort ioread16(IoMem addr) => (ushort)Machine.Current.Ioremap.Read(addr.Address, 2);
    public static uint ioread32(IoMem addr) => (uint)Machine.Current.Ioremap.Read(addr.Address, 4);
    public static ulong ioread64(IoMem addr) => Machine.Current.Ioremap.Read(addr.Address, 8);

    public static void iowrite8(byte value, IoMem addr) => Machine.Current.Ioremap.Write(addr.Address, 1, value);
    public static void iowrite16(ushort value, IoMem addr) => Machine.Current.Ioremap.Write(addr.Address, 2, value);
    public static void iowrite32(uint value, IoMem addr) => Machine.Current.Ioremap.Write(addr.Address, 4, value);
    public static void iowrite64(ulong value, IoMem addr) => Machine.Current.Ioremap.Write(addr.Address, 8, value);

    public static byte readb(IoMem addr) => ioread8(addr);
    public static ushort readw(IoMem addr) => ioread16(addr);
    public static uint readl(IoMem addr) => ioread32(addr);
    public static ulong readq(IoMem addr) => ioread64(addr);

    public static void writeb(byte value, IoMem addr) => iowrite8(value, addr);
    public static void writew(ushort value, IoMem addr) => iowrite16(value, addr);
    public static void writel(uint value, IoMem addr) => iowrite32(value, addr);
    public static void writeq(ulong value, IoMem addr) => iowrite64(value, addr);

    /// <summary>Copies device memory to kernel memory, a byte at a time.</summary>
    public static void memcpy_fromio(KPtr dst, IoMem src, size_t count)
    {
        for (ulong i = 0; i < count; i++) dst[(long)i] = ioread8(src + i);
    }

    /// <summary>Copies kernel memory to device memory, a byte at a time.</summary>
    public static void memcpy_toio(IoMem dst, KPtr src, size_t count)
    {
        for (ulong i = 0; i < count; i++) iowrite8(src[(long)i], dst + i);
    }

    public static void memset_io(IoMem addr, int value, size_t count)
    {
        for (ulong i = 0; i < count; i++) iowrite8((byte)value, addr + i);
    }
}
