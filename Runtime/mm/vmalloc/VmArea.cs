using System;

namespace KmemGuard;

/// <summary>The kinds of mapping in the vmalloc and ioremap spaces (VM_* in include/linux/vmalloc.h).</summary>
[Flags]
internal enum VmFlags
{
    None = 0,
    Ioremap = 0x1,
    Alloc = 0x2,
    Map = 0x4,
    UserMap = 0x8,
}

/// <summary>
/// One mapping in a virtual space (struct vm_struct with its vmap_area): where it starts, how much
/// is mapped, the guard page after it that is never mapped, and who made and who removed it.
/// </summary>
internal sealed class VmArea : IObjectOwner
{
    public VmArea(ulong start, ulong size, ulong requestedSize, VmFlags flags, CallSite caller)
    {
        Start = start;
        Size = size;
        RequestedSize = requestedSize;
        Flags = flags;
        Caller = caller;
    }

    public ulong Start { get; }

    /// <summary>Mapped bytes (whole pages), without the guard page.</summary>
    public ulong Size { get; }

    public ulong RequestedSize { get; }
    public VmFlags Flags { get; }
    public CallSite Caller { get; }

    /// <summary>The pages a vmalloc area owns (VM_ALLOC only); filled in as they are allocated.</summary>
    public page[]? Pages;

    /// <summary>How many of <see cref="Pages"/> are allocated and mapped.</summary>
    public int NrPages;

    /// <summary>The physical address an ioremap area maps.</summary>
    public ulong PhysAddr;

    public Track? AllocTrack, FreeTrack;

    /// <summary>False once the area has been freed (it then lives on only in the freed-area history).</summary>
    public volatile bool Live = true;

    /// <summary>End of the area including its guard page, as /proc/vmallocinfo shows it.</summary>
    public ulong End => Start + Size + (ulong)Kernel.PAGE_SIZE;

    /// <summary>True when the address is in the area or its guard page.</summary>
    public bool Covers(ulong address) => address - Start < Size + (ulong)Kernel.PAGE_SIZE;

    public ObjectInfo Describe(ulong address) => new()
    {
        Start = Start,
        RequestedSize = RequestedSize,
        Family = (Flags & VmFlags.Ioremap) != 0 ? MemoryFamily.IoRemap : MemoryFamily.Vmalloc,
        Allocated = Live,
        AllocTrack = AllocTrack,
        FreeTrack = FreeTrack,
    };
}
