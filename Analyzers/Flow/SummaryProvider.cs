using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// Computes a source method's summary on demand from its own operation tree and caches it for the
/// compilation. A method already being summarized on this thread (recursion) is assumed to do nothing;
/// a summary that relied on that assumption for a method still open is not cached, so that the order
/// in which bodies are analyzed cannot change the result.
/// </summary>
internal sealed class SummaryProvider
{
    private const int MaxDepth = 24;

    [ThreadStatic]
    private static HashSet<IMethodSymbol>? inProgress;

    [ThreadStatic]
    private static HashSet<IMethodSymbol>? cutAt;

    private readonly KmemGuardContext context;
    private readonly Compilation compilation;
    private readonly ConcurrentDictionary<IMethodSymbol, MethodSummary> summaries = new(SymbolEqualityComparer.Default);

    public SummaryProvider(KmemGuardContext context, Compilation compilation)
    {
        this.context = context;
        this.compilation = compilation;
    }

    public MethodSummary Get(IMethodSymbol method)
    {
        method = method.PartialImplementationPart ?? method.OriginalDefinition;
        if (summaries.TryGetValue(method, out var known))
            return known;
        inProgress ??= new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        cutAt ??= new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        if (inProgress.Contains(method))
        {
            cutAt.Add(method);
            return MethodSummary.Empty;
        }

        // Beyond this depth callees are assumed to do nothing; the summaries above are still cached, so
        // a chain of any length costs linear time (at the price of missing effects deeper than this).
        if (inProgress.Count >= MaxDepth)
            return MethodSummary.Empty;

        inProgress.Add(method);
        MethodSummary summary;
        try
        {
            summary = GraphOf(method) is { } graph
                ? BodyAnalysis.Run(context, graph, method, FlowState.Empty, collectFindings: false).Summary
                : MethodSummary.Empty;
        }
        finally
        {
            inProgress.Remove(method);
            cutAt.Remove(method);
        }

        return cutAt.Overlaps(inProgress) ? summary : summaries.GetOrAdd(method, summary);
    }

    /// <summary>Records a summary that a findings pass computed from the same empty entry state.</summary>
    public void Offer(IMethodSymbol method, MethodSummary summary) =>
        summaries.TryAdd(method.PartialImplementationPart ?? method.OriginalDefinition, summary);

    private ControlFlowGraph? GraphOf(IMethodSymbol method)
    {
        SyntaxNode? syntax = method.DeclaringSyntaxReferences
            .Select(r => r.GetSyntax())
            .FirstOrDefault(s => s is BaseMethodDeclarationSyntax { Body: not null } or BaseMethodDeclarationSyntax { ExpressionBody: not null }
                or AccessorDeclarationSyntax { Body: not null } or AccessorDeclarationSyntax { ExpressionBody: not null });
        if (syntax is null)
            return null;
        SemanticModel model = context.ModelOf(syntax.SyntaxTree);
        return model.GetOperation(syntax) switch
        {
            IMethodBodyOperation body => ControlFlowGraph.Create(body),
            IConstructorBodyOperation body => ControlFlowGraph.Create(body),
            _ => null,
        };
    }
}
