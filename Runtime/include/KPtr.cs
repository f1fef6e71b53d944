using System;
using System.Runtime.CompilerServices;

namespace KmemGuard;

/// <summary>
/// The kernel's <c>void *</c>: an address in the simulated kernel address space of
/// <see cref="Machine.Current"/>. Every access through it is translated and checked by that
/// machine (KASAN when it is on); an access the checker refuses is not carried out.
/// </summary>
public readonly struct KPtr : IEquatable<KPtr>, IComparable<KPtr>
{
    public readonly ulong Address;

    public KPtr(ulong address) => Address = address;

    public bool IsNull => Address == 0;

    public static bool operator ==(KPtr a, KPtr b) => a.Address == b.Address;
    public static bool operator !=(KPtr a, KPtr b) => a.Address != b.Address;
    public static bool operator <(KPtr a, KPtr b) => a.Address < b.Address;
    public static bool operator >(KPtr a, KPtr b) => a.Address > b.Address;
    public static bool operator <=(KPtr a, KPtr b) => a.Address <= b.Address;
    public static bool operator >=(KPtr a, KPtr b) => a.Address >= b.Address;

    public static KPtr operator +(KPtr p, long n) => new(p.Address + (ulong)n);
    public static KPtr operator +(KPtr p, ulong n) => new(p.Address + n);
    public static KPtr operator -(KPtr p, long n) => new(p.Address - (ulong)n);
    public static KPtr operator -(KPtr p, ulong n) => new(p.Address - n);
    public static long operator -(KPtr p, KPtr q) => (long)(p.Address - q.Address);

    public static explicit operator ulong(KPtr p) => p.Address;
    public static explicit operator KPtr(ulong address) => new(address);

    /// <summary>A checked byte access, as <c>((u8 *)p)[i]</c>.</summary>
    public byte this[long index]
    {
        get => Read<byte>(index);
        set => Write(index, value);
    }

    public unsafe T Read<T>(long offset = 0) where T : unmanaged
    {
        byte* host = Machine.Current.Memory.Access(Address + (ulong)offset, (ulong)sizeof(T), AccessKind.Read);
        return host == null ? default : Unsafe.ReadUnaligned<T>(host);
    }

    public unsafe void Write<T>(long offset, T value) where T : unmanaged
    {
        byte* host = Machine.Current.Memory.Access(Address + (ulong)offset, (ulong)sizeof(T), AccessKind.Write);
        if (host != null) Unsafe.WriteUnaligned(host, value);
    }

    /// <summary>
    /// The bytes at this address as a span. The whole range is checked once, up front; writes
    /// through the span afterwards are invisible to KASAN (slub_debug's red zones still catch
    /// them on free). If the checker refuses the range, the span is a scratch copy that is
    /// thrown away, so a bad write never reaches simulated memory.
    /// </summary>
    public unsafe Span<byte> AsSpan(int length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "A span length cannot be negative.");
        if (length == 0) return Span<byte>.Empty;
        byte* host = Machine.Current.Memory.Access(Address, (ulong)length, AccessKind.Write);
        return host == null ? new byte[length] : new Span<byte>(host, length);
    }

    public bool Equals(KPtr other) => Address == other.Address;
    public override bool Equals(object? obj) => obj is KPtr other && Equals(other);
    public override int GetHashCode() => Address.GetHashCode();
    public int CompareTo(KPtr other) => Address.CompareTo(other.Address);
    public override string ToString() => "0x" + Address.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>How memory is touched, for the checker.</summary>
internal enum AccessKind
{
    Read,
    Write,
}

public static partial class Kernel
{
    public static readonly KPtr NULL = default;

    /// <summary>What kmalloc(0) returns: not NULL, but faults when dereferenced (include/linux/slab.h).</summary>
    public static readonly KPtr ZERO_SIZE_PTR = new(16);

    internal static bool ZERO_OR_NULL_PTR(KPtr p) => p.Address <= ZERO_SIZE_PTR.Address;
}
