using System.Threading;

namespace KmemGuard;

public sealed partial class Machine
{
    private IoremapManager? _ioremap;

    /// <summary>Devices and ioremap mappings; available from power-on (devices exist before the kernel boots).</summary>
    internal IoremapManager Ioremap => LazyInitializer.EnsureInitialized(ref _ioremap, () => new IoremapManager(this));

    /// <summary>
    /// Places a simulated device's registers at [<paramref name="physAddr"/>, +<paramref name="size"/>)
    /// of the physical address space, above RAM and clear of every other device; ioremap then maps them.
    /// </summary>
    /// <exception cref="System.ArgumentException">The range is empty, wraps, overlaps RAM or another device.</exception>
    public void MapDevice(ulong physAddr, ulong size, IMmioDevice device)
    {
        ThrowIfDisposed();
        Ioremap.AddDevice(physAddr, size, device);
    }
}
