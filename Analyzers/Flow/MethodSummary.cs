using System.Collections.Immutable;
using Microsoft.CodeAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// How a source method reaches a call that may sleep (or, for <see cref="MethodSummary.NeedsPreemptionOff"/>, one that
/// needs preemption disabled): <c>Chain</c> names the source methods from the summarized one down.
/// </summary>
internal sealed record SleepPath(ImmutableArray<string> Chain, string Leaf, string LeafName, Location LeafLocation)
{
    public SleepPath Through(string caller) => this with { Chain = Chain.Insert(0, caller) };
}

/// <summary>A source method frees one of its parameters (directly or further down).</summary>
internal sealed record FreeEffect(Family Accepts, IMethodSymbol Freer, ImmutableArray<string> Chain, int? Order, Location Location)
{
    public FreeEffect Through(string caller) => this with { Chain = Chain.Insert(0, caller) };
}

/// <summary>A section a source method leaves entered (Delta &gt; 0) or released (Delta &lt; 0) on every path; locks are named relative to its parameters.</summary>
internal sealed record SectionDelta(SectionId Id, int Delta);

/// <summary>
/// What a source method does, as its callers need to know it. <c>NeedsPreemptionOff</c>: the method
/// reaches a per-CPU access while preemptible from its own entry and leaves that to its callers to pin
/// (it is reported at their preemptible calls, not inside). <c>EntersIfTrue</c>: the method returns a
/// trylock's result (or false), so the trylock's sections, named relative to its parameters, are held
/// where its caller sees true.
/// </summary>
internal sealed record MethodSummary(
    SleepPath? Sleeps,
    ImmutableDictionary<int, SleepPath> SleepsIfGfp,
    ImmutableArray<AllocationOrigin> Returns,
    ImmutableDictionary<int, FreeEffect> FreesParameter,
    ImmutableArray<SectionDelta> SectionChanges,
    SleepPath? NeedsPreemptionOff,
    ImmutableArray<SectionId> EntersIfTrue)
{
    public static readonly MethodSummary Empty = new(null, ImmutableDictionary<int, SleepPath>.Empty,
        ImmutableArray<AllocationOrigin>.Empty, ImmutableDictionary<int, FreeEffect>.Empty, ImmutableArray<SectionDelta>.Empty, null,
        ImmutableArray<SectionId>.Empty);

    public bool IsEmpty => Sleeps is null && SleepsIfGfp.IsEmpty && Returns.IsEmpty && FreesParameter.IsEmpty && SectionChanges.IsEmpty
        && NeedsPreemptionOff is null && EntersIfTrue.IsEmpty;

    /// <summary>Whether a call of the method can be reported without an atomic context around it (see <see cref="ApiEffects.CanBeReported"/>).</summary>
    public bool CanBeReported => !SectionChanges.IsEmpty || !FreesParameter.IsEmpty || NeedsPreemptionOff is not null || !EntersIfTrue.IsEmpty;

    public bool MaySleepAtAll => Sleeps is not null || !SleepsIfGfp.IsEmpty;
}

/// <summary>A diagnostic found in a body, for the analyzer that owns its rule to report.</summary>
internal sealed record Finding(
    DiagnosticDescriptor Descriptor,
    Location Location,
    ImmutableArray<Location> AdditionalLocations,
    ImmutableDictionary<string, string?> Properties,
    object[] MessageArgs)
{
    public Diagnostic ToDiagnostic() =>
        Diagnostic.Create(Descriptor, Location, AdditionalLocations, Properties, MessageArgs);
}
