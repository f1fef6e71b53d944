using System;

namespace KmemGuard;

/// <summary>
/// Division of an offset inside a slab by the cache's stride without a divide instruction
/// (the kernel's obj_to_index uses reciprocal_divide for the same reason): a 64-bit reciprocal
/// M = floor(2^64 / d) + 1 gives n / d as the high half of M * n, exactly for every 32-bit n
/// (Lemire, Kaser and Kurz, "Faster remainder by direct computation", 2019).
/// </summary>
internal readonly struct StrideDivisor
{
    private readonly ulong _reciprocal;

    public StrideDivisor(uint divisor)
    {
        if (divisor < 2) throw new ArgumentOutOfRangeException(nameof(divisor), divisor, "A slab stride is at least 8 bytes.");
        _reciprocal = ulong.MaxValue / divisor + 1;
    }

    public uint Divide(uint n) => (uint)Math.BigMul(_reciprocal, n, out _);
}
