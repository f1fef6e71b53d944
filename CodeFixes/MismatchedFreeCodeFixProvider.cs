using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.CodeFixes;

/// <summary>KMG0002: call the free that matches the allocator, or pass the order the pages were allocated with.</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(MismatchedFreeCodeFixProvider)), Shared]
public sealed class MismatchedFreeCodeFixProvider : CodeFixProvider
{
    public const string MatchingFreeKey = "KMG0002.MatchingFree";
    public const string MatchingOrderKey = "KMG0002.MatchingOrder";

    public override ImmutableArray<string> FixableDiagnosticIds => ImmutableArray.Create("KMG0002");

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        Diagnostic diagnostic = context.Diagnostics[0];
        var (root, call) = await FixHelpers.InvocationAtAsync(context.Document, diagnostic, context.CancellationToken).ConfigureAwait(false);
        if (call is null || call.Span != diagnostic.Location.SourceSpan)
            return;
        SemanticModel model = (await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false))!;
        if (model.GetOperation(call, context.CancellationToken) is not IInvocationOperation invocation)
            return;

        if (diagnostic.Properties.TryGetValue("Free", out string? free) && free is not null
            && model.LookupSymbols(call.SpanStart, name: free).OfType<IMethodSymbol>().FirstOrDefault() is { } target
            && FreedArgument(invocation) is { } freed)
        {
            context.RegisterCodeFix(CodeAction.Create($"Free with {free}",
                c => Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(call, WithFree(call, target, freed)))),
                MatchingFreeKey), diagnostic);
        }

        if (diagnostic.Properties.TryGetValue("Order", out string? order) && order is not null
            && diagnostic.Properties.TryGetValue("OrderParameter", out string? orderParameter)
            && invocation.Arguments.FirstOrDefault(a => a.Parameter?.Name == orderParameter)?.Syntax is ArgumentSyntax orderArgument)
        {
            ArgumentSyntax fixedOrder = orderArgument.WithExpression(SyntaxFactory.ParseExpression(order).WithTriviaFrom(orderArgument.Expression));
            context.RegisterCodeFix(CodeAction.Create($"Free with order {order}",
                c => Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(orderArgument, fixedOrder))),
                MatchingOrderKey), diagnostic);
        }
    }

    /// <summary>The argument that carries the memory: the one whose parameter the [Frees] attribute names.</summary>
    private static ArgumentSyntax? FreedArgument(IInvocationOperation invocation)
    {
        string? parameter = invocation.TargetMethod.GetAttributes()
            .FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == "KmemGuard.FreesAttribute")?
            .ConstructorArguments.ElementAtOrDefault(1).Value as string;
        return invocation.Arguments.FirstOrDefault(a => a.Parameter?.Name == parameter)?.Syntax as ArgumentSyntax;
    }

    /// <summary>Same arguments when the new free takes as many; otherwise just the memory (kmem_cache_free(c, p) → kfree(p)).</summary>
    private static InvocationExpressionSyntax WithFree(InvocationExpressionSyntax call, IMethodSymbol target, ArgumentSyntax freed)
    {
        InvocationExpressionSyntax renamed = FixHelpers.Rename(call, target.Name);
        int required = target.Parameters.Count(p => !p.IsOptional);
        return required == call.ArgumentList.Arguments.Count
            ? renamed
            : renamed.WithArgumentList(call.ArgumentList.WithArguments(SyntaxFactory.SingletonSeparatedList(freed.WithNameColon(null))));
    }
}
