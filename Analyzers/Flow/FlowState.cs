using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
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
/// What a bool local or field (or a graph's capture of a bool value) says about the sections. A trylock's
/// result: its sections are held where it is true; Known is null while no branch on it was taken on the
/// path (the sections then count the failed trylock), and true or false after one (true: the sections
/// were entered there). A constant (no sections, Known set), for locals nothing else can assign. And,
/// from a join of paths where it was a constant, the counts of the sections that differed on the paths
/// where it is true or false (<see cref="IfTrue"/>, <see cref="IfFalse"/>): <c>bool locked = false; if (c)
/// { spin_lock(lk); locked = true; }</c> then <c>if (locked)</c> holds the lock.
/// </summary>
internal sealed record TrylockResult(ImmutableArray<(SectionId Id, SectionOrigin Origin)> Sections, bool? Known)
{
    public static readonly TrylockResult False = new(ImmutableArray<(SectionId, SectionOrigin)>.Empty, false);
    public static readonly TrylockResult True = new(ImmutableArray<(SectionId, SectionOrigin)>.Empty, true);

    public ImmutableArray<SectionNarrowing> IfTrue { get; init; } = ImmutableArray<SectionNarrowing>.Empty;

    public ImmutableArray<SectionNarrowing> IfFalse { get; init; } = ImmutableArray<SectionNarrowing>.Empty;

    /// <summary>A constant: no sections of its own and nothing to tell apart.</summary>
    public bool IsConstant => Sections.IsEmpty && Known is not null && IfTrue.IsEmpty && IfFalse.IsEmpty;

    /// <summary>Only what joins taught: no trylock and no constant, so it says nothing as a returned condition.</summary>
    public bool OnlyNarrows => Sections.IsEmpty && Known is null;

    /// <summary>The same trylock (by identity, one per call), value and narrowings: states must compare equal for the fixpoint to end.</summary>
    public bool Equals(TrylockResult? other) => other is not null && Sections == other.Sections && Known == other.Known
        && IfTrue.SequenceEqual(other.IfTrue) && IfFalse.SequenceEqual(other.IfFalse);

    public override int GetHashCode() => (Sections.Length * 31 + (Known is null ? 2 : Known.Value ? 1 : 0)) * 31 + IfTrue.Length + IfFalse.Length;

    /// <summary>After a test of the holder: its value is known on the branch, and what it told apart is spent.</summary>
    public TrylockResult Tested(bool value) => WithoutNarrowings() with { Known = value };

    public TrylockResult WithoutNarrowings() => IfTrue.IsEmpty && IfFalse.IsEmpty ? this
        : this with { IfTrue = ImmutableArray<SectionNarrowing>.Empty, IfFalse = ImmutableArray<SectionNarrowing>.Empty };
}

/// <summary>A section's count at a join (null: not held), and on the joined paths where a holder has one value.</summary>
internal sealed record SectionNarrowing(SectionId Id, SectionCount? Joined, SectionCount? Narrowed);

/// <summary>Abstract state at a program point. Immutable; joins are by path union.</summary>
internal sealed class FlowState : IEquatable<FlowState>
{
    private const int MaxOriginsPerValue = 4;

    public static readonly FlowState Empty = new(default, default, default);

    private readonly SmallMap<string, ImmutableArray<AllocationOrigin>> values;
    private readonly SmallMap<string, TrylockResult> trylocks;

    private FlowState(SmallMap<SectionId, SectionCount> sections, SmallMap<string, ImmutableArray<AllocationOrigin>> values,
        SmallMap<string, TrylockResult> trylocks)
    {
        Sections = sections;
        this.values = values;
        this.trylocks = trylocks;
    }

    /// <summary>The sections some path holds here (or released from the caller), in the order they were entered.</summary>
    public SmallMap<SectionId, SectionCount> Sections { get; }

    /// <summary>The allocations the value at an access path may come from.</summary>
    public bool TryGetOrigins(string path, out ImmutableArray<AllocationOrigin> origins) => values.TryGetValue(path, out origins);

    /// <summary>The trylock whose result the bool local holds.</summary>
    public bool TryGetTrylock(string local, [MaybeNullWhen(false)] out TrylockResult trylock) => trylocks.TryGetValue(local, out trylock);

    /// <summary>The atomic section that every path holds here, if any (the earliest entered; of one call's sections, the lock's).</summary>
    public SectionCount? MustAtomic()
    {
        SectionCount? earliest = null;
        bool earliestNamesNoLock = false;
        for (int i = 0; i < Sections.Count; i++)
        {
            var (id, count) = (Sections[i].Key, Sections[i].Value);
            if (count.Min <= 0 || !SectionFacts.IsAtomic(id.Kind))
                continue;
            int start = count.Origin.Location.SourceSpan.Start;
            int best = earliest?.Origin.Location.SourceSpan.Start ?? int.MaxValue;
            if (start < best || start == best && earliestNamesNoLock && id.Lock is not null)
            {
                earliest = count;
                earliestNamesNoLock = id.Lock is null;
            }
        }

        return earliest;
    }

    /// <summary>Whether some path holds a section that pins the current CPU.</summary>
    public bool MayPinCpu()
    {
        for (int i = 0; i < Sections.Count; i++)
        {
            if (Sections[i].Value.Max > 0 && SectionFacts.PinsCpu(Sections[i].Key.Kind))
                return true;
        }

        return false;
    }

    public FlowState WithTrylock(string local, TrylockResult trylock) => new(Sections, values, trylocks.SetItem(local, trylock));

    private FlowState WithSections(SmallMap<SectionId, SectionCount> sections) => new(sections, values, trylocks);

    private static SmallMap<SectionId, SectionCount> WithCount(SmallMap<SectionId, SectionCount> sections, SectionId id, SectionCount? count) =>
        count is null or { Min: 0, Max: 0 } ? sections.Remove(id) : sections.SetItem(id, count);

    public FlowState Enter(SectionId id, SectionOrigin origin, bool fromCaller = false)
    {
        SectionCount count = Sections.TryGetValue(id, out var existing)
            ? existing.Shift(1) with { Origin = existing.Max > 0 ? existing.Origin : origin }
            : new SectionCount(1, 1, origin, fromCaller);
        return WithSections(WithCount(Sections, id, count));
    }

    /// <summary>
    /// The counts a holder's test tells apart, for each section still counted as at the join that taught
    /// it (a section entered or left since then counts something else).
    /// </summary>
    public FlowState Narrowed(ImmutableArray<SectionNarrowing> narrowings)
    {
        var sections = Sections;
        foreach (SectionNarrowing narrowing in narrowings)
        {
            Sections.TryGetValue(narrowing.Id, out var current);
            if (Equals(current, narrowing.Joined))
                sections = WithCount(sections, narrowing.Id, narrowing.Narrowed);
        }

        return sections.IsSameAs(Sections) ? this : WithSections(sections);
    }

    /// <summary>Leaves the matching section; with no match on any path it records a release of the caller's section.</summary>
    public FlowState Leave(SectionId id, SectionOrigin origin, out SectionCount? before)
    {
        SectionId match = FindHeld(id);
        if (Sections.TryGetValue(match, out var existing))
        {
            before = existing;
            return WithSections(WithCount(Sections, match, existing.Shift(-1)));
        }

        before = null;
        return WithSections(Sections.SetItem(id, new SectionCount(-1, -1, origin, false)));
    }

    private SectionId FindHeld(SectionId id)
    {
        if (Sections.TryGetValue(id, out var exact) && exact.Max > 0)
            return id;
        // A lock we cannot name matches any held lock of the same kind, and vice versa: the earliest entered.
        SectionId match = id;
        int earliest = int.MaxValue;
        for (int i = 0; i < Sections.Count; i++)
        {
            var (held, count) = (Sections[i].Key, Sections[i].Value);
            int start = count.Origin.Location.SourceSpan.Start;
            if (held.Kind == id.Kind && count.Max > 0 && (id.Lock is null || held.Lock is null) && start < earliest)
            {
                match = held;
                earliest = start;
            }
        }

        return match;
    }

    public FlowState SetValue(string key, ImmutableArray<AllocationOrigin> origins)
    {
        var kept = Forget(values, key);
        if (!origins.IsDefaultOrEmpty)
            kept = kept.SetItem(key, origins);
        return With(kept, Forget(trylocks, key));
    }

    /// <summary>Forgets what we knew about the path and every path below it (an assignment to <c>dev</c> changes <c>dev.buf</c>).</summary>
    public FlowState Kill(string key) => With(Forget(values, key), Forget(trylocks, key));

    /// <summary>This state when nothing changed (most flow captures and kills), else a new one.</summary>
    private FlowState With(SmallMap<string, ImmutableArray<AllocationOrigin>> newValues, SmallMap<string, TrylockResult> newTrylocks) =>
        newValues.IsSameAs(values) && newTrylocks.IsSameAs(trylocks) ? this : new FlowState(Sections, newValues, newTrylocks);

    /// <summary>The map without the path and the paths below it; the same map when there were none (most flow captures).</summary>
    private static SmallMap<string, T> Forget<T>(SmallMap<string, T> map, string key)
    {
        var kept = map;
        for (int i = 0; i < map.Count; i++)
        {
            string existing = map[i].Key;
            if (AccessPaths.IsAtOrBelow(existing, key))
                kept = kept.Remove(existing);
        }

        return kept;
    }

    public static FlowState Join(FlowState a, FlowState b)
    {
        if (a.Equals(b))
            return a;
        var trylocks = JoinTrylocks(ref a, ref b);
        var sections = new List<KeyValuePair<SectionId, SectionCount>>(a.Sections.Count + b.Sections.Count);
        // a's sections, then those only b has.
        for (int i = 0; i < a.Sections.Count; i++)
        {
            var id = a.Sections[i].Key;
            b.Sections.TryGetValue(id, out var y);
            if (JoinCount(a.Sections[i].Value, y) is { } joined)
                sections.Add(new KeyValuePair<SectionId, SectionCount>(id, joined));
        }

        for (int i = 0; i < b.Sections.Count; i++)
        {
            var id = b.Sections[i].Key;
            if (!a.Sections.ContainsKey(id) && JoinCount(null, b.Sections[i].Value) is { } joined)
                sections.Add(new KeyValuePair<SectionId, SectionCount>(id, joined));
        }

        // A value keeps every allocation it may come from: a path that knows nothing adds nothing.
        var values = a.values;
        for (int i = 0; i < b.values.Count; i++)
        {
            var (key, theirs) = (b.values[i].Key, b.values[i].Value);
            if (!values.TryGetValue(key, out var mine))
                values = values.SetItem(key, theirs);
            else if (!SameOrigins(mine, theirs))
                values = values.SetItem(key, Union(mine, theirs));
        }

        return new FlowState(SmallMap<SectionId, SectionCount>.Of(sections), values, trylocks);
    }

    /// <summary>A section's count over two joined paths (null: not held on the path, or on neither).</summary>
    private static SectionCount? JoinCount(SectionCount? x, SectionCount? y)
    {
        SectionCount? joined = (x, y) switch
        {
            ({ } both, { } other) => new SectionCount(Math.Min(both.Min, other.Min), Math.Max(both.Max, other.Max), Earlier(both.Origin, other.Origin),
                both.FromCaller && other.FromCaller),
            ({ } only, null) => only with { Min = Math.Min(0, only.Min), Max = Math.Max(0, only.Max) },
            (null, { } only) => only with { Min = Math.Min(0, only.Min), Max = Math.Max(0, only.Max) },
            _ => null,
        };
        return joined is { Min: 0, Max: 0 } ? null : joined;
    }

    /// <summary>What each holder says after a join: see <see cref="JoinHolder"/>.</summary>
    private static SmallMap<string, TrylockResult> JoinTrylocks(ref FlowState a, ref FlowState b)
    {
        SmallMap<string, TrylockResult> joined = default;
        for (int i = 0; i < a.trylocks.Count; i++)
        {
            b.trylocks.TryGetValue(a.trylocks[i].Key, out var other);
            if (JoinHolder(ref a, ref b, a.trylocks[i].Value, other) is { } holder)
                joined = joined.SetItem(a.trylocks[i].Key, holder);
        }

        for (int i = 0; i < b.trylocks.Count; i++)
        {
            if (!a.trylocks.ContainsKey(b.trylocks[i].Key) && JoinHolder(ref b, ref a, b.trylocks[i].Value, null) is { } holder)
                joined = joined.SetItem(b.trylocks[i].Key, holder);
        }

        return joined;
    }

    /// <summary>
    /// A holder stays known only where both paths agree. A path that took a trylock's true branch and holds
    /// exactly its sections once more than a path that did not joins it as the untested result (the
    /// sections counted as on the other path): <c>if (ok) work(); ... if (ok) spin_unlock(lk);</c>; a
    /// constant false joins a trylock as its failed result (<c>ok = ready &amp;&amp; spin_trylock(lk)</c>).
    /// Flags (constants, and what joins of them taught) join by <see cref="JoinFlags"/>. Null: nothing known.
    /// </summary>
    private static TrylockResult? JoinHolder(ref FlowState a, ref FlowState b, TrylockResult mine, TrylockResult? other)
    {
        if (other is not null && mine.Equals(other))
            return mine;
        if (mine.Sections.IsEmpty && (other is null || other.Sections.IsEmpty))
            return JoinFlags(a, mine, b, other);
        if (other is null)
            return null;
        if (mine.IsConstant && mine.Known == false)
            mine = other.Tested(false);
        else if (other.IsConstant && other.Known == false)
            other = mine.Tested(false);
        if (other.Sections != mine.Sections || mine.Sections.IsEmpty)
            return null;
        if (other.Known == mine.Known)
            return mine.WithoutNarrowings();

        bool consistent = mine.Known == true ? HoldsOnceMore(ref a, b, mine)
            : other.Known != true || HoldsOnceMore(ref b, a, mine);
        return consistent ? mine.WithoutNarrowings() with { Known = null } : null;
    }

    /// <summary>
    /// A flag over two joined paths (null on a path: nothing known there, so either value with that path's
    /// counts). For each value, the sections count as the join of the paths where the flag may have it;
    /// a count that differs from the whole join is kept as a narrowing. A value no path can have makes
    /// the flag a constant. Null when it tells nothing apart.
    /// </summary>
    private static TrylockResult? JoinFlags(FlowState a, TrylockResult? mine, FlowState b, TrylockResult? other)
    {
        bool trueOnA = mine?.Known != false, trueOnB = other?.Known != false;
        bool falseOnA = mine?.Known != true, falseOnB = other?.Known != true;
        if (!trueOnA && !trueOnB)
            return TrylockResult.False;
        if (!falseOnA && !falseOnB)
            return TrylockResult.True;
        // Builders only when a count differs: most flags (bool found = false) tell nothing apart.
        ImmutableArray<SectionNarrowing>.Builder? ifTrue = null, ifFalse = null;
        for (int i = 0; i < a.Sections.Count + b.Sections.Count; i++)
        {
            SectionId id = i < a.Sections.Count ? a.Sections[i].Key : b.Sections[i - a.Sections.Count].Key;
            if (i >= a.Sections.Count && a.Sections.ContainsKey(id))
                continue;
            a.Sections.TryGetValue(id, out var onA);
            b.Sections.TryGetValue(id, out var onB);
            SectionCount? whole = JoinCount(onA, onB);
            SectionCount? whenTrue = JoinWhen(trueOnA, CountWhen(mine, true, id, onA), trueOnB, CountWhen(other, true, id, onB));
            SectionCount? whenFalse = JoinWhen(falseOnA, CountWhen(mine, false, id, onA), falseOnB, CountWhen(other, false, id, onB));
            if (whenTrue?.Min != whole?.Min || whenTrue?.Max != whole?.Max)
                (ifTrue ??= ImmutableArray.CreateBuilder<SectionNarrowing>()).Add(new SectionNarrowing(id, whole, whenTrue));
            if (whenFalse?.Min != whole?.Min || whenFalse?.Max != whole?.Max)
                (ifFalse ??= ImmutableArray.CreateBuilder<SectionNarrowing>()).Add(new SectionNarrowing(id, whole, whenFalse));
        }

        return ifTrue is null && ifFalse is null ? null
            : new TrylockResult(ImmutableArray<(SectionId, SectionOrigin)>.Empty, null)
            {
                IfTrue = ifTrue?.ToImmutable() ?? ImmutableArray<SectionNarrowing>.Empty,
                IfFalse = ifFalse?.ToImmutable() ?? ImmutableArray<SectionNarrowing>.Empty,
            };
    }

    /// <summary>A section's count on one path where a flag has a value: what the flag's narrowing says, if it still applies, else the path's count.</summary>
    private static SectionCount? CountWhen(TrylockResult? flag, bool value, SectionId id, SectionCount? onPath)
    {
        if (flag is not null)
        {
            foreach (SectionNarrowing narrowing in value ? flag.IfTrue : flag.IfFalse)
            {
                if (narrowing.Id == id && Equals(onPath, narrowing.Joined))
                    return narrowing.Narrowed;
            }
        }

        return onPath;
    }

    private static SectionCount? JoinWhen(bool possibleOnA, SectionCount? onA, bool possibleOnB, SectionCount? onB) =>
        possibleOnA && possibleOnB ? JoinCount(onA, onB) : possibleOnA ? onA : onB;

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
            sections = WithCount(sections, id, theirs);
        }

        taken = taken.WithSections(sections);
        return true;
    }

    private static ImmutableArray<AllocationOrigin> Union(ImmutableArray<AllocationOrigin> a, ImmutableArray<AllocationOrigin> b) =>
        a.Concat(b).Distinct().OrderBy(o => o.Location.SourceSpan.Start).ThenBy(o => o.Allocator, StringComparer.Ordinal)
            .Take(MaxOriginsPerValue).ToImmutableArray();

    private static SectionOrigin Earlier(SectionOrigin x, SectionOrigin y) =>
        x.Location.SourceSpan.Start <= y.Location.SourceSpan.Start ? x : y;

    /// <summary>The same sections, values and trylock locals, in any order (paths enter sections in different orders).</summary>
    public bool Equals(FlowState? other)
    {
        if (other is null)
            return false;
        if (ReferenceEquals(this, other))
            return true;
        if (Sections.Count != other.Sections.Count || values.Count != other.values.Count || trylocks.Count != other.trylocks.Count)
            return false;
        for (int i = 0; i < trylocks.Count; i++)
        {
            if (!other.trylocks.TryGetValue(trylocks[i].Key, out var trylock) || trylock != trylocks[i].Value)
                return false;
        }

        for (int i = 0; i < Sections.Count; i++)
        {
            if (!other.Sections.TryGetValue(Sections[i].Key, out var count) || count != Sections[i].Value)
                return false;
        }

        for (int i = 0; i < values.Count; i++)
        {
            if (!other.values.TryGetValue(values[i].Key, out var origins) || !SameOrigins(origins, values[i].Value))
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

    public override int GetHashCode() => Sections.Count * 31 + values.Count;
}
