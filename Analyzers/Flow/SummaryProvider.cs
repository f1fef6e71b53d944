using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;
using Microsoft.CodeAnalysis.Text;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// A body analysed from an empty entry state, with the graph its nested lambdas and local functions come
/// from, or null when it has none: a body waits here until the driver reaches its method, often files
/// later, and a graph kept that long is promoted by the collector instead of dying young.
/// </summary>
internal sealed record AnalyzedBody(SyntaxNode Body, ControlFlowGraph? NestedGraphs, BodyResult Result)
{
    public static AnalyzedBody Of(ControlFlowGraph graph, BodyResult result) => new(graph.OriginalOperation.Syntax,
        result.Lambdas.IsEmpty && graph.LocalFunctions.IsEmpty ? null : graph, result);
}

/// <summary>
/// Computes a source method's summary on demand from its own operation tree and caches it for the
/// compilation. A method already being summarized on this thread (recursion) is assumed to do nothing;
/// a summary that relied on that assumption for a method still open is not cached, so that the order
/// in which bodies are analyzed cannot change the result.
/// The same run collects the method's findings: when its own findings pass starts from the same empty
/// state, it takes them instead of analysing the body a second time.
/// </summary>
internal sealed class SummaryProvider
{
    private const int MaxDepth = 24;

    [ThreadStatic]
    private static HashSet<IMethodSymbol>? inProgress;

    [ThreadStatic]
    private static HashSet<IMethodSymbol>? cutAt;

    /// <summary>How many times this thread assumed a callee does nothing (recursion or depth); a run that saw one has partial findings.</summary>
    [ThreadStatic]
    private static int assumptions;

    private readonly KmemGuardContext context;
    private readonly Compilation compilation;
    private readonly ConcurrentDictionary<IMethodSymbol, MethodSummary> summaries = new(SymbolEqualityComparer.Default);
    private readonly ConcurrentDictionary<IMethodSymbol, AnalyzedBody> unclaimedBodies = new(SymbolEqualityComparer.Default);

    public SummaryProvider(KmemGuardContext context, Compilation compilation)
    {
        this.context = context;
        this.compilation = compilation;
    }

    public MethodSummary Get(IMethodSymbol method)
    {
        method = Normalize(method);
        if (summaries.TryGetValue(method, out var known))
            return known;
        inProgress ??= new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        cutAt ??= new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        if (inProgress.Contains(method))
        {
            cutAt.Add(method);
            assumptions++;
            return MethodSummary.Empty;
        }

        // Beyond this depth callees are assumed to do nothing; the summaries above are still cached, so
        // a chain of any length costs linear time (at the price of missing effects deeper than this).
        if (inProgress.Count >= MaxDepth)
        {
            assumptions++;
            return MethodSummary.Empty;
        }

        inProgress.Add(method);
        int assumptionsBefore = assumptions;
        AnalyzedBody? analyzed = null;
        try
        {
            analyzed = AnalyzeBody(method);
        }
        finally
        {
            inProgress.Remove(method);
            cutAt.Remove(method);
        }

        MethodSummary summary = analyzed?.Result.Summary ?? MethodSummary.Empty;
        if (cutAt.Overlaps(inProgress))
            return summary;
        if (analyzed is not null && assumptions == assumptionsBefore && method.MethodKind != MethodKind.AnonymousFunction)
            unclaimedBodies.TryAdd(method, analyzed);
        return summaries.GetOrAdd(method, summary);
    }

    /// <summary>Records a summary that a findings pass computed from the same empty entry state.</summary>
    public void Offer(IMethodSymbol method, MethodSummary summary) => summaries.TryAdd(Normalize(method), summary);

    /// <summary>
    /// The analysis of the method's body from an empty entry state, if a summary run made one that no
    /// callee assumption cut short; each is handed out once, to the method's own findings pass.
    /// <paramref name="block"/> is the driver's operation block (the body's block or expression, whose
    /// root operation is the method body the summary's graph was built from).
    /// </summary>
    public AnalyzedBody? Claim(IMethodSymbol method, IOperation block)
    {
        return unclaimedBodies.TryRemove(Normalize(method), out var analyzed) && analyzed.Body == StraightLineBody.RootOf(block).Syntax ? analyzed : null;
    }

    /// <summary>Drops the analysis a summary run made of a body whose findings pass needs none.</summary>
    public void Discard(IMethodSymbol method) => unclaimedBodies.TryRemove(Normalize(method), out _);

    private static IMethodSymbol Normalize(IMethodSymbol method) => method.PartialImplementationPart ?? method.OriginalDefinition;

    /// <summary>The method's body analysed from an empty entry: as a straight line when it is one, else over its graph.</summary>
    private AnalyzedBody? AnalyzeBody(IMethodSymbol method)
    {
        if (method.MethodKind == MethodKind.AnonymousFunction)
            return LambdaGraphOf(method) is { } lambda ? AnalyzedBody.Of(lambda, BodyAnalysis.Run(context, lambda, method, FlowState.Empty, collectFindings: true)) : null;
        SyntaxNode? syntax = method.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax())
            .FirstOrDefault(s => s is BaseMethodDeclarationSyntax { Body: not null } or BaseMethodDeclarationSyntax { ExpressionBody: not null }
                or AccessorDeclarationSyntax { Body: not null } or AccessorDeclarationSyntax { ExpressionBody: not null });
        if (syntax is null)
            return null;
        IOperation? body = context.ModelOf(syntax.SyntaxTree).GetOperation(syntax);
        if (body is not (IMethodBodyOperation or IConstructorBodyOperation))
            return null;
        if (StraightLineBody.Of(body) is { } straight)
            return new AnalyzedBody(body.Syntax, null, BodyAnalysis.Run(context, straight, method, FlowState.Empty));
        ControlFlowGraph graph = body is IMethodBodyOperation methodBody ? ControlFlowGraph.Create(methodBody) : ControlFlowGraph.Create((IConstructorBodyOperation)body);
        return AnalyzedBody.Of(graph, BodyAnalysis.Run(context, graph, method, FlowState.Empty, collectFindings: true));
    }

    /// <summary>
    /// A lambda's graph comes from the graph of the body or initializer it is written in (an ops-table
    /// field is often assigned a lambda), reached through the lambdas and local functions around it.
    /// </summary>
    private ControlFlowGraph? LambdaGraphOf(IMethodSymbol lambda)
    {
        if (lambda.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax() is not { } syntax)
            return null;
        SemanticModel model = context.ModelOf(syntax.SyntaxTree);
        IOperation? root = model.GetOperation(syntax);
        while (root?.Parent is { } parent)
            root = parent;
        return root is IMethodBodyOperation or IConstructorBodyOperation or IFieldInitializerOperation or IPropertyInitializerOperation
            ? NestedGraphOf(ControlFlowGraph.Create(root.Syntax, model), syntax)
            : null;
    }

    private static ControlFlowGraph? NestedGraphOf(ControlFlowGraph? graph, SyntaxNode lambda)
    {
        if (graph is null)
            return null;
        TextSpan span = lambda.Span;
        foreach (BasicBlock block in graph.Blocks)
        {
            var operations = block.BranchValue is { } branch ? block.Operations.Add(branch) : block.Operations;
            foreach (IFlowAnonymousFunctionOperation nested in operations.SelectMany(o => o.DescendantsAndSelf()).OfType<IFlowAnonymousFunctionOperation>())
            {
                if (!nested.Syntax.Span.Contains(span))
                    continue;
                ControlFlowGraph inner = graph.GetAnonymousFunctionControlFlowGraph(nested);
                return nested.Syntax == lambda ? inner : NestedGraphOf(inner, lambda);
            }
        }

        IMethodSymbol? around = graph.LocalFunctions.FirstOrDefault(local =>
            local.DeclaringSyntaxReferences.Any(r => r.SyntaxTree == lambda.SyntaxTree && r.Span.Contains(span)));
        return around is null ? null : NestedGraphOf(graph.GetLocalFunctionControlFlowGraph(around), lambda);
    }
}
