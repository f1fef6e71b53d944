using System;

namespace KmemGuard;

/// <summary>
/// The kernel's <c>void __iomem *</c>: an address in the ioremap area that reaches a device's
/// registers through ioread*/iowrite* and readb..writel, never through a plain dereference.
/// </summary>
public readonly struct IoMem : IEquatable<IoMem>
{
    public readonly ulong Address;

    public IoMem(ulong address) => Address = address;

    /// <summary>True for the NULL that a failed ioremap returns.</summary>
    public bool IsNull => Address == 0;

    public static IoMem operator +(IoMem p, int n) => new(p.Address + (ulong)(long)n);
    public static IoMem operator +(IoMem p, long n) => new(p.Address + (ulong)n);
    public static IoMem operator +(IoMem p, ulong n) => new(p.Address + n);
    public static bool operator ==(IoMem a, IoMem b) => a.Address == b.Address;
    public static bool operator !=(IoMem a, IoMem b) => a.Address != b.Address;

    public static explicit operator ulong(IoMem p) => p.Address;
    public static explicit operator IoMem(ulong address) => new(address);

    public bool Equals(IoMem other) => Address == other.Address;
    public override bool Equals(object? obj) => obj is IoMem other && Equals(other);
    public override int GetHashCode() => Address.GetHashCode();
    public override string ToString() => "0x" + Address.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// A simulated device's registers, mapped into the physical address space with
/// <see cref="Machine.MapDevice"/>. Offsets are from the start of the device's range; sizes are
/// 1, 2, 4 or 8 bytes. Calls to one device are serialised, so a model need not be thread-safe.
/// </summary>
public interface IMmioDevice
{
    ulong Read(ulong offset, int size);
    void Write(ulong offset, int size, ulong value);
}
