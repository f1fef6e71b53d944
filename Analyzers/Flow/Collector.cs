using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>Gathers, during the final pass of a body analysis, its findings and the facts of its summary.</summary>
internal sealed class Collector
{
    private readonly bool collectFindings;
    private readonly List<Finding> findings = new();
    private readonly HashSet<(string, Location)> reported = new();
    private readonly Dictionary<int, SleepPath> sleepsIfGfp = new();
    private readonly Dictionary<int, FreeEffect> frees = new();
    private readonly List<(IFlowAnonymousFunctionOperation, CallbackRegistration?)> lambdas = new();
    private readonly Dictionary<IMethodSymbol, CallbackRegistration> localCallbacks = new(SymbolEqualityComparer.Default);
    private ImmutableArray<AllocationOrigin> returns = ImmutableArray<AllocationOrigin>.Empty;
    private SleepPath? sleeps;
    private SleepPath? needsPreemptionOff;
    private ImmutableArray<SectionId> returnedTrylock;
    private bool returnsOtherValues;
    private readonly List<(bool? Returns, ImmutableArray<SectionId> Held, ImmutableArray<SectionId> MaybeHeld)> exitSections = new();
    private readonly List<(ImmutableArray<SectionId> Held, Finding Finding)> heldAtReturnTrue = new();

    public Collector(bool collectFindings) => this.collectFindings = collectFindings;

    public void Report(DiagnosticDescriptor descriptor, Location location, ImmutableArray<Location> additional,
        ImmutableDictionary<string, string?> properties, params object[] arguments)
    {
        if (collectFindings && reported.Add((descriptor.Id + arguments.FirstOrDefault(), location)))
            findings.Add(new Finding(descriptor, location, additional, properties, arguments));
    }

    /// <summary>
    /// A section still held where the body returns <c>true</c>: an imbalance, unless the body turns out to
    /// be a trylock of its own (see <see cref="ExitHolds"/>), which is what such a return means then.
    /// </summary>
    public void ReportHeldAtReturnTrue(ImmutableArray<SectionId> held, DiagnosticDescriptor descriptor, Location location,
        ImmutableArray<Location> additional, ImmutableDictionary<string, string?> properties, params object[] arguments)
    {
        if (collectFindings)
            heldAtReturnTrue.Add((held, new Finding(descriptor, location, additional, properties, arguments)));
    }

    /// <summary>
    /// What an exit returns (a bool constant, or null for anything else or nothing) and the sections the
    /// body itself entered that every path to it holds, and that some path holds.
    /// </summary>
    public void ExitHolds(bool? returns, ImmutableArray<SectionId> held, ImmutableArray<SectionId> maybeHeld) =>
        exitSections.Add((returns, held, maybeHeld));

    /// <summary>
    /// The sections of a body that is a trylock of its own (the kernel's <c>__cond_acquires</c>): every exit
    /// returns a constant, those returning true all hold the same sections, and those returning false
    /// (there is at least one) hold none of them. Empty otherwise.
    /// </summary>
    private ImmutableArray<SectionId> ConditionallyAcquired()
    {
        if (exitSections.Count == 0 || exitSections.Any(e => e.Returns is null) || !exitSections.Any(e => e.Returns == false))
            return ImmutableArray<SectionId>.Empty;
        var whenTrue = exitSections.Where(e => e.Returns == true).ToList();
        if (whenTrue.Count == 0)
            return ImmutableArray<SectionId>.Empty;
        ImmutableArray<SectionId> held = whenTrue[0].Held;
        bool same = whenTrue.All(e => e.Held.Length == held.Length && e.MaybeHeld.Length == held.Length && held.All(e.Held.Contains));
        bool noneWhenFalse = exitSections.Where(e => e.Returns == false).All(e => !e.MaybeHeld.Any(held.Contains));
        bool nameable = held.All(id => id.Lock is null || AccessPaths.CanRebase(id.Lock));
        return same && noneWhenFalse && nameable ? held : ImmutableArray<SectionId>.Empty;
    }

    public void Sleeps(SleepPath path) => sleeps ??= path;

    public void NeedsPreemptionOff(SleepPath path) => needsPreemptionOff ??= path;

    public void SleepsIfGfp(int ordinal, SleepPath path)
    {
        if (!sleepsIfGfp.ContainsKey(ordinal))
            sleepsIfGfp[ordinal] = path;
    }

    public void Frees(int ordinal, FreeEffect effect)
    {
        if (!frees.ContainsKey(ordinal))
            frees[ordinal] = effect;
    }

    public void Returns(ImmutableArray<AllocationOrigin> origins) => returns = returns.AddRange(origins).Distinct().ToImmutableArray();

    /// <summary>
    /// A value the body returns, as a condition: the sections of the trylock whose result it is, empty for a
    /// constant false, null for anything else. The body is a trylock to its callers only when every return
    /// is false or the result of one and the same trylock.
    /// </summary>
    public void ReturnsCondition(ImmutableArray<SectionId>? entersIfTrue)
    {
        if (returnsOtherValues || entersIfTrue is { IsEmpty: true })
            return;
        if (entersIfTrue is not { } sections || !returnedTrylock.IsDefault && !returnedTrylock.SequenceEqual(sections))
            returnsOtherValues = true;
        else
            returnedTrylock = sections;
    }

    public void AddLambda(IFlowAnonymousFunctionOperation lambda, CallbackRegistration? registration)
    {
        int index = lambdas.FindIndex(l => l.Item1.Symbol.Equals(lambda.Symbol, SymbolEqualityComparer.Default));
        if (index < 0)
            lambdas.Add((lambda, registration));
        else if (registration is not null)
            lambdas[index] = (lambda, registration);
    }

    public void AddLocalCallback(IMethodSymbol local, CallbackRegistration registration) => localCallbacks[local] = registration;

    public BodyResult Build(List<FlowState> exits)
    {
        var deltas = ImmutableArray<SectionDelta>.Empty;
        if (exits.Count > 0)
        {
            FlowState joined = exits.Aggregate(FlowState.Join);
            deltas = joined.Sections.Entries()
                .Where(p => !p.Value.FromCaller && p.Value.Min == p.Value.Max && p.Value.Min != 0)
                .Select(p => new SectionDelta(p.Key, p.Value.Min))
                .ToImmutableArray();
        }

        var entersIfTrue = returnsOtherValues || returnedTrylock.IsDefault ? ImmutableArray<SectionId>.Empty : returnedTrylock;
        ImmutableArray<SectionId> acquired = ConditionallyAcquired();
        if (entersIfTrue.IsEmpty)
            entersIfTrue = acquired;
        foreach (var (held, finding) in heldAtReturnTrue)
        {
            if (!held.All(acquired.Contains))
                Report(finding.Descriptor, finding.Location, finding.AdditionalLocations, finding.Properties, finding.MessageArgs);
        }

        var summary = new MethodSummary(sleeps, sleepsIfGfp.ToImmutableDictionary(), returns, frees.ToImmutableDictionary(), deltas, needsPreemptionOff, entersIfTrue);
        return new BodyResult(findings.ToImmutableArray(), summary, lambdas.ToImmutableArray(), localCallbacks.ToImmutableDictionary(SymbolEqualityComparer.Default));
    }
}

/// <summary>Keys of the diagnostic properties that the code fixes read.</summary>
internal static class FixProperties
{
    public const string GfpParameter = "GfpParameter";
    public const string Free = "Free";

    /// <summary>The access path of the cache or pool the freed memory came from, in the terms of the body that frees it.</summary>
    public const string Owner = "Owner";
    public const string Order = "Order";
    public const string OrderParameter = "OrderParameter";
    public const string Release = "Release";
}
