using System.Collections.Generic;

namespace KmemGuard;

/// <summary>
/// An allocator that tracks its blocks for kmemleak in its own metadata. kmemleak asks it at each
/// scan, and when a driver marks one of its blocks (kmemleak_not_leak, kmemleak_ignore, ...): the
/// objects it returns write those marks through to the allocator's state.
/// </summary>
internal interface IKmemleakObjectSource
{
    /// <summary>Adds every block tracked now to <paramref name="tracked"/>.</summary>
    void CollectTracked(List<KmemleakObject> tracked);

    /// <summary>The tracked block that starts at <paramref name="start"/>, or null.</summary>
    KmemleakObject? TrackedAt(ulong start);

    /// <summary>Blocks tracked now (a racy count while other threads allocate).</summary>
    int TrackedCount { get; }
}
