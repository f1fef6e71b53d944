using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>Where a section was entered, for messages and additional locations.</summary>
internal sealed record SectionOrigin(string Description, Location Location, string Release = "");

/// <summary>A section identity: its kind and, for locks, the lock's access path.</summary>
internal readonly record struct SectionId(Section Kind, string? Lock);

/// <summary>
/// How many times a section is held, as a range over the paths that reach a point: Min is what every
/// path holds, Max what some path holds. Negative counts are sections released that the caller held.
/// </summary>
internal sealed record SectionCount(int Min, int Max, SectionOrigin Origin, bool FromCaller)
{
    public const int Limit = 3;

    public SectionCount Shift(int delta) =>
        this with { Min = Clamp(Min + delta), Max = Clamp(Max + delta) };

    public static int Clamp(int count) => Math.Max(-Limit, Math.Min(Limit, count));
}

/// <summary>One allocation a tracked value may come from.</summary>
internal sealed record AllocationOrigin(Family Family, int? Order, string? Owner, string Allocator, Location Location);

/// <summary>
/// A bool local that holds a trylock's result: its sections are held where the local is true.
/// Known is null while no branch on the local was taken on the path (the sections then count the
/// failed trylock), and true or false after one (true: the sections were entered there).
/// </summary>
internal sealed record TrylockResult(ImmutableArray<(SectionId Id, SectionOrigin Origin)> Sections, bool? Known);

/// <summary>Abstract state at a program point. Immutable; joins are by path union.</summary>
internal sealed class FlowState : IEquatable<FlowState>
{
    private const int MaxOriginsPerValue = 4;

    public static readonly FlowState Empty = new(
        ImmutableDictionary<SectionId, SectionCount>.Empty,
        ImmutableDictionary<string, ImmutableArray<AllocationOrigin>>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<string, TrylockResult>.Empty.WithComparers(StringComparer.Ordinal));

    public FlowState(ImmutableDictionary<SectionId, SectionCount> sections, ImmutableDictionary<string, ImmutableArray<AllocationOrigin>> values,
        ImmutableDictionary<string, TrylockResult> trylocks)
    {
        Sections = sections;
        Values = values;
        Trylocks = trylocks;
    }

    public ImmutableDictionary<SectionId, SectionCount> Sections { get; }

    public ImmutableDictionary<string, ImmutableArray<AllocationOrigin>> Values { get; }

    /// <summary>The bool locals that hold a trylock's result, by access path.</summary>
    public ImmutableDictionary<string, TrylockResult> Trylocks { get; }

    /// <summary>The atomic section that every path holds here, if any (the earliest entered).</summary>
    public SectionCount? MustAtomic() => Sections
        .Where(p => p.Value.Min > 0 && SectionFacts.IsAtomic(p.Key.Kind))
        .OrderBy(p => p.Value.Origin.Location.SourceSpan.Start)
        .ThenBy(p => p.Key.Lock is null ? 1 : 0)
        .Select(p => p.Value)
        .FirstOrDefault();

    /// <summary>Whether some path holds a section that pins the current CPU.</summary>
    public bool MayPinCpu() => Sections.Any(p => p.Value.Max > 0 && SectionFacts.PinsCpu(p.Key.Kind));

    public FlowState WithSections(ImmutableDictionary<SectionId, SectionCount> sections) => new(sections, Values, Trylocks);

    public FlowState WithTrylock(string local, TrylockResult trylock) => new(Sections, Values, Trylocks.SetItem(local, trylock));

    private FlowState WithCount(SectionId id, SectionCount count) =>
        WithSections(count is { Min: 0, Max: 0 } ? Sections.Remove(id) : Sections.SetItem(id, count));

    public FlowState Enter(SectionId id, SectionOrigin origin, bool fromCaller = false)
    {
        SectionCount count = Sections.TryGetValue(id, out var existing)
            ? existing.Shift(1) with { Origin = existing.Max > 0 ? existing.Origin : origin }
            : new SectionCount(1, 1, origin, fromCaller);
        return WithCount(id, count);
    }

    /// <summary>Leaves the matching section; with no match on any path it records a release of the caller's section.</summary>
    public FlowState Leave(SectionId id, SectionOrigin origin, out SectionCount? before)
    {
        SectionId match = FindHeld(id);
        if (Sections.TryGetValue(match, out var existing))
        {
            before = existing;
            return WithCount(match, existing.Shift(-1));
        }

        before = null;
        return WithSections(Sections.SetItem(id, new SectionCount(-1, -1, origin, false)));
    }

    private SectionId FindHeld(SectionId id)
    {
        if (Sections.TryGetValue(id, out var exact) && exact.Max > 0)
            return id;
        // A lock we cannot name matches any held lock of the same kind, and vice versa.
        foreach (var pair in Sections.OrderBy(p => p.Value.Origin.Location.SourceSpan.Start))
        {
            if (pair.Key.Kind == id.Kind && pair.Value.Max > 0 && (id.Lock is null || pair.Key.Lock is null))
                return pair.Key;
        }

        return id;
    }

    public FlowState SetValue(string key, ImmutableArray<AllocationOrigin> origins)
    {
        var values = Forget(key);
        if (!origins.IsDefaultOrEmpty)
            values = values.SetItem(key, origins);
        return With(values, Trylocks.Remove(key));
    }

    /// <summary>Forgets what we knew about the path and every path below it (an assignment to <c>dev</c> changes <c>dev.buf</c>).</summary>
    public FlowState Kill(string key) => With(Forget(key), Trylocks.Remove(key));

    /// <summary>This state when nothing changed (most flow captures and kills), else a new one.</summary>
    private FlowState With(ImmutableDictionary<string, ImmutableArray<AllocationOrigin>> values, ImmutableDictionary<string, TrylockResult> trylocks) =>
        ReferenceEquals(values, Values) && ReferenceEquals(trylocks, Trylocks) ? this : new FlowState(Sections, values, trylocks);

    /// <summary>The values without the path and the paths below it; the same dictionary when there were none (most flow captures).</summary>
    private ImmutableDictionary<string, ImmutableArray<AllocationOrigin>> Forget(string key)
    {
        if (Values.IsEmpty)
            return Values;
        var values = Values.Remove(key);
        foreach (var pair in Values)
        {
            string existing = pair.Key;
            if (existing.Length > key.Length && existing[key.Length] == '.' && existing.StartsWith(key, StringComparison.Ordinal))
                values = values.Remove(existing);
        }

        return values;
    }

    public static FlowState Join(FlowState a, FlowState b)
    {
        if (a.Equals(b))
            return a;
        var trylocks = JoinTrylocks(ref a, ref b);
        var sections = ImmutableDictionary.CreateBuilder<SectionId, SectionCount>();
        // a's sections, then those only b has: the order in which the union of the keys lists them.
        foreach (var pair in a.Sections)
        {
            SectionCount x = pair.Value;
            SectionCount joined = b.Sections.TryGetValue(pair.Key, out var y)
                ? new SectionCount(Math.Min(x.Min, y.Min), Math.Max(x.Max, y.Max), Earlier(x.Origin, y.Origin), x.FromCaller && y.FromCaller)
                : x with { Min = Math.Min(0, x.Min), Max = Math.Max(0, x.Max) };
            if (joined.Min != 0 || joined.Max != 0)
                sections[pair.Key] = joined;
        }

        foreach (var pair in b.Sections)
        {
            SectionCount y = pair.Value;
            if (!a.Sections.ContainsKey(pair.Key) && (Math.Min(0, y.Min) != 0 || Math.Max(0, y.Max) != 0))
                sections[pair.Key] = y with { Min = Math.Min(0, y.Min), Max = Math.Max(0, y.Max) };
        }

        // A value keeps every allocation it may come from: a path that knows nothing adds nothing.
        var values = a.Values;
        foreach (var pair in b.Values)
        {
            if (!values.TryGetValue(pair.Key, out var mine))
                values = values.SetItem(pair.Key, pair.Value);
            else if (!SameOrigins(mine, pair.Value))
                values = values.SetItem(pair.Key, Union(mine, pair.Value));
        }

        return new FlowState(sections.ToImmutable(), values, trylocks);
    }

    /// <summary>
    /// A trylock local stays known only where both paths agree. A path that took its true branch and
    /// holds exactly its sections once more than a path that did not joins it as the untested local
    /// (the sections counted as on the other path): <c>if (ok) work(); ... if (ok) spin_unlock(lk);</c>.
    /// </summary>
    private static ImmutableDictionary<string, TrylockResult> JoinTrylocks(ref FlowState a, ref FlowState b)
    {
        var joined = Empty.Trylocks;
        foreach (var pair in a.Trylocks)
        {
            if (!b.Trylocks.TryGetValue(pair.Key, out var other) || other.Sections != pair.Value.Sections)
                continue;
            if (other.Known == pair.Value.Known)
            {
                joined = joined.SetItem(pair.Key, pair.Value);
                continue;
            }

            bool consistent = pair.Value.Known == true ? HoldsOnceMore(ref a, b, pair.Value)
                : other.Known != true || HoldsOnceMore(ref b, a, pair.Value);
            if (!consistent)
                continue;
            joined = joined.SetItem(pair.Key, pair.Value with { Known = null });
        }

        return joined;
    }

    /// <summary>Whether <paramref name="taken"/> holds the trylock's sections exactly once more than <paramref name="other"/>; if so it then counts them as <paramref name="other"/> does.</summary>
    private static bool HoldsOnceMore(ref FlowState taken, FlowState other, TrylockResult trylock)
    {
        var sections = taken.Sections;
        foreach (var (id, _) in trylock.Sections)
        {
            taken.Sections.TryGetValue(id, out var mine);
            other.Sections.TryGetValue(id, out var theirs);
            if (mine is null || mine.Min != (theirs?.Min ?? 0) + 1 || mine.Max != (theirs?.Max ?? 0) + 1)
                return false;
            sections = theirs is null ? sections.Remove(id) : sections.SetItem(id, theirs);
        }

        taken = taken.WithSections(sections);
        return true;
    }

    private static ImmutableArray<AllocationOrigin> Union(ImmutableArray<AllocationOrigin> a, ImmutableArray<AllocationOrigin> b) =>
        a.Concat(b).Distinct().OrderBy(o => o.Location.SourceSpan.Start).ThenBy(o => o.Allocator, StringComparer.Ordinal)
            .Take(MaxOriginsPerValue).ToImmutableArray();

    private static SectionOrigin Earlier(SectionOrigin x, SectionOrigin y) =>
        x.Location.SourceSpan.Start <= y.Location.SourceSpan.Start ? x : y;

    public bool Equals(FlowState? other)
    {
        if (other is null)
            return false;
        if (ReferenceEquals(this, other))
            return true;
        if (Sections.Count != other.Sections.Count || Values.Count != other.Values.Count || Trylocks.Count != other.Trylocks.Count)
            return false;
        foreach (var pair in Trylocks)
        {
            if (!other.Trylocks.TryGetValue(pair.Key, out var trylock) || trylock != pair.Value)
                return false;
        }

        foreach (var pair in Sections)
        {
            if (!other.Sections.TryGetValue(pair.Key, out var count) || count != pair.Value)
                return false;
        }

        foreach (var pair in Values)
        {
            if (!other.Values.TryGetValue(pair.Key, out var origins) || !SameOrigins(origins, pair.Value))
                return false;
        }

        return true;
    }

    private static bool SameOrigins(ImmutableArray<AllocationOrigin> a, ImmutableArray<AllocationOrigin> b)
    {
        if (a == b)
            return true;
        if (a.Length != b.Length)
            return false;
        for (int i = 0; i < a.Length; i++)
        {
            if (!Equals(a[i], b[i]))
                return false;
        }

        return true;
    }

    public override bool Equals(object? obj) => Equals(obj as FlowState);

    public override int GetHashCode() => Sections.Count * 31 + Values.Count;
}
