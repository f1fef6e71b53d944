namespace KmemGuard;

/// <summary>
/// The kernel's <c>size_t</c>: every C# integer type converts to it implicitly, and a negative value
/// becomes a huge size, as C's conversion to an unsigned type does.
/// </summary>
public readonly struct size_t : System.IEquatable<size_t>
{
    public readonly ulong Value;

    public size_t(ulong value) => Value = value;

    public static implicit operator size_t(int value) => new((ulong)(long)value);
    public static implicit operator size_t(uint value) => new(value);
    public static implicit operator size_t(long value) => new((ulong)value);
    public static implicit operator size_t(ulong value) => new(value);
    public static implicit operator size_t(nint value) => new((ulong)(long)value);
    public static implicit operator size_t(nuint value) => new(value);
    public static implicit operator ulong(size_t size) => size.Value;

    public bool Equals(size_t other) => Value == other.Value;
    public override bool Equals(object? obj) => obj is size_t other && Equals(other);
    public override int GetHashCode() => Value.GetHashCode();
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
