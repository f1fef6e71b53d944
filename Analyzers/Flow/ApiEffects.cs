using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace KmemGuard.Analyzers.Flow;

internal sealed record AllocationSpec(Family Family, string? OrderParameter, string? OwnerParameter);

internal sealed record FreeSpec(Family Accepts, string Parameter, string? OrderParameter, string? OwnerParameter);

internal sealed record SectionSpec(Section Kind, string? LockParameter);

internal sealed record CallbackSpec(string DelegateParameter, CallbackContextKind Context);

/// <summary>What a method's KmemGuard attributes say it does.</summary>
internal sealed record ApiEffects(
    bool MaySleep,
    string? SleepIfGfpParameter,
    AllocationSpec? Allocates,
    FreeSpec? Frees,
    ImmutableArray<SectionSpec> Enters,
    ImmutableArray<SectionSpec> EntersIfTrue,
    ImmutableArray<SectionSpec> Leaves,
    ImmutableArray<CallbackSpec> Callbacks,
    bool RequiresPreemptionDisabled)
{
    public static readonly ApiEffects None = new(false, null, null, null,
        ImmutableArray<SectionSpec>.Empty, ImmutableArray<SectionSpec>.Empty, ImmutableArray<SectionSpec>.Empty,
        ImmutableArray<CallbackSpec>.Empty, false);

    public bool IsAnnotated => !ReferenceEquals(this, None);

    /// <summary>Whether a call can be reported without an atomic context around it: it changes a section, frees, or touches per-CPU data.</summary>
    public bool CanBeReported => !Enters.IsEmpty || !EntersIfTrue.IsEmpty || !Leaves.IsEmpty || Frees is not null || RequiresPreemptionDisabled;

    public bool MaySleepAtAll => MaySleep || SleepIfGfpParameter is not null;

    /// <summary>Whether the method's own attributes declare that it changes sections of this kind.</summary>
    public bool DeclaresSectionChange(Section kind) =>
        Enters.Any(s => s.Kind == kind) || EntersIfTrue.Any(s => s.Kind == kind) || Leaves.Any(s => s.Kind == kind);

    public static ApiEffects Read(IMethodSymbol method, AnnotationSymbols symbols)
    {
        bool maySleep = false, requiresPreemptOff = false;
        string? gfp = null;
        AllocationSpec? allocates = null;
        FreeSpec? frees = null;
        // Builders only for what a method has: this runs once for every method called anywhere, and most have no annotation.
        ImmutableArray<SectionSpec>.Builder? enters = null, entersIfTrue = null, leaves = null;
        ImmutableArray<CallbackSpec>.Builder? callbacks = null;
        bool any = false;
        foreach (AttributeData attribute in method.GetAttributes())
        {
            INamedTypeSymbol? type = attribute.AttributeClass;
            if (type is null)
                continue;
            if (Is(type, symbols.MaySleep))
                maySleep = true;
            else if (Is(type, symbols.MaySleepIfGfp))
                gfp = StringArgument(attribute, 0);
            else if (Is(type, symbols.Allocates))
                allocates = new AllocationSpec((Family)IntArgument(attribute, 0), Named(attribute, "OrderParameter"), Named(attribute, "OwnerParameter"));
            else if (Is(type, symbols.Frees) && StringArgument(attribute, 1) is { } freed)
                frees = new FreeSpec((Family)IntArgument(attribute, 0), freed, Named(attribute, "OrderParameter"), Named(attribute, "OwnerParameter"));
            else if (Is(type, symbols.EntersSection))
                (enters ??= ImmutableArray.CreateBuilder<SectionSpec>()).Add(SectionOf(attribute));
            else if (Is(type, symbols.EntersSectionIfTrue))
                (entersIfTrue ??= ImmutableArray.CreateBuilder<SectionSpec>()).Add(SectionOf(attribute));
            else if (Is(type, symbols.LeavesSection))
                (leaves ??= ImmutableArray.CreateBuilder<SectionSpec>()).Add(SectionOf(attribute));
            else if (Is(type, symbols.RunsCallback) && StringArgument(attribute, 0) is { } parameter)
                (callbacks ??= ImmutableArray.CreateBuilder<CallbackSpec>()).Add(new CallbackSpec(parameter, (CallbackContextKind)IntArgument(attribute, 1)));
            else if (Is(type, symbols.RequiresPreemptionDisabled))
                requiresPreemptOff = true;
            else
                continue;
            any = true;
        }

        if (!any)
            return None;
        return new ApiEffects(maySleep, gfp, allocates, frees, enters?.ToImmutable() ?? ImmutableArray<SectionSpec>.Empty,
            entersIfTrue?.ToImmutable() ?? ImmutableArray<SectionSpec>.Empty, leaves?.ToImmutable() ?? ImmutableArray<SectionSpec>.Empty,
            callbacks?.ToImmutable() ?? ImmutableArray<CallbackSpec>.Empty, requiresPreemptOff);
    }

    private static bool Is(INamedTypeSymbol type, INamedTypeSymbol expected) => SymbolEqualityComparer.Default.Equals(type, expected);

    private static SectionSpec SectionOf(AttributeData attribute) =>
        new((Section)IntArgument(attribute, 0), Named(attribute, "LockParameter"));

    private static int IntArgument(AttributeData attribute, int index) =>
        attribute.ConstructorArguments.Length > index && attribute.ConstructorArguments[index].Value is int value ? value : 0;

    private static string? StringArgument(AttributeData attribute, int index) =>
        attribute.ConstructorArguments.Length > index ? attribute.ConstructorArguments[index].Value as string : null;

    private static string? Named(AttributeData attribute, string name)
    {
        foreach (var pair in attribute.NamedArguments)
        {
            if (pair.Key == name)
                return pair.Value.Value as string;
        }

        return null;
    }
}

/// <summary>The attribute types, resolved once per compilation.</summary>
internal sealed class AnnotationSymbols
{
    private AnnotationSymbols(Compilation compilation)
    {
        MaySleep = Get(compilation, "MaySleepAttribute")!;
        MaySleepIfGfp = Get(compilation, "MaySleepIfGfpAttribute")!;
        Allocates = Get(compilation, "AllocatesAttribute")!;
        Frees = Get(compilation, "FreesAttribute")!;
        EntersSection = Get(compilation, "EntersSectionAttribute")!;
        EntersSectionIfTrue = Get(compilation, "EntersSectionIfTrueAttribute")!;
        LeavesSection = Get(compilation, "LeavesSectionAttribute")!;
        RunsCallback = Get(compilation, "RunsCallbackAttribute")!;
        RequiresPreemptionDisabled = Get(compilation, "RequiresPreemptionDisabledAttribute")!;
    }

    public INamedTypeSymbol MaySleep { get; }
    public INamedTypeSymbol MaySleepIfGfp { get; }
    public INamedTypeSymbol Allocates { get; }
    public INamedTypeSymbol Frees { get; }
    public INamedTypeSymbol EntersSection { get; }
    public INamedTypeSymbol EntersSectionIfTrue { get; }
    public INamedTypeSymbol LeavesSection { get; }
    public INamedTypeSymbol RunsCallback { get; }
    public INamedTypeSymbol RequiresPreemptionDisabled { get; }

    /// <summary>Null when the compilation does not see KmemGuard's attributes: then no analyzer runs.</summary>
    public static AnnotationSymbols? TryCreate(Compilation compilation)
    {
        var symbols = new AnnotationSymbols(compilation);
        INamedTypeSymbol?[] all =
        {
            symbols.MaySleep, symbols.MaySleepIfGfp, symbols.Allocates, symbols.Frees, symbols.EntersSection,
            symbols.EntersSectionIfTrue, symbols.LeavesSection, symbols.RunsCallback, symbols.RequiresPreemptionDisabled,
        };
        return all.All(s => s is not null) ? symbols : null;
    }

    private static INamedTypeSymbol? Get(Compilation compilation, string name) =>
        compilation.GetTypeByMetadataName("KmemGuard." + name);
}
