using System;

namespace KmemGuard;

/// <summary>
/// The MMU: translates a kernel address to the host bytes behind it, and refuses (with the
/// kernel's report) an access that would fault or that KASAN flags. Nothing an access does can
/// reach host memory outside the simulated machine.
/// </summary>
internal sealed unsafe class KernelMemory : IDisposable
{
    private readonly Machine _machine;
    private readonly PhysicalMemory _ram;

    public KernelMemory(Machine machine, PhysicalMemory ram, ulong vmallocBytes, int cpus)
    {
        _machine = machine;
        _ram = ram;
        Vmalloc = new AliasRegion("vmalloc", AddressLayout.VMALLOC_START, vmallocBytes, ram);
        PerCpu = new AliasRegion("percpu", AddressLayout.PERCPU_START, AddressLayout.PercpuUnitSize * (ulong)cpus, ram);
        if (machine.IsChecking(Checks.Kasan))
            _kasan = new Kasan((AddressLayout.PAGE_OFFSET, ram.TotalBytes), (Vmalloc.Start, Vmalloc.Size), (PerCpu.Start, PerCpu.Size));
    }

    public AliasRegion Vmalloc { get; }
    public AliasRegion PerCpu { get; }

    /// <summary>The shadow, when KASAN is on; null otherwise.</summary>
    public Kasan? Kasan => Machine.ChecksCompiledIn ? _kasan : null;

    private readonly Kasan? _kasan;

    /// <summary>Says what lies at a vmalloc address (set by the vmalloc subsystem).</summary>
    public IObjectOwner? VmallocOwner { get; set; }

    /// <summary>Says what lies at a per-CPU address (set by the per-CPU subsystem).</summary>
    public IObjectOwner? PerCpuOwner { get; set; }

    public static ulong ToPhys(ulong directMapAddress) => directMapAddress - AddressLayout.PAGE_OFFSET;

    public static ulong ToVirt(ulong phys) => phys + AddressLayout.PAGE_OFFSET;

    /// <summary>True when [address, address+size) is RAM in the direct map.</summary>
    public bool IsRam(ulong address, ulong size) =>
        AddressLayout.IsDirectMap(address) && ToPhys(address) + size <= _ram.TotalBytes && ToPhys(address) + size >= ToPhys(address);

    /// <summary>
    /// The host bytes for an access, or null when the access was reported and must not be done.
    /// </summary>
    public byte* Access(ulong address, ulong size, AccessKind kind)
    {
        if (_machine.IsShutDown) throw new ObjectDisposedException(nameof(Machine), "This machine has been shut down: its memory is gone.");
        if (IsRam(address, size))
        {
            if (Kasan != null && !Kasan.Check(address, size, out ulong bad, out byte code))
                return Refuse(KasanReport.KindOf(code, address), address, size, kind, bad, code);
            return _ram.Host(ToPhys(address));
        }
        AliasRegion? region = Vmalloc.Contains(address) ? Vmalloc : PerCpu.Contains(address) ? PerCpu : null;
        if (region != null)
        {
            ulong? hole = region.FirstUnmapped(address, size);
            if (hole != null)
            {
                bool guard = region == Vmalloc && Kasan != null;
                return Refuse(guard ? BugKind.VmallocOutOfBounds : BugKind.WildAccess, address, size, kind, hole.Value, Kasan.VmallocInvalid);
            }
            if (Kasan != null && !Kasan.Check(address, size, out ulong bad, out byte code))
                return Refuse(KasanReport.KindOf(code, address), address, size, kind, bad, code);
            return region.Host(address);
        }
        BugKind fault = address < AddressLayout.NullGuardSize ? BugKind.NullPtrDeref : BugKind.WildAccess;
        return Refuse(fault, address, size, kind, address, 0);
    }

    private byte* Refuse(BugKind kind, ulong address, ulong size, AccessKind access, ulong bad, byte code)
    {
        string text = kind is BugKind.NullPtrDeref or BugKind.WildAccess
            ? KasanReport.PageFault(_machine, kind, bad, access)
            : KasanReport.BadAccess(_machine, kind, address, size, access, bad, code);
        _machine.Reporter.Raise(kind, text, bad);
        return null;
    }

    /// <summary>Describes the block at an address, whichever allocator owns it.</summary>
    public ObjectInfo? Describe(ulong address)
    {
        if (IsRam(address, 1))
        {
            page frame = _ram.PageAt(ToPhys(address) >> Kernel.PAGE_SHIFT).HeadPage;
            if (frame.Owner is IObjectOwner owner) return owner.Describe(address);
            return PageBlockInfo(frame);
        }
        if (Vmalloc.Contains(address)) return VmallocOwner?.Describe(address);
        if (PerCpu.Contains(address)) return PerCpuOwner?.Describe(address);
        return null;
    }

    private static ObjectInfo PageBlockInfo(page head) => new()
    {
        Start = ToVirt(head.Pfn << Kernel.PAGE_SHIFT),
        RequestedSize = (ulong)Kernel.PAGE_SIZE << head.Order,
        Family = MemoryFamily.Pages,
        Allocated = head.RefCount > 0,
        AllocTrack = head.AllocTrack,
        FreeTrack = head.FreeTrack,
    };

    public void Dispose()
    {
        Vmalloc.Dispose();
        PerCpu.Dispose();
        Kasan?.Dispose();
    }
}
