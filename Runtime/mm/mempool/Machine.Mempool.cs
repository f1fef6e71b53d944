using System.Collections.Concurrent;

namespace KmemGuard;

public sealed partial class Machine
{
    /// <summary>Which pool handed out each live mempool element (kept when Checks.Frees is on), for mempool_free's check.</summary>
    internal ConcurrentDictionary<ulong, mempool_t> MempoolElements { get; } = new();
}
