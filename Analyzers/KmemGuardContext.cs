using System;
using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using KmemGuard.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers;

/// <summary>
/// Per-compilation state shared by all KmemGuard analyzers: the attribute symbols, the GFP bit that
/// means "may sleep", the caches of API effects and method summaries, and each body's findings
/// (computed once, whichever rule's analyzer asks first).
/// </summary>
internal sealed class KmemGuardContext
{
    /// <summary>__GFP_DIRECT_RECLAIM's value in the kernel, used when the compilation does not define the constant.</summary>
    private const ulong DefaultReclaimBit = 0x400;

    private static readonly ConditionalWeakTable<Compilation, StrongBox<KmemGuardContext?>> Contexts = new();

    private readonly ConcurrentDictionary<IMethodSymbol, ApiEffects> effects = new(SymbolEqualityComparer.Default);
    private readonly ConcurrentDictionary<SyntaxNode, BodyFindings> bodies = new();
    private readonly ConcurrentDictionary<SyntaxTree, WeakReference<SemanticModel>> models = new();
    private readonly Compilation compilation;
    private readonly AnnotationSymbols symbols;
    private readonly ulong reclaimBit;
    private readonly Func<IMethodSymbol, ApiEffects> readEffects;

    private KmemGuardContext(Compilation compilation, AnnotationSymbols symbols)
    {
        this.compilation = compilation;
        this.symbols = symbols;
        reclaimBit = ReadReclaimBit(compilation);
        readEffects = method => ApiEffects.Read(method, symbols);
        Summaries = new SummaryProvider(this, compilation);
        Index = new CompilationIndex(this, compilation);
        Targets = new CallTargets(this, compilation);
        Catalog = new ApiCatalog(this, compilation);
    }

    public SummaryProvider Summaries { get; }
    public CompilationIndex Index { get; }
    public CallTargets Targets { get; }
    public ApiCatalog Catalog { get; }

    /// <summary>
    /// One semantic model per tree for summaries and indexes, so that callees in the same tree share
    /// their binding. While the driver analyses a tree, GetSemanticModel gives the driver's own model;
    /// after that a new one, which binds again. Held weakly: a model holds the bound trees of its whole
    /// file, and pinning every file's for the rest of the build made the collector's work grow faster
    /// than the build.
    /// </summary>
#pragma warning disable RS1030 // Summaries and indexes need other trees' models; the driver only offers the current one.
    public SemanticModel ModelOf(SyntaxTree tree)
    {
        if (models.TryGetValue(tree, out var known) && known.TryGetTarget(out var model))
            return model;
        model = compilation.GetSemanticModel(tree);
        models[tree] = new WeakReference<SemanticModel>(model);
        return model;
    }
#pragma warning restore RS1030

    /// <summary>The context, or null when the compilation does not reference KmemGuard's annotations.</summary>
    public static KmemGuardContext? For(Compilation compilation) =>
        Contexts.GetValue(compilation, c => new StrongBox<KmemGuardContext?>(
            AnnotationSymbols.TryCreate(c) is { } symbols ? new KmemGuardContext(c, symbols) : null)).Value;

    public ApiEffects EffectsOf(IMethodSymbol method)
    {
        method = method.ReducedFrom ?? method;
        // One delegate for all lookups: a lambda here would allocate at every call, and this runs at every call visited.
        return effects.GetOrAdd(method.OriginalDefinition, readEffects);
    }

    /// <summary>Whether a GFP mask allows sleeping, or null when its value is not a compile-time constant.</summary>
    public bool? GfpSleeps(IOperation mask)
    {
        if (mask.ConstantValue is not { HasValue: true, Value: { } value })
            return null;
        ulong bits = value switch
        {
            sbyte or short or int or long => unchecked((ulong)Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)),
            byte or ushort or uint or ulong => Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture),
            _ => 0,
        };
        return (bits & reclaimBit) != 0;
    }

    private static ulong ReadReclaimBit(Compilation compilation)
    {
        IFieldSymbol? field = compilation.GetTypeByMetadataName("KmemGuard.Kernel")?
            .GetMembers("__GFP_DIRECT_RECLAIM").OfType<IFieldSymbol>().FirstOrDefault(f => f.HasConstantValue);
        return field?.ConstantValue is { } value
            ? Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture)
            : DefaultReclaimBit;
    }

    /// <summary>All findings of the bodies in one operation block (the method, its lambdas and local functions).</summary>
    public ImmutableArray<Finding> FindingsOf(OperationBlockAnalysisContext block)
    {
        IOperation? root = block.OperationBlocks.FirstOrDefault(IsAnalyzableRoot);
        if (root is null)
            return ImmutableArray<Finding>.Empty;
        // Every rule's analyzer asks for the same body; the first one analyses it.
        if (!bodies.TryGetValue(root.Syntax, out var body))
            body = bodies.GetOrAdd(root.Syntax, new BodyFindings(block));
        return body.Get(this);
    }

    /// <summary>
    /// One body's findings, made by whichever rule's analyzer asks first while the others wait; the block
    /// is kept only until then. One object per body, where a Lazy with a closure made four.
    /// </summary>
    private sealed class BodyFindings
    {
        private readonly object gate = new();
        private OperationBlockAnalysisContext? pending;
        private ImmutableArray<Finding> findings;

        public BodyFindings(OperationBlockAnalysisContext block) => pending = block;

        public ImmutableArray<Finding> Get(KmemGuardContext context)
        {
            lock (gate)
            {
                if (pending is { } block)
                {
                    findings = context.AnalyzeBlocks(block);
                    pending = null;
                }

                return findings;
            }
        }
    }

    private static bool IsAnalyzableRoot(IOperation operation) =>
        operation.Kind is OperationKind.MethodBody or OperationKind.ConstructorBody or OperationKind.Block
            or OperationKind.FieldInitializer or OperationKind.PropertyInitializer;

    private ImmutableArray<Finding> AnalyzeBlocks(OperationBlockAnalysisContext block)
    {
        var findings = ImmutableArray.CreateBuilder<Finding>(0); // most bodies have none
        IMethodSymbol? owner = block.OwningSymbol as IMethodSymbol;
        foreach (IOperation root in block.OperationBlocks.Where(IsAnalyzableRoot))
        {
            Exposure exposure = ExposureOf(root);
            FlowState entry = exposure == Exposure.None ? FlowState.Empty : EntryOf(owner, null);
            if (exposure == Exposure.None || exposure == Exposure.SleepsOnly && ReferenceEquals(entry, FlowState.Empty))
            {
                // Nothing here can be reported: the body's summary, if a caller needs one, is made on demand.
                if (owner is not null)
                    Summaries.Discard(owner);
                continue;
            }

            if (ReferenceEquals(entry, FlowState.Empty) && owner is not null && Summaries.Claim(owner, root) is { } analyzed)
            {
                AddFindings(analyzed.NestedGraphs, analyzed.Result, findings, block.CancellationToken);
                continue;
            }

            if (StraightLineBody.Of(StraightLineBody.RootOf(root)) is { } straight)
            {
                block.CancellationToken.ThrowIfCancellationRequested();
                BodyResult result = BodyAnalysis.Run(this, straight, owner, entry);
                if (owner is not null && ReferenceEquals(entry, FlowState.Empty))
                    Summaries.Offer(owner, result.Summary);
                findings.AddRange(result.Findings);
                continue;
            }

            AnalyzeGraph(block.GetControlFlowGraph(root), owner, entry, findings, isTopLevel: true, block.CancellationToken);
        }

        return findings.ToImmutable();
    }

    /// <summary>What a body's calls can lead to, as far as its own findings go.</summary>
    private enum Exposure
    {
        /// <summary>No call with an annotation or a summary that says anything.</summary>
        None,

        /// <summary>Calls that may sleep and nothing else a rule reports: a finding needs an atomic context from the body's entry.</summary>
        SleepsOnly,

        /// <summary>A call that enters or leaves a section, frees, or needs preemption off; or a lambda or local function, which starts a body of its own.</summary>
        Reportable,
    }

    /// <summary>
    /// Cheap pre-scan, before any graph is built: a body whose calls can only sleep (allocations with a
    /// mask, mutex_lock, msleep, helpers that do those) cannot produce a finding unless it starts in
    /// atomic context, and much driver code that allocates is such a body.
    /// </summary>
    private Exposure ExposureOf(IOperation root)
    {
        var exposure = Exposure.None;
        foreach (IOperation operation in root.Descendants())
        {
            Exposure step = operation switch
            {
                IInvocationOperation call => ExposureOf(call.TargetMethod, call.Instance),
                IObjectCreationOperation { Constructor: { } constructor } => ExposureOf(constructor, null),
                IAnonymousFunctionOperation or ILocalFunctionOperation => Exposure.Reportable,
                _ => Exposure.None,
            };
            if (step == Exposure.Reportable)
                return step;
            if (step > exposure)
                exposure = step;
        }

        return exposure;
    }

    private Exposure ExposureOf(IMethodSymbol target, IOperation? instance)
    {
        ApiEffects effects = EffectsOf(target);
        if (effects.IsAnnotated)
            return effects.CanBeReported ? Exposure.Reportable : effects.MaySleepAtAll ? Exposure.SleepsOnly : Exposure.None;
        var exposure = Exposure.None;
        foreach (IMethodSymbol callee in Targets.Of(target, instance))
        {
            MethodSummary summary = Summaries.Get(callee);
            if (summary.CanBeReported)
                return Exposure.Reportable;
            if (summary.MaySleepAtAll)
                exposure = Exposure.SleepsOnly;
        }

        return exposure;
    }

    private void AnalyzeGraph(ControlFlowGraph graph, IMethodSymbol? owner, FlowState entry, ImmutableArray<Finding>.Builder findings,
        bool isTopLevel, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        BodyResult result = BodyAnalysis.Run(this, graph, owner, entry, collectFindings: true);
        if (isTopLevel && owner is not null && ReferenceEquals(entry, FlowState.Empty))
            Summaries.Offer(owner, result.Summary);
        AddFindings(graph, result, findings, cancellation);
    }

    /// <summary>A body's own findings, then those of the lambdas and local functions it starts, each from its own entry context.</summary>
    private void AddFindings(ControlFlowGraph? graph, BodyResult result, ImmutableArray<Finding>.Builder findings, CancellationToken cancellation)
    {
        findings.AddRange(result.Findings);
        if (graph is null)
            return;
        foreach (var (lambda, registration) in result.Lambdas)
            AnalyzeGraph(graph.GetAnonymousFunctionControlFlowGraph(lambda), lambda.Symbol, EntryOf(lambda.Symbol, registration), findings, false, cancellation);
        foreach (IMethodSymbol local in graph.LocalFunctions)
        {
            result.LocalCallbacks.TryGetValue(local, out var registration);
            AnalyzeGraph(graph.GetLocalFunctionControlFlowGraph(local), local, EntryOf(local, registration), findings, false, cancellation);
        }
    }

    /// <summary>The context a body starts in: a callback's, or the one its own annotations promise.</summary>
    private FlowState EntryOf(IMethodSymbol? owner, CallbackRegistration? registration)
    {
        FlowState entry = FlowState.Empty;
        if (owner is null)
            return entry;
        if (registration is null && owner.MethodKind is MethodKind.Ordinary)
            registration = Index.CallbackOf(owner);
        if (registration is not null)
            entry = entry.Enter(new SectionId(registration.Context, null), new SectionOrigin(registration.Description, registration.Location), fromCaller: true);
        if (EffectsOf(owner).RequiresPreemptionDisabled)
        {
            Location location = owner.Locations.FirstOrDefault() ?? Location.None;
            entry = entry.Enter(new SectionId(Section.PreemptDisabled, null),
                new SectionOrigin("its caller, as [RequiresPreemptionDisabled] requires,", location), fromCaller: true);
        }

        return entry;
    }
}
