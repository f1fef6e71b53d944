using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

internal sealed partial class BodyAnalysis
{
    /// <summary>
    /// The operations of a block that can change the state, children before parents (evaluation
    /// order), collected once per block: the fixpoint and the final pass visit a block many times, and
    /// walking its whole operation tree each time was most of their cost. Calls that neither carry
    /// annotations nor reach a source method, and operations that only hold others, are left out.
    /// </summary>
    private IOperation[] StepsOf(BasicBlock block)
    {
        if (steps[block.Ordinal] is { } known)
            return known;
        // One buffer for all blocks of the body: a list per block, grown step by step, was most of this method's cost.
        stepBuffer.Clear();
        foreach (IOperation operation in block.Operations)
            CollectSteps(operation, stepBuffer);
        if (block.BranchValue is { } branchValue)
            CollectSteps(branchValue, stepBuffer);
        return steps[block.Ordinal] = stepBuffer.ToArray();
    }

    private void CollectSteps(IOperation operation, List<IOperation> collected)
    {
        // A lambda is a body of its own: the final pass hands it over, nothing inside it runs here.
        if (operation is IFlowAnonymousFunctionOperation)
        {
            collected.Add(operation);
            return;
        }

        foreach (IOperation child in operation.ChildOperations)
            CollectSteps(child, collected);
        bool changesState = operation switch
        {
            IInvocationOperation call => IsEffectful(call.TargetMethod, call, call.Instance),
            IObjectCreationOperation { Constructor: { } constructor } creation => IsEffectful(constructor, creation, null),
            ISimpleAssignmentOperation assignment => Path(assignment.Target) is not null,
            IVariableDeclaratorOperation { Initializer: not null } => true,
            ICompoundAssignmentOperation compound => Path(compound.Target) is not null,
            IIncrementOrDecrementOperation increment => Path(increment.Target) is not null,
            IFlowCaptureOperation => true,
            _ => false,
        };
        if (changesState)
            collected.Add(operation);
    }

    private bool IsEffectful(IMethodSymbol target, IOperation call, IOperation? instance) =>
        context.EffectsOf(target).IsAnnotated || !TargetsOf(target, call, instance).IsEmpty;

    /// <summary>What one step does to the state; its operands were stepped before it.</summary>
    private FlowState Step(IOperation operation, FlowState state)
    {
        switch (operation)
        {
            case IInvocationOperation call:
                return OnCall(call.TargetMethod, call, call.Arguments, call.Instance, state);
            case IObjectCreationOperation creation:
                return OnCall(creation.Constructor!, creation, creation.Arguments, null, state);
            case ISimpleAssignmentOperation assignment:
                return Assign(Path(assignment.Target)!, assignment.Value, HoldsTrylock(assignment.Target),
                    (assignment.Target as ILocalReferenceOperation)?.Local, state);
            case IVariableDeclaratorOperation { Initializer.Value: var initial } declarator:
                // A straight-line body's declaration; a graph turns it into an assignment.
                return Assign(AccessPaths.OfLocal(declarator.Symbol), initial, holdsTrylock: true, declarator.Symbol, state);
            case ICompoundAssignmentOperation compound:
                return state.Kill(Path(compound.Target)!);
            case IIncrementOrDecrementOperation increment:
                return state.Kill(Path(increment.Target)!);
            case IFlowCaptureOperation capture:
                string captured = CaptureName(capture.Id);
                FlowState kept = state.SetValue(captured, OriginsOf(capture.Value, state));
                return HolderFactOf(capture.Value, null, isCapture: true, state) is { } value ? kept.WithTrylock(captured, value) : kept;
            case IFlowAnonymousFunctionOperation lambda:
                collector?.AddLambda(lambda, null);
                return state;
            default:
                return state;
        }
    }

    private string CaptureName(CaptureId id)
    {
        if (!captureNames.TryGetValue(id, out string? name))
        {
            name = "#" + captureNames.Count;
            captureNames[id] = name;
        }

        return name;
    }

    /// <summary>The access path of an operation, built once per operation (the fixpoint visits each block many times).</summary>
    private string? Path(IOperation? operation)
    {
        if (operation is null)
            return null;
        if (!paths.TryGetValue(operation, out string? path))
        {
            path = AccessPaths.Of(operation, owner, captureName);
            paths[operation] = path;
        }

        return path;
    }

    // Loops rather than FirstOrDefault with a lambda: these run at every visit of a call, and a closure is an allocation.
    private static IArgumentOperation? ArgumentFor(ImmutableArray<IArgumentOperation> arguments, string? parameter)
    {
        if (parameter is null)
            return null;
        foreach (IArgumentOperation argument in arguments)
        {
            if (argument.Parameter?.Name == parameter)
                return argument;
        }

        return null;
    }

    private static IArgumentOperation? ArgumentAt(ImmutableArray<IArgumentOperation> arguments, int ordinal)
    {
        foreach (IArgumentOperation argument in arguments)
        {
            if (argument.Parameter?.Ordinal == ordinal)
                return argument;
        }

        return null;
    }

    private static string TextOf(IOperation? operation) => operation?.Syntax switch
    {
        null => "",
        Microsoft.CodeAnalysis.CSharp.Syntax.ArgumentSyntax { Expression: Microsoft.CodeAnalysis.CSharp.Syntax.DeclarationExpressionSyntax declaration } =>
            declaration.Designation.ToString(),
        Microsoft.CodeAnalysis.CSharp.Syntax.ArgumentSyntax argument => argument.Expression.ToString(),
        var syntax => syntax.ToString(),
    };

    /// <summary>
    /// The sections a call enters when it returns true, or null for any other value: a trylock, or a source
    /// helper that returns a trylock's result. One instance per call, so states compare equal.
    /// </summary>
    private TrylockResult? TrylockOf(IOperation value)
    {
        if (AccessPaths.Strip(value) is not IInvocationOperation call)
            return null;
        if (!trylocks.TryGetValue(call, out TrylockResult? trylock))
        {
            trylock = NewTrylock(call);
            trylocks[call] = trylock;
        }

        return trylock;
    }

    /// <summary>
    /// Where a trylock's result is followed: a local, or a field (of this object or another), whose value
    /// is taken as unchanged by calls, as its allocations are.
    /// </summary>
    private static bool HoldsTrylock(IOperation target) => target is ILocalReferenceOperation or IFieldReferenceOperation;

    /// <summary>An assignment (or a straight-line body's declaration): the value's origins, and what it says as a bool holder.</summary>
    private FlowState Assign(string target, IOperation value, bool holdsTrylock, ILocalSymbol? local, FlowState state)
    {
        FlowState assigned = state.SetValue(target, OriginsOf(value, state));
        return holdsTrylock && HolderFactOf(value, local, isCapture: false, state) is { } fact ? assigned.WithTrylock(target, fact) : assigned;
    }

    /// <summary>
    /// What a bool value stored into a holder says: a trylock's result; the fact a graph capture carries
    /// (<c>ok = ready &amp;&amp; spin_trylock(lk)</c> stores one); or a constant, for a capture or a local
    /// that nothing but its own assignments can change.
    /// </summary>
    private TrylockResult? HolderFactOf(IOperation value, ILocalSymbol? local, bool isCapture, FlowState state)
    {
        if (value.Type?.SpecialType != SpecialType.System_Boolean)
            return null;
        IOperation stripped = AccessPaths.Strip(value);
        if (stripped is IFlowCaptureReferenceOperation reference)
            return state.TryGetTrylock(CaptureName(reference.Id), out var carried) ? carried : null;
        if (stripped.ConstantValue is { HasValue: true, Value: bool constant })
            return isCapture || local is not null && IsOwnLocal(local) ? constant ? TrylockResult.True : TrylockResult.False : null;
        return TrylockOf(stripped);
    }

    /// <summary>
    /// A local of this body that no lambda or local function captures and that is never passed by
    /// reference: only the assignments this analysis sees can change it, so its constants can be trusted.
    /// </summary>
    private bool IsOwnLocal(ILocalSymbol local) =>
        root is not IFlowAnonymousFunctionOperation // a lambda's graph keeps no tree to tell what its own lambdas capture
        && SymbolEqualityComparer.Default.Equals(local.ContainingSymbol, owner)
        && !(exposedLocals ??= ExposedLocals(root)).Contains(local);

    private static HashSet<ILocalSymbol> ExposedLocals(IOperation body)
    {
        var exposed = new HashSet<ILocalSymbol>(SymbolEqualityComparer.Default);
        foreach (IOperation operation in body.Descendants())
        {
            switch (operation)
            {
                case IAnonymousFunctionOperation or ILocalFunctionOperation:
                    foreach (ILocalReferenceOperation used in operation.Descendants().OfType<ILocalReferenceOperation>())
                        exposed.Add(used.Local);
                    break;
                case IArgumentOperation { Parameter.RefKind: RefKind.Ref or RefKind.Out, Value: ILocalReferenceOperation byReference }:
                    exposed.Add(byReference.Local);
                    break;
                case IAddressOfOperation { Reference: ILocalReferenceOperation addressed }:
                    exposed.Add(addressed.Local);
                    break;
                case IVariableDeclaratorOperation { Symbol.IsRef: true, Initializer.Value: ILocalReferenceOperation aliased }:
                    exposed.Add(aliased.Local);
                    break;
            }
        }

        return exposed;
    }

    private TrylockResult? NewTrylock(IInvocationOperation call)
    {
        ApiEffects effects = context.EffectsOf(call.TargetMethod);
        if (effects.IsAnnotated)
        {
            return effects.EntersIfTrue.IsEmpty ? null
                : new TrylockResult(effects.EntersIfTrue.Select(s => (IdOf(s, call), OriginOf(call, s))).ToImmutableArray(), null);
        }

        // A helper's sections in this body's terms; one this body cannot name (a lock passed as an
        // expression with no path) makes it no trylock here, rather than a lock nobody can release.
        ImmutableArray<IMethodSymbol> targets = TargetsOf(call.TargetMethod, call, call.Instance);
        if (targets.Length != 1 || SummaryOf(targets[0]).EntersIfTrue is not { IsEmpty: false } entered)
            return null;
        IMethodSymbol callee = targets[0];
        SectionOrigin origin = CalleeOrigin(callee, call, call.Arguments);
        var sections = ImmutableArray.CreateBuilder<(SectionId, SectionOrigin)>(entered.Length);
        foreach (SectionId id in entered)
        {
            string? lockPath = RebaseFromCallee(id.Lock, callee, call.Arguments, call.Instance);
            if (id.Lock is not null && lockPath is null)
                return null;
            sections.Add((new SectionId(id.Kind, lockPath), origin));
        }

        return new TrylockResult(sections.MoveToImmutable(), null);
    }

    /// <summary>
    /// What a returned value is as a condition, for the body's summary: the sections of the trylock it is
    /// the untested result of (called here or kept in a local), empty for a constant false, null otherwise.
    /// </summary>
    private ImmutableArray<SectionId>? ReturnedCondition(IOperation returned, FlowState state)
    {
        returned = AccessPaths.Strip(returned);
        if (returned.ConstantValue is { HasValue: true, Value: false })
            return ImmutableArray<SectionId>.Empty;
        TrylockResult? trylock = HoldsTrylock(returned)
            ? Path(returned) is { } local && state.TryGetTrylock(local, out var kept) ? kept : null
            : TrylockOf(returned);
        if (trylock is { IsConstant: true, Known: false })
            return ImmutableArray<SectionId>.Empty;
        if (trylock is not { Known: null } || trylock.OnlyNarrows)
            return null;
        var ids = ImmutableArray.CreateBuilder<SectionId>(trylock.Sections.Length);
        foreach (var (id, _) in trylock.Sections)
        {
            if (id.Lock is { } lockPath && !AccessPaths.CanRebase(lockPath))
                return null;
            ids.Add(id);
        }

        return ids.MoveToImmutable();
    }

    // ---- Calls -------------------------------------------------------------------------------

    private FlowState OnCall(IMethodSymbol target, IOperation call, ImmutableArray<IArgumentOperation> arguments, IOperation? instance, FlowState state)
    {
        ApiEffects effects = context.EffectsOf(target);
        if (effects.IsAnnotated)
            return OnAnnotatedCall(target, effects, call, arguments, state);

        ImmutableArray<IMethodSymbol> targets = TargetsOf(target, call, instance);
        foreach (IMethodSymbol callee in targets)
            state = ApplySummary(callee, SummaryOf(callee), call, arguments, instance, state, applySections: targets.Length == 1);
        return state;
    }

    /// <summary>The source methods a call may run, looked up once per call.</summary>
    private ImmutableArray<IMethodSymbol> TargetsOf(IMethodSymbol target, IOperation call, IOperation? instance)
    {
        if (!callees.TryGetValue(call, out ImmutableArray<IMethodSymbol> targets))
        {
            targets = context.Targets.Of(target, instance);
            callees[call] = targets;
        }

        return targets;
    }

    private MethodSummary SummaryOf(IMethodSymbol callee)
    {
        if (callee.MethodKind != MethodKind.LocalFunction)
            return context.Summaries.Get(callee);
        if (localFunctionSummaries.TryGetValue(callee, out var known))
            return known;
        localFunctionSummaries[callee] = MethodSummary.Empty; // recursion: assume nothing
        // Only a body with local functions calls one, and such a body always has a graph.
        MethodSummary summary = Graph.GetLocalFunctionControlFlowGraphInScope(callee) is { } localGraph
            ? new BodyAnalysis(context, localGraph, localGraph.OriginalOperation, callee, localFunctionSummaries).Analyze(FlowState.Empty, false).Summary
            : MethodSummary.Empty;
        localFunctionSummaries[callee] = summary;
        return summary;
    }

    private FlowState OnAnnotatedCall(IMethodSymbol target, ApiEffects effects, IOperation call, ImmutableArray<IArgumentOperation> arguments, FlowState state)
    {
        // Sleeps, frees and callback registrations only feed the collector, which exists in the final
        // pass: the fixpoint skips building their paths and messages.
        if (collector is not null)
            ReportSleepAndFree(target, effects, call, arguments, state);

        if (effects.RequiresPreemptionDisabled)
            OnCpuAccess(call, state, new SleepPath(ImmutableArray<string>.Empty, target.Name + "()", target.Name, call.Syntax.GetLocation()));

        foreach (SectionSpec section in effects.Leaves)
            state = LeaveSection(IdOf(section, arguments), OriginOf(call, target, section, arguments), call, state);
        foreach (SectionSpec section in effects.Enters)
            state = state.Enter(IdOf(section, arguments), OriginOf(call, target, section, arguments));

        foreach (CallbackSpec callback in collector is null ? ImmutableArray<CallbackSpec>.Empty : effects.Callbacks)
        {
            if (SectionFacts.ForCallback(callback.Context) is not { } atomic || ArgumentFor(arguments, callback.DelegateParameter) is not { } handler)
                continue;
            var registration = new CallbackRegistration(atomic, CallbackDescription(target, callback), call.Syntax.GetLocation());
            switch (AccessPaths.Strip(handler.Value))
            {
                case IDelegateCreationOperation { Target: IFlowAnonymousFunctionOperation lambda }:
                    collector?.AddLambda(lambda, registration);
                    break;
                case IDelegateCreationOperation { Target: IMethodReferenceOperation { Method: { MethodKind: MethodKind.LocalFunction } local } }:
                    collector?.AddLocalCallback(local, registration);
                    break;
            }
        }

        return state;
    }

    private void ReportSleepAndFree(IMethodSymbol target, ApiEffects effects, IOperation call, ImmutableArray<IArgumentOperation> arguments, FlowState state)
    {
        if (effects.MaySleep)
        {
            OnSleep(call, state, new SleepPath(ImmutableArray<string>.Empty, target.Name, target.Name, call.Syntax.GetLocation()), null);
        }
        else if (effects.SleepIfGfpParameter is { } gfpParameter && ArgumentFor(arguments, gfpParameter) is { } mask)
        {
            var path = new SleepPath(ImmutableArray<string>.Empty, target.Name + " with " + TextOf(mask), target.Name, call.Syntax.GetLocation());
            OnConditionalSleep(call, state, path, mask);
        }

        if (effects.Frees is { } free && ArgumentFor(arguments, free.Parameter) is { } freed)
            CheckFree(call, target, free, arguments, freed, state, ImmutableArray<string>.Empty);
    }

    public static string CallbackDescription(IMethodSymbol registrar, CallbackSpec callback) =>
        callback.Context == CallbackContextKind.HardIrq
            ? "it runs as a hard-irq handler registered by " + registrar.Name
            : "it runs in softirq context as the callback registered by " + registrar.Name;

    private FlowState ApplySummary(IMethodSymbol callee, MethodSummary summary, IOperation call, ImmutableArray<IArgumentOperation> arguments,
        IOperation? instance, FlowState state, bool applySections)
    {
        if (summary.IsEmpty)
            return state;
        if (summary.Sleeps is { } sleeps)
            OnSleep(call, state, sleeps, null);
        if (summary.NeedsPreemptionOff is { } access)
            OnCpuAccess(call, state, access);
        if (collector is not null)
            ApplyConditionalEffects(callee, summary, call, arguments, state);
        return applySections && !summary.SectionChanges.IsEmpty ? ApplySectionChanges(callee, summary, call, arguments, instance, state) : state;
    }

    /// <summary>The sections a callee leaves changed on every path, renamed into the caller's terms (its own method: the lambdas below allocate).</summary>
    private FlowState ApplySectionChanges(IMethodSymbol callee, MethodSummary summary, IOperation call, ImmutableArray<IArgumentOperation> arguments, IOperation? instance, FlowState state)
    {
        foreach (SectionDelta delta in summary.SectionChanges)
        {
            string? lockPath = RebaseFromCallee(delta.Id.Lock, callee, arguments, instance);
            var id = new SectionId(delta.Id.Kind, lockPath);
            SectionOrigin origin = CalleeOrigin(callee, call, arguments);
            for (int i = 0; i < delta.Delta; i++)
                state = state.Enter(id, origin);
            for (int i = 0; i > delta.Delta; i--)
                state = LeaveSection(id, origin, call, state);
        }

        return state;
    }

    /// <summary>A call of a source method as the origin of the sections it changes, built once per call.</summary>
    private SectionOrigin CalleeOrigin(IMethodSymbol callee, IOperation call, ImmutableArray<IArgumentOperation> arguments) =>
        sectionOrigins.TryGetValue((call, null), out var known) ? known
            : Remember(call, null, new SectionOrigin(DisplayName(callee) + "(" + string.Join(", ", arguments.Select(a => TextOf(a))) + ")", call.Syntax.GetLocation()));

    /// <summary>What a callee does with a mask or a pointer its caller passes: only the final pass reports it.</summary>
    private void ApplyConditionalEffects(IMethodSymbol callee, MethodSummary summary, IOperation call, ImmutableArray<IArgumentOperation> arguments, FlowState state)
    {
        foreach (var pair in summary.SleepsIfGfp)
        {
            if (ArgumentAt(arguments, pair.Key) is { } mask)
            {
                string leaf = pair.Value.LeafName + " with " + TextOf(mask);
                OnConditionalSleep(call, state, pair.Value with { Leaf = leaf }, mask);
            }
        }

        foreach (var pair in summary.FreesParameter)
        {
            if (ArgumentAt(arguments, pair.Key) is { } freed)
            {
                var free = new FreeSpec(pair.Value.Accepts, "", null, null);
                CheckFree(call, callee, free, arguments, freed, state, pair.Value.Chain, pair.Value);
            }
        }
    }

    /// <summary>A path in the callee's terms (<c>$0.cache</c>) in this body's terms at the call, or null when it names nothing here.</summary>
    private string? RebaseFromCallee(string? path, IMethodSymbol callee, ImmutableArray<IArgumentOperation> arguments, IOperation? instance)
    {
        string? receiver = instance is null ? (callee.IsStatic ? null : AccessPaths.This) : Path(instance);
        return AccessPaths.Rebase(path, ordinal => Path(ArgumentAt(arguments, ordinal)?.Value), receiver);
    }

    // ---- Sleeping ----------------------------------------------------------------------------

    private void OnConditionalSleep(IOperation call, FlowState state, SleepPath path, IArgumentOperation mask)
    {
        switch (context.GfpSleeps(mask.Value))
        {
            case true:
                OnSleep(call, state, path, mask);
                break;
            case null when AccessPaths.ParameterOrdinal(Path(mask.Value)) is var ordinal and >= 0:
                collector?.SleepsIfGfp(ordinal, path.Through(ownerName));
                break;
        }
    }

    private void OnSleep(IOperation call, FlowState state, SleepPath path, IArgumentOperation? mask)
    {
        if (collector is null)
            return;
        if (state.MustAtomic() is not { } atomic)
        {
            collector.Sleeps(path.Through(ownerName));
            return;
        }

        string via = path.Chain.IsEmpty ? "" : ": reached via " + ChainText(path);
        string holder = atomic.FromCaller
            ? atomic.Origin.Description + " (line " + Line(atomic.Origin.Location) + ")"
            : atomic.Origin.Description + " at line " + Line(atomic.Origin.Location) + " holds an atomic section";
        var additional = ImmutableArray.Create(atomic.Origin.Location);
        if (!path.Chain.IsEmpty)
            additional = additional.Add(path.LeafLocation);
        var properties = ImmutableDictionary<string, string?>.Empty;
        if (path.Chain.IsEmpty && mask is not null)
            properties = properties.Add(FixProperties.GfpParameter, mask.Parameter?.Name);
        collector.Report(Descriptors.SleepInAtomic, call.Syntax.GetLocation(), additional, properties, path.Leaf, holder, via);
    }

    // ---- Per-CPU access ----------------------------------------------------------------------

    /// <summary>
    /// A call that needs preemption disabled, made while preemptible. A helper that callers in the
    /// compilation call leaves the pinning to them, as the kernel's helpers do: the summary carries the
    /// need up to each preemptible call. A method that nothing in the compilation calls, or that other
    /// assemblies can call, or a lambda, is reported here.
    /// </summary>
    private void OnCpuAccess(IOperation call, FlowState state, SleepPath path)
    {
        if (collector is null || state.MayPinCpu())
            return;
        if (owner is not null && context.Index.LeavesPinningToCallers(owner))
        {
            collector.NeedsPreemptionOff(path.Through(ownerName));
            return;
        }

        string via = path.Chain.IsEmpty ? "" : " (reached via " + ChainText(path) + ")";
        var additional = path.Chain.IsEmpty ? ImmutableArray<Location>.Empty : ImmutableArray.Create(path.LeafLocation);
        collector.Report(Descriptors.PreemptibleCpuAccess, call.Syntax.GetLocation(), additional, ImmutableDictionary<string, string?>.Empty,
            path.Leaf, AsCall(ownerName), via);
    }

    /// <summary>"f() → refill() → kmalloc": from this body through the callees to the leaf call.</summary>
    private string ChainText(SleepPath path) =>
        string.Join(" → ", new[] { ownerName }.Concat(path.Chain).Select(AsCall).Concat(new[] { path.LeafName }));

    /// <summary>A body named as a call; a lambda's name ("lambda at line 12") is a phrase and stays as it is.</summary>
    private static string AsCall(string name) => name.IndexOf(' ') < 0 ? name + "()" : name;

    // ---- Sections ----------------------------------------------------------------------------

    private SectionId IdOf(SectionSpec section, ImmutableArray<IArgumentOperation> arguments) =>
        new(section.Kind, section.LockParameter is null ? null : Path(ArgumentFor(arguments, section.LockParameter)?.Value));

    private SectionId IdOf(SectionSpec section, IInvocationOperation call) => IdOf(section, call.Arguments);

    private SectionOrigin OriginOf(IInvocationOperation call, SectionSpec section) =>
        OriginOf(call, call.TargetMethod, section, call.Arguments);

    /// <summary>A call's section origin (its message text), built once per call and section rather than at every visit.</summary>
    private SectionOrigin OriginOf(IOperation call, IMethodSymbol target, SectionSpec section, ImmutableArray<IArgumentOperation> arguments) =>
        sectionOrigins.TryGetValue((call, section), out SectionOrigin? origin) ? origin : Remember(call, section, NewOrigin(call, target, section, arguments));

    private SectionOrigin NewOrigin(IOperation call, IMethodSymbol target, SectionSpec section, ImmutableArray<IArgumentOperation> arguments)
    {
        string lockText = section.LockParameter is null ? "" : TextOf(ArgumentFor(arguments, section.LockParameter));
        string release = context.Catalog.ReleaseFor(target, name => TextOf(ArgumentFor(arguments, name)));
        return new SectionOrigin(target.Name + "(" + lockText + ")", call.Syntax.GetLocation(), release);
    }

    private SectionOrigin Remember(IOperation call, SectionSpec? section, SectionOrigin origin)
    {
        sectionOrigins[(call, section)] = origin;
        return origin;
    }

    private FlowState LeaveSection(SectionId id, SectionOrigin origin, IOperation call, FlowState state)
    {
        FlowState after = state.Leave(id, origin, out SectionCount? before);
        if (collector is not null && before is { Min: <= 0, Max: > 0 } && !ownerEffects.DeclaresSectionChange(id.Kind))
        {
            collector.Report(Descriptors.SectionImbalance, call.Syntax.GetLocation(), ImmutableArray.Create(before.Origin.Location),
                ImmutableDictionary<string, string?>.Empty,
                origin.Description + " leaves a section that " + before.Origin.Description + " at line " + Line(before.Origin.Location) + " entered on only some paths to it");
        }

        return after;
    }

    private void OnExit(ExitPoint exit, FlowState state)
    {
        if (collector is null)
            return;
        bool? returnsConstant = exit.Returned is { } value && AccessPaths.Strip(value).ConstantValue is { HasValue: true, Value: bool constant } ? constant : null;
        KeyValuePair<SectionId, SectionCount>[] own = state.Sections.IsEmpty ? System.Array.Empty<KeyValuePair<SectionId, SectionCount>>()
            : state.Sections.Entries().Where(p => !p.Value.FromCaller && p.Value.Max > 0).ToArray();
        // Only a bool method can be a trylock of its own; the others need no record of their exits.
        if (owner is IMethodSymbol { ReturnType.SpecialType: SpecialType.System_Boolean })
            collector.ExitHolds(returnsConstant, own.Where(p => p.Value.Min > 0).Select(p => p.Key).ToImmutableArray(), own.Select(p => p.Key).ToImmutableArray());

        // One report per entering call: spin_lock_irqsave's lock and irq sections are one imbalance.
        var held = own.Where(p => !ownerEffects.DeclaresSectionChange(p.Key.Kind)).GroupBy(p => p.Value.Origin.Location);
        foreach (var group in held)
        {
            // The section that names its lock says more ("spin_lock_irqsave(lk)", not "spin_lock_irqsave()");
            // choosing it also keeps the message independent of the state's iteration order.
            SectionOrigin origin = group.OrderBy(p => p.Key.Lock is null).ThenBy(p => p.Key.Kind).First().Value.Origin;
            Location location = ExitLocations.Of(exit, owner);
            var properties = ImmutableDictionary<string, string?>.Empty.Add(FixProperties.Release, origin.Release);
            string message = origin.Description + " at line " + Line(origin.Location) + " is still held when " + AsCall(ownerName) + " returns here"
                + (origin.Release.Length > 0 ? ": call " + origin.Release + " first" : "");
            if (returnsConstant == true)
                collector.ReportHeldAtReturnTrue(group.Select(p => p.Key).ToImmutableArray(), Descriptors.SectionImbalance, location, ImmutableArray.Create(origin.Location), properties, message);
            else
                collector.Report(Descriptors.SectionImbalance, location, ImmutableArray.Create(origin.Location), properties, message);
        }

        if (exit.Returned is { } returned)
        {
            collector.Returns(OriginsOf(returned, state));
            collector.ReturnsCondition(ReturnedCondition(returned, state));
        }
    }

    // ---- Memory ------------------------------------------------------------------------------

    /// <summary>The allocations a value may come from.</summary>
    private ImmutableArray<AllocationOrigin> OriginsOf(IOperation value, FlowState state)
    {
        IOperation stripped = AccessPaths.Strip(value);
        switch (stripped)
        {
            case IInvocationOperation call:
                return AllocationOf(call);
            case IFieldReferenceOperation or IPropertyReferenceOperation when Path(stripped) is { } member && state.TryGetOrigins(member, out var known):
                return known;
            case IFieldReferenceOperation field:
                return MemberOriginsAt(stripped, context.Index.OriginsOf(field.Field), field.Instance);
            case IPropertyReferenceOperation property:
                return MemberOriginsAt(stripped, context.Index.OriginsOf(property.Property), property.Instance);
            default:
                return Path(stripped) is { } path && state.TryGetOrigins(path, out var origins) ? origins : ImmutableArray<AllocationOrigin>.Empty;
        }
    }

    /// <summary>
    /// A member's origins as this access sees them: caches named relative to the member's object are
    /// renamed to this access's instance (<c>other.buf</c> came from <c>other.cache</c>), once per access,
    /// so that every visit sees the same array.
    /// </summary>
    private ImmutableArray<AllocationOrigin> MemberOriginsAt(IOperation access, ImmutableArray<AllocationOrigin> origins, IOperation? instance)
    {
        if (!origins.Any(o => o.Owner is { } owner && AccessPaths.IsAtOrBelow(owner, AccessPaths.FieldOwner)))
            return origins;
        if (!memberOrigins.TryGetValue(access, out var renamed))
        {
            string? at = Path(instance);
            renamed = origins.Select(o => o with { Owner = AccessPaths.AtAccess(o.Owner, at) }).Distinct().ToImmutableArray();
            memberOrigins[access] = renamed;
        }

        return renamed;
    }

    /// <summary>What a call's result may come from, worked out once per call.</summary>
    private ImmutableArray<AllocationOrigin> AllocationOf(IInvocationOperation call)
    {
        if (!allocations.TryGetValue(call, out var origins))
        {
            origins = ResultOriginsOf(call);
            allocations[call] = origins;
        }

        return origins;
    }

    private ImmutableArray<AllocationOrigin> ResultOriginsOf(IInvocationOperation call)
    {
        ApiEffects effects = context.EffectsOf(call.TargetMethod);
        if (effects.Allocates is { } allocation)
            return ImmutableArray.Create(OriginOf(allocation, call.TargetMethod.Name, call.Arguments, call.Syntax.GetLocation(), Path));
        if (effects.IsAnnotated)
            return ImmutableArray<AllocationOrigin>.Empty;
        var result = ImmutableArray<AllocationOrigin>.Empty;
        // The cache a helper's result came from is named in the helper's terms: rename it into ours.
        foreach (IMethodSymbol callee in context.Targets.Of(call.TargetMethod, call.Instance))
        {
            result = result.AddRange(SummaryOf(callee).Returns.Select(origin => origin.Owner is null ? origin
                : origin with { Owner = RebaseFromCallee(origin.Owner, callee, call.Arguments, call.Instance) }));
        }

        return result;
    }

    public static AllocationOrigin OriginOf(AllocationSpec allocation, string allocator, ImmutableArray<IArgumentOperation> arguments, Location location, System.Func<IOperation?, string?> path)
    {
        int? order = allocation.OrderParameter is null ? 0 : ConstantInt(ArgumentFor(arguments, allocation.OrderParameter)?.Value);
        string? owner = allocation.OwnerParameter is null ? null : path(ArgumentFor(arguments, allocation.OwnerParameter)?.Value);
        return new AllocationOrigin(allocation.Family, order, owner, allocator, location);
    }

    private static int? ConstantInt(IOperation? value) =>
        value?.ConstantValue is { HasValue: true, Value: int order } ? order : null;

    private void CheckFree(IOperation call, IMethodSymbol freer, FreeSpec free, ImmutableArray<IArgumentOperation> arguments,
        IArgumentOperation freed, FlowState state, ImmutableArray<string> chain, FreeEffect? through = null)
    {
        if (collector is null)
            return;
        ImmutableArray<AllocationOrigin> origins = OriginsOf(freed.Value, state);
        int? freeOrder = through is not null ? through.Order
            : free.OrderParameter is null ? 0 : ConstantInt(ArgumentFor(arguments, free.OrderParameter)?.Value);
        string freeName = through is null ? freer.Name : through.Freer.Name + " (in " + string.Join(" → ", chain.Select(AsCall)) + ")";
        IMethodSymbol primitive = through?.Freer ?? freer;
        if (origins.IsEmpty)
        {
            if (AccessPaths.ParameterOrdinal(Path(freed.Value)) is var ordinal and >= 0)
            {
                collector.Frees(ordinal, through is null
                    ? new FreeEffect(free.Accepts, freer, ImmutableArray.Create(ownerName), freeOrder, call.Syntax.GetLocation())
                    : through.Through(ownerName));
            }

            return;
        }

        foreach (AllocationOrigin origin in origins)
        {
            string? problem = null;
            var properties = ImmutableDictionary<string, string?>.Empty;
            if ((origin.Family & ~free.Accepts) != 0)
            {
                string suggestions = context.Catalog.FreesFor(origin.Family, primitive);
                problem = suggestions.Length == 0 ? "" : ": use " + suggestions;
                if (through is null)
                    properties = properties.Add(FixProperties.Free, context.Catalog.FirstFreeFor(origin.Family, primitive));
                // A helper's allocation names its cache in the helper's terms; this path is the one the call passed.
                if (through is null && origin.Owner is not null)
                    properties = properties.Add(FixProperties.Owner, origin.Owner);
            }
            else if (through is null && origin.Family == Family.Pages && origin.Order is { } allocated && freeOrder is { } released && allocated != released)
            {
                problem = " of order " + released + ", but it was allocated with order " + allocated;
                properties = properties.Add(FixProperties.Order, allocated.ToString(System.Globalization.CultureInfo.InvariantCulture))
                    .Add(FixProperties.OrderParameter, free.OrderParameter);
            }
            else if (through is null && free.OwnerParameter is not null && origin.Owner is not null
                && Path(ArgumentFor(arguments, free.OwnerParameter)?.Value) is { } owner && owner != origin.Owner)
            {
                problem = " to " + TextOf(ArgumentFor(arguments, free.OwnerParameter)) + ", which is not the cache or pool it came from";
            }

            if (problem is null)
                continue;
            collector.Report(Descriptors.MismatchedFree, call.Syntax.GetLocation(), ImmutableArray.Create(origin.Location), properties,
                origin.Allocator, Line(origin.Location), freeName, problem);
        }
    }
}
