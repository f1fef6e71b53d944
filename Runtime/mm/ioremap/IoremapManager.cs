using System;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// ioremap (arch/x86/mm/ioremap.c) over simulated devices: the physical ranges that devices
/// occupy, page-granular mappings of them into the ioremap area (each with a guard page), and the
/// register accesses that reach a device through a live mapping. Reads of physical space that no
/// device decodes return all ones and writes there are dropped, as on a PC bus.
/// </summary>
internal sealed class IoremapManager : IObjectOwner
{
    private sealed class DeviceWindow
    {
        public DeviceWindow(ulong phys, ulong size, IMmioDevice device)
        {
            Phys = phys;
            Size = size;
            Device = device;
        }

        public ulong Phys { get; }
        public ulong Size { get; }
        public IMmioDevice Device { get; }

        /// <summary>Serialises the callbacks of this device.</summary>
        public Lock Gate { get; } = new();

        public bool Holds(ulong phys, ulong size) => size <= Size && phys >= Phys && phys - Phys <= Size - size;
    }

    private const ulong PageMask = (ulong)Kernel.PAGE_SIZE - 1;

    private readonly Machine _machine;
    private readonly Lock _update = new();

    // Copy-on-write snapshots, so that register accesses take no shared lock.
    private DeviceWindow[] _devices = Array.Empty<DeviceWindow>();
    private VmArea[] _mappings = Array.Empty<VmArea>();

    public IoremapManager(Machine machine)
    {
        _machine = machine;
        Space = new VmapSpace(AddressLayout.IOREMAP_START, AddressLayout.IoremapSize);
    }

    public VmapSpace Space { get; }

    public void AddDevice(ulong physAddr, ulong size, IMmioDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (size == 0) throw new ArgumentException("MapDevice: a device occupies at least one byte.", nameof(size));
        ulong end = physAddr + size;
        if (end < physAddr) throw new ArgumentException($"MapDevice: [0x{physAddr:x}, +0x{size:x}) wraps around the physical address space.", nameof(size));
        if (physAddr < _machine.Ram.TotalBytes)
            throw new ArgumentException($"MapDevice: [0x{physAddr:x}, 0x{end:x}) overlaps RAM [0x0, 0x{_machine.Ram.TotalBytes:x}).", nameof(physAddr));
        lock (_update)
        {
            foreach (DeviceWindow other in _devices)
                if (physAddr < other.Phys + other.Size && other.Phys < end)
                    throw new ArgumentException($"MapDevice: [0x{physAddr:x}, 0x{end:x}) overlaps the device at [0x{other.Phys:x}, 0x{other.Phys + other.Size:x}).", nameof(physAddr));
            var devices = new DeviceWindow[_devices.Length + 1];
            _devices.CopyTo(devices, 0);
            devices[^1] = new DeviceWindow(physAddr, size, device);
            Volatile.Write(ref _devices, devices);
        }
    }

    /// <summary>Maps [phys, phys+size) page by page; the result keeps phys's offset within its page. NULL on RAM, size 0 or wrap.</summary>
    public IoMem Map(ulong phys, ulong size, CallSite site)
    {
        ulong last = phys + size - 1;
        if (size == 0 || last < phys || last > ulong.MaxValue - PageMask) return default;
        if (phys < _machine.Ram.TotalBytes)
        {
            _machine.Warn(KernelLog.WarningHeader(_machine, "arch/x86/mm/ioremap.c", "__ioremap_caller") + $"ioremap on RAM at 0x{phys:x16} - 0x{last:x16}");
            return default;
        }
        ulong offset = phys & PageMask;
        ulong basePhys = phys - offset;
        ulong mapped = ((last + 1 + PageMask) & ~PageMask) - basePhys;
        VmArea? area = Space.Reserve(mapped, mapped, VmFlags.Ioremap, site);
        if (area == null) return default;
        area.PhysAddr = basePhys;
        if (_machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak))
            area.AllocTrack = new Track(_machine.CurrentTask, site, _machine.Jiffies);
        Publish();
        return new IoMem(area.Start + offset);
    }

    /// <summary>iounmap: any address in the first page of a mapping (as the kernel masks it); anything else is reported and not done.</summary>
    public void Unmap(ulong address, CallSite site)
    {
        ulong start = address & ~PageMask;
        Track? track = _machine.IsChecking(Checks.Frees | Checks.Kasan | Checks.Kmemleak) ? new Track(_machine.CurrentTask, site, _machine.Jiffies) : null;
        VmArea? area = null;
        VmLookup found = AddressLayout.IsIoremap(address) ? Space.Take(start, VmFlags.Ioremap, track, out area) : VmLookup.WrongKind;
        if (found == VmLookup.Found)
        {
            Publish();
            Space.Release(area!);
            return;
        }
        if (!_machine.IsChecking(Checks.Frees)) return;
        string culprit = site.Member.Length > 0 ? site.Member : "iounmap";
        if (found == VmLookup.AlreadyFreed)
        {
            FreeReport.DoubleFree(_machine, culprit, address, area!.Describe(address));
            return;
        }
        if (found == VmLookup.NotStart)
        {
            FreeReport.InvalidFree(_machine, culprit, address, area!.Describe(address),
                $"iounmap: bad address {address:x16}: it is {address - area.Start} bytes into the mapping at {area.Start:x16}");
            return;
        }
        ObjectInfo? info = _machine.Memory.Describe(address);
        string what = info == null ? "ioremap did not map it" : "it belongs to " + KasanReport.FamilyName(info.Family);
        FreeReport.Mismatched(_machine, culprit, address, info, $"iounmap: bad address {address:x16}: {what}");
    }

    /// <summary>The mapping (live, else recently unmapped) whose range or guard page holds an ioremap address.</summary>
    public ObjectInfo? Describe(ulong address) => Space.Find(address)?.Describe(address);

    private void Publish()
    {
        lock (_update) Volatile.Write(ref _mappings, Space.LiveAreas());
    }

    /// <summary>A register read through an __iomem address; a fault is reported and reads all ones.</summary>
    public ulong Read(ulong address, int size)
    {
        DeviceWindow? window = Resolve(address, size, AccessKind.Read, out ulong phys);
        if (window == null) return AllOnes(size);
        lock (window.Gate) return window.Device.Read(phys - window.Phys, size) & AllOnes(size);
    }

    public void Write(ulong address, int size, ulong value)
    {
        DeviceWindow? window = Resolve(address, size, AccessKind.Write, out ulong phys);
        if (window == null) return;
        lock (window.Gate) window.Device.Write(phys - window.Phys, size, value & AllOnes(size));
    }

    private static ulong AllOnes(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    /// <summary>The device behind an access, or null (a bus hole, or a fault that has been reported).</summary>
    private DeviceWindow? Resolve(ulong address, int size, AccessKind kind, out ulong phys)
    {
        if (_machine.IsShutDown) throw new ObjectDisposedException(nameof(Machine), "This machine has been shut down: its devices are gone.");
        phys = 0;
        VmArea? area = MappingOf(address, (ulong)size);
        if (area == null)
        {
            BugKind fault = address < AddressLayout.NullGuardSize ? BugKind.NullPtrDeref : BugKind.WildAccess;
            _machine.Reporter.Raise(fault, KasanReport.PageFault(_machine, fault, address, kind), address);
            return null;
        }
        phys = area.PhysAddr + (address - area.Start);
        foreach (DeviceWindow window in Volatile.Read(ref _devices))
            if (window.Holds(phys, (ulong)size)) return window;
        return null;
    }

    private VmArea? MappingOf(ulong address, ulong size)
    {
        VmArea[] mappings = Volatile.Read(ref _mappings);
        int lo = 0, hi = mappings.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            VmArea area = mappings[mid];
            if (address < area.Start) hi = mid - 1;
            else if (address - area.Start >= area.Size) lo = mid + 1;
            else return area.Live && address - area.Start <= area.Size - size ? area : null;
        }
        return null;
    }
}
