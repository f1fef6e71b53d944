using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

/// <summary>The result of analysing one body: its own findings, what callers need to know, and the nested bodies it starts.</summary>
internal sealed record BodyResult(
    ImmutableArray<Finding> Findings,
    MethodSummary Summary,
    ImmutableArray<(IFlowAnonymousFunctionOperation Lambda, CallbackRegistration? Context)> Lambdas,
    ImmutableDictionary<IMethodSymbol, CallbackRegistration> LocalCallbacks);

/// <summary>Where a callback is registered to run in atomic context.</summary>
internal sealed record CallbackRegistration(Section Context, string Description, Location Location);

/// <summary>
/// A forward worklist analysis over one control-flow graph. The fixpoint runs silently; a final pass
/// over every reached block, from its joined entry state, produces the findings and the summary. A
/// straight-line body (<see cref="StraightLineBody"/>) is the same single pass over its statements,
/// without a graph.
/// </summary>
internal sealed partial class BodyAnalysis
{
    private const int MaxVisitsPerBlock = 40;

    private readonly KmemGuardContext context;
    private readonly ControlFlowGraph? graph;
    private readonly IOperation root;
    private readonly IMethodSymbol? owner;
    private readonly string ownerName;
    private readonly ApiEffects ownerEffects;
    private readonly FlowState[] entryStates;
    private readonly int[] visits;
    private readonly IOperation[]?[] steps;
    private readonly List<IOperation> stepBuffer = new();
    private readonly int[]?[] handlers;
    private readonly Dictionary<CaptureId, string> captureNames = new();
    private readonly Func<CaptureId, string> captureName;
    private readonly Dictionary<IOperation, string?> paths = new();
    private readonly Dictionary<(IOperation Call, SectionSpec? Section), SectionOrigin> sectionOrigins = new();
    private readonly Dictionary<IInvocationOperation, ImmutableArray<AllocationOrigin>> allocations = new();
    private readonly Dictionary<IOperation, ImmutableArray<AllocationOrigin>> memberOrigins = new();
    private readonly Dictionary<IInvocationOperation, TrylockResult?> trylocks = new();
    private readonly Dictionary<IOperation, ImmutableArray<IMethodSymbol>> callees = new();
    private readonly Dictionary<IMethodSymbol, MethodSummary> localFunctionSummaries;
    private HashSet<ILocalSymbol>? exposedLocals;
    private Collector? collector;

    private BodyAnalysis(KmemGuardContext context, ControlFlowGraph? graph, IOperation root, IMethodSymbol? owner,
        Dictionary<IMethodSymbol, MethodSummary> localFunctionSummaries)
    {
        this.context = context;
        this.graph = graph;
        this.root = root;
        this.owner = owner;
        this.localFunctionSummaries = localFunctionSummaries;
        ownerName = DisplayName(owner);
        captureName = CaptureName; // once: a method group converted at every path lookup would allocate each time
        ownerEffects = owner is null ? ApiEffects.None : context.EffectsOf(owner);
        int blocks = graph?.Blocks.Length ?? 0;
        entryStates = new FlowState[blocks];
        visits = new int[blocks];
        steps = new IOperation[]?[blocks];
        handlers = new int[]?[blocks];
    }

    /// <summary>The graph of a body analysed as one; a straight-line body has none and never gets here.</summary>
    private ControlFlowGraph Graph => graph ?? throw new InvalidOperationException("A straight-line body is analysed without a control-flow graph.");

    public static BodyResult Run(KmemGuardContext context, ControlFlowGraph graph, IMethodSymbol? owner, FlowState entry, bool collectFindings)
        => new BodyAnalysis(context, graph, graph.OriginalOperation, owner, new Dictionary<IMethodSymbol, MethodSummary>(SymbolEqualityComparer.Default))
            .Analyze(entry, collectFindings);

    /// <summary>A straight-line body: one pass over its statements, from the entry to the return at its end.</summary>
    public static BodyResult Run(KmemGuardContext context, StraightLineBody body, IMethodSymbol? owner, FlowState entry)
        => new BodyAnalysis(context, null, body.Root, owner, new Dictionary<IMethodSymbol, MethodSummary>(SymbolEqualityComparer.Default))
            .Analyze(body, entry);

    private BodyResult Analyze(StraightLineBody body, FlowState entry)
    {
        collector = new Collector(collectFindings: true);
        stepBuffer.Clear();
        foreach (IOperation statement in body.Statements)
            CollectSteps(statement, stepBuffer);
        if (body.Return?.ReturnedValue is { } returnedValue)
            CollectSteps(returnedValue, stepBuffer);
        FlowState state = entry;
        foreach (IOperation operation in stepBuffer)
            state = Step(operation, state);
        OnExit(ExitPoint.Of(body), state);
        return collector.Build(new List<FlowState> { state });
    }

    public static string DisplayName(ISymbol? symbol) => symbol switch
    {
        null => "initializer",
        IMethodSymbol { MethodKind: MethodKind.AnonymousFunction } lambda =>
            "lambda at line " + Line(lambda.Locations.FirstOrDefault()),
        IMethodSymbol { MethodKind: MethodKind.Constructor } ctor => ctor.ContainingType.Name,
        _ => symbol.Name,
    };

    public static int Line(Location? location) =>
        location is null ? 0 : location.GetLineSpan().StartLinePosition.Line + 1;

    private BodyResult Analyze(FlowState entry, bool collectFindings)
    {
        var work = new Worklist(Graph.Blocks.Length);
        entryStates[0] = entry;
        work.Add(0);
        while (!work.IsEmpty)
        {
            int ordinal = work.TakeLowest();
            if (++visits[ordinal] > MaxVisitsPerBlock)
                continue;
            BasicBlock block = Graph.Blocks[ordinal];
            FlowState state = Transfer(block, entryStates[ordinal]);
            foreach (var (branch, branchState) in SuccessorsOf(block, state))
                Propagate(branch, branchState, work);
        }

        collector = new Collector(collectFindings);
        var exits = new List<FlowState>();
        foreach (BasicBlock block in Graph.Blocks)
        {
            if (entryStates[block.Ordinal] is not { } state || block.Kind == BasicBlockKind.Exit)
                continue;
            FlowState after = Transfer(block, state);
            foreach (var (branch, branchState) in SuccessorsOf(block, after))
            {
                if (branch.Destination is null || branch.Semantics is ControlFlowBranchSemantics.Throw or ControlFlowBranchSemantics.Rethrow)
                    continue;
                FlowState through = ThroughFinally(branch, branchState, null);
                if (branch.Destination.Kind != BasicBlockKind.Exit)
                    continue;
                exits.Add(through);
                OnExit(ExitPoint.Of(block, branch), through);
            }
        }

        return collector.Build(exits);
    }

    private void Propagate(ControlFlowBranch branch, FlowState state, Worklist? work)
    {
        if (branch.Destination is null || branch.Semantics is ControlFlowBranchSemantics.Throw or ControlFlowBranchSemantics.Rethrow)
            return;
        state = ThroughFinally(branch, state, work);
        if (branch.Destination.Kind != BasicBlockKind.Exit)
            JoinInto(branch.Destination.Ordinal, state, work);
    }

    private void JoinInto(int ordinal, FlowState state, Worklist? work)
    {
        FlowState? old = entryStates[ordinal];
        FlowState joined = old is null ? state : FlowState.Join(old, state);
        if (old is not null && old.Equals(joined))
            return;
        entryStates[ordinal] = joined;
        work?.Add(ordinal);
        // An exception may leave anywhere in a try block: its catch handlers start from any state in it.
        foreach (int handler in HandlersOf(ordinal))
            JoinInto(handler, joined, work);
    }

    /// <summary>The first blocks of the catch handlers around a block, found once per block.</summary>
    private int[] HandlersOf(int ordinal)
    {
        if (handlers[ordinal] is { } known)
            return known;
        List<int>? found = null;
        for (ControlFlowRegion? region = Graph.Blocks[ordinal].EnclosingRegion; region is not null; region = region.EnclosingRegion)
        {
            if (region.Kind == ControlFlowRegionKind.Try && region.EnclosingRegion is { Kind: ControlFlowRegionKind.TryAndCatch } tryAndCatch)
            {
                foreach (ControlFlowRegion handler in tryAndCatch.NestedRegions)
                {
                    if (handler.Kind is ControlFlowRegionKind.Catch or ControlFlowRegionKind.FilterAndHandler)
                        (found ??= new List<int>()).Add(handler.FirstBlockOrdinal);
                }
            }
        }

        return handlers[ordinal] = found?.ToArray() ?? System.Array.Empty<int>();
    }

    /// <summary>Runs the state through the finally regions a branch leaves, in order.</summary>
    private FlowState ThroughFinally(ControlFlowBranch branch, FlowState state, Worklist? work)
    {
        foreach (ControlFlowRegion region in branch.FinallyRegions)
            state = RunRegion(region, state, work is not null);
        return state;
    }

    private FlowState RunRegion(ControlFlowRegion region, FlowState entry, bool recordEntries)
    {
        var local = new Dictionary<int, FlowState> { [region.FirstBlockOrdinal] = entry };
        var pending = new Worklist(Graph.Blocks.Length);
        pending.Add(region.FirstBlockOrdinal);
        var count = new Dictionary<int, int>();
        FlowState? result = null;
        while (!pending.IsEmpty)
        {
            int ordinal = pending.TakeLowest();
            count[ordinal] = count.TryGetValue(ordinal, out int n) ? n + 1 : 1;
            if (count[ordinal] > MaxVisitsPerBlock)
                continue;
            if (recordEntries)
                entryStates[ordinal] = entryStates[ordinal] is { } seen ? FlowState.Join(seen, local[ordinal]) : local[ordinal];
            BasicBlock block = Graph.Blocks[ordinal];
            FlowState after = Transfer(block, local[ordinal]);
            foreach (var (branch, state) in SuccessorsOf(block, after))
            {
                FlowState through = ThroughFinally(branch, state, null);
                if (branch.Semantics == ControlFlowBranchSemantics.StructuredExceptionHandling || branch.Destination is null)
                {
                    result = result is null ? through : FlowState.Join(result, through);
                    continue;
                }

                int target = branch.Destination.Ordinal;
                if (target < region.FirstBlockOrdinal || target > region.LastBlockOrdinal)
                    continue;
                FlowState joined = local.TryGetValue(target, out var old) ? FlowState.Join(old, through) : through;
                if (old is null || !old.Equals(joined))
                {
                    local[target] = joined;
                    pending.Add(target);
                }
            }
        }

        return result ?? entry;
    }

    /// <summary>The successors a block's state flows to; a branch that a known trylock local rules out is not taken.</summary>
    private Successors SuccessorsOf(BasicBlock block, FlowState state)
    {
        if (block.ConditionalSuccessor is { } conditional)
        {
            bool conditionalTakenWhen = block.ConditionKind == ControlFlowConditionKind.WhenTrue;
            var taken = AfterCondition(block.BranchValue, conditionalTakenWhen, state) is { } whenTaken ? (conditional, whenTaken) : default;
            var notTaken = block.FallThroughSuccessor is { } otherwise && AfterCondition(block.BranchValue, !conditionalTakenWhen, state) is { } whenNot
                ? (otherwise, whenNot) : default;
            return new Successors(taken, notTaken);
        }

        return new Successors(block.FallThroughSuccessor is { } next ? (next, state) : default, default);
    }

    /// <summary>At most two (branch, state) pairs, a missing one with a null branch; a value, so that a visit allocates no iterator.</summary>
    private readonly struct Successors
    {
        private readonly (ControlFlowBranch? Branch, FlowState? State) first;
        private readonly (ControlFlowBranch? Branch, FlowState? State) second;

        public Successors((ControlFlowBranch? Branch, FlowState? State) first, (ControlFlowBranch? Branch, FlowState? State) second)
        {
            this.first = first;
            this.second = second;
        }

        public Enumerator GetEnumerator() => new(this);

        public struct Enumerator
        {
            private readonly Successors successors;
            private int index;

            public Enumerator(Successors successors)
            {
                this.successors = successors;
                index = -1;
            }

            public (ControlFlowBranch Branch, FlowState State) Current =>
                index == 0 ? (successors.first.Branch!, successors.first.State!) : (successors.second.Branch!, successors.second.State!);

            public bool MoveNext()
            {
                while (++index < 2)
                {
                    if ((index == 0 ? successors.first.Branch : successors.second.Branch) is not null)
                        return true;
                }

                return false;
            }
        }
    }

    /// <summary>
    /// On the branch where a trylock returned true, its sections are held: tested directly, through the
    /// bool local its result was stored in, or through an assignment in the condition. Null when the
    /// branch cannot be taken.
    /// </summary>
    private FlowState? AfterCondition(IOperation? condition, bool value, FlowState state)
    {
        while (condition is not null)
        {
            condition = AccessPaths.Strip(condition);
            if (condition is IUnaryOperation { OperatorKind: UnaryOperatorKind.Not } not)
            {
                condition = not.Operand;
                value = !value;
                continue;
            }

            // ok == false, ok != true, spin_trylock(lk) == true
            if (condition is IBinaryOperation { OperatorKind: BinaryOperatorKind.Equals or BinaryOperatorKind.NotEquals } comparison
                && BoolOperand(comparison) is var (tested, constant))
            {
                condition = tested;
                value = comparison.OperatorKind == BinaryOperatorKind.Equals ? value == constant : value != constant;
                continue;
            }

            // if (!(ok = spin_trylock(lk))): the branch tests the value the assignment stores. Stored in a
            // local or a field, it is that holder's trylock (set when the branch value was visited), so a
            // later test of the holder knows the branch was taken; stored anywhere else, the call is tested directly.
            if (condition is ISimpleAssignmentOperation assignment)
            {
                if (HoldsTrylock(assignment.Target) && Path(assignment.Target) is { } stored && state.TryGetTrylock(stored, out var assigned))
                    return AfterTrylockTest(stored, assigned, value, state);
                condition = assignment.Value;
                continue;
            }

            // ok is false
            if (condition is IIsPatternOperation { Pattern: IConstantPatternOperation { Value.ConstantValue: { HasValue: true, Value: bool matched } } } pattern)
            {
                condition = pattern.Value;
                value = value == matched;
                continue;
            }

            break;
        }

        switch (condition)
        {
            case IInvocationOperation call when value && TrylockOf(call) is { } called:
                foreach (var (id, origin) in called.Sections)
                    state = state.Enter(id, origin);
                return state;
            case ILocalReferenceOperation or IFieldReferenceOperation when Path(condition) is { } local && state.TryGetTrylock(local, out var trylock):
                return AfterTrylockTest(local, trylock, value, state);
            default:
                return state;
        }
    }

    private static (IOperation Tested, bool Constant)? BoolOperand(IBinaryOperation comparison) =>
        comparison.RightOperand.ConstantValue is { HasValue: true, Value: bool right } ? (comparison.LeftOperand, right)
        : comparison.LeftOperand.ConstantValue is { HasValue: true, Value: bool left } ? (comparison.RightOperand, left)
        : null;

    private static FlowState? AfterTrylockTest(string local, TrylockResult trylock, bool value, FlowState state)
    {
        if (trylock.Known is { } known)
            return known == value ? state : null;
        if (value)
        {
            foreach (var (id, origin) in trylock.Sections)
                state = state.Enter(id, origin);
        }

        return state.Narrowed(value ? trylock.IfTrue : trylock.IfFalse).WithTrylock(local, trylock.Tested(value));
    }

    private FlowState Transfer(BasicBlock block, FlowState state)
    {
        foreach (IOperation operation in StepsOf(block))
            state = Step(operation, state);
        return state;
    }
}
