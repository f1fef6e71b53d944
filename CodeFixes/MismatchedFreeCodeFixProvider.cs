using System.Collections.Generic;
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

/// <summary>
/// KMG0002: call the free that matches the allocator (to the cache the object came from, when the free
/// needs one), or pass the order the pages were allocated with.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(MismatchedFreeCodeFixProvider)), Shared]
public sealed class MismatchedFreeCodeFixProvider : CodeFixProvider
{
    public const string MatchingFreeKey = "KMG0002.MatchingFree";
    public const string FreeToCacheKey = "KMG0002.FreeToCache";
    public const string MatchingOrderKey = "KMG0002.MatchingOrder";

    private const string FreesAttribute = "KmemGuard.FreesAttribute";
    private const string AllocatesAttribute = "KmemGuard.AllocatesAttribute";
    private const string OwnerParameter = "OwnerParameter";

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
            ExpressionSyntax? cache = Named(target, FreesAttribute, OwnerParameter) is null ? null
                : CacheOfAllocation(root, model, diagnostic, call.SpanStart, context.CancellationToken);
            if (WithFree(call, invocation, target, freed, cache) is { } replacement)
            {
                context.RegisterCodeFix(CodeAction.Create(cache is null ? $"Free with {free}" : $"Free with {replacement}",
                    c => Task.FromResult(context.Document.WithSyntaxRoot(root.ReplaceNode(call, replacement))),
                    cache is null ? MatchingFreeKey : FreeToCacheKey), diagnostic);
            }
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
        string? parameter = FreedParameter(invocation.TargetMethod);
        return invocation.Arguments.FirstOrDefault(a => a.Parameter?.Name == parameter)?.Syntax as ArgumentSyntax;
    }

    private static string? FreedParameter(IMethodSymbol free) =>
        AttributeOf(free, FreesAttribute)?.ConstructorArguments.ElementAtOrDefault(1).Value as string;

    private static AttributeData? AttributeOf(IMethodSymbol method, string attribute) =>
        method.GetAttributes().FirstOrDefault(a => a.AttributeClass?.ToDisplayString() == attribute);

    private static string? Named(IMethodSymbol method, string attribute, string name) =>
        AttributeOf(method, attribute)?.NamedArguments.FirstOrDefault(p => p.Key == name).Value.Value as string;

    /// <summary>
    /// The cache argument of the allocation the diagnostic points at (its additional location), when it
    /// means the same at the free: a chain of names (<c>cache</c>, <c>dev.cache</c>, <c>this.cache</c>)
    /// whose every part binds there to the same local, parameter, field or property.
    /// </summary>
    private static ExpressionSyntax? CacheOfAllocation(SyntaxNode root, SemanticModel model, Diagnostic diagnostic, int position, CancellationToken cancellation)
    {
        if (diagnostic.AdditionalLocations.FirstOrDefault() is not { } allocation || allocation.SourceTree != root.SyntaxTree
            || root.FindNode(allocation.SourceSpan, getInnermostNodeForTie: true).FirstAncestorOrSelf<InvocationExpressionSyntax>() is not { } allocator
            || model.GetOperation(allocator, cancellation) is not IInvocationOperation allocated
            || Named(allocated.TargetMethod, AllocatesAttribute, OwnerParameter) is not { } owner
            || allocated.Arguments.FirstOrDefault(a => a.Parameter?.Name == owner)?.Syntax is not ArgumentSyntax { Expression: var cache })
        {
            return null;
        }

        return MeansTheSameAt(model, cache, position, cancellation) ? cache.WithoutTrivia() : null;
    }

    private static bool MeansTheSameAt(SemanticModel model, ExpressionSyntax expression, int position, CancellationToken cancellation)
    {
        for (ExpressionSyntax? part = expression; part is not null; part = (part as MemberAccessExpressionSyntax)?.Expression)
        {
            if (part is not (IdentifierNameSyntax or ThisExpressionSyntax or MemberAccessExpressionSyntax { RawKind: (int)SyntaxKind.SimpleMemberAccessExpression }))
                return false;
            ISymbol? there = model.GetSymbolInfo(part, cancellation).Symbol;
            ISymbol? here = model.GetSpeculativeSymbolInfo(position, part, SpeculativeBindingOption.BindAsExpression).Symbol;
            bool same = there is IParameterSymbol { IsThis: true } self
                ? here is IParameterSymbol { IsThis: true } other && SymbolEqualityComparer.Default.Equals(self.Type, other.Type)
                : there is not null && SymbolEqualityComparer.Default.Equals(there, here);
            if (!same)
                return false;
        }

        return true;
    }

    /// <summary>
    /// The call to the new free, with an argument for each of its required parameters: the memory, the
    /// cache it came from, or the old call's argument for a parameter of the same name; null when one is
    /// missing (<c>kmem_cache_free</c> without a known cache). <c>kmem_cache_free(c, p)</c> → <c>kfree(p)</c>.
    /// </summary>
    private static InvocationExpressionSyntax? WithFree(InvocationExpressionSyntax call, IInvocationOperation invocation, IMethodSymbol target,
        ArgumentSyntax freed, ExpressionSyntax? cache)
    {
        string? freedParameter = FreedParameter(target);
        string? cacheParameter = Named(target, FreesAttribute, OwnerParameter);
        var arguments = new List<ArgumentSyntax>();
        foreach (IParameterSymbol parameter in target.Parameters.Where(p => !p.IsOptional))
        {
            ArgumentSyntax? argument = parameter.Name == freedParameter ? freed.WithNameColon(null)
                : parameter.Name == cacheParameter && cache is not null ? SyntaxFactory.Argument(cache)
                : invocation.Arguments.FirstOrDefault(a => a.Parameter?.Name == parameter.Name)?.Syntax as ArgumentSyntax;
            if (argument is null)
                return null;
            arguments.Add(argument);
        }

        SyntaxToken comma = SyntaxFactory.Token(SyntaxKind.CommaToken).WithTrailingTrivia(SyntaxFactory.Space);
        return FixHelpers.Rename(call, target.Name).WithArgumentList(call.ArgumentList.WithArguments(
            SyntaxFactory.SeparatedList(arguments, Enumerable.Repeat(comma, arguments.Count - 1))));
    }
}
