namespace KmemGuard;

public static partial class Kernel
{
    public const int PAGE_SHIFT = 12;
    public const int PAGE_SIZE = 1 << PAGE_SHIFT;

    /// <summary>The largest buddy order, inclusive (orders 0..MAX_ORDER, as in Linux 6.4+): 4 MiB blocks.</summary>
    public const int MAX_ORDER = 10;
}
