using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using KmemGuard.Analyzers.Flow;
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
                : diagnostic.Properties.TryGetValue(FixProperties.Owner, out string? owner) && owner is not null
                    ? OwnerAtTheFree(model, call, owner, context.CancellationToken)
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
    /// For memory the analysis met without its cache's path (a field another method stored it in): the
    /// cache argument of the allocation the diagnostic points at (its additional location), when it
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

    /// <summary>
    /// The cache the analysis followed to the free (the <c>Owner</c> path, in the freeing body's terms: for a
    /// helper's allocation, what the call passed) written as an expression that names it at the free; null
    /// when it cannot be written there without a guess. Preferred to the allocation's own argument, which
    /// in a helper names the helper's parameter or receiver.
    /// </summary>
    private static ExpressionSyntax? OwnerAtTheFree(SemanticModel model, InvocationExpressionSyntax free, string owner, CancellationToken cancellation)
    {
        int position = free.SpanStart;
        var parts = new List<ExpressionSyntax>();
        bool isStatic = AccessPaths.IsStatic(owner);
        if (isStatic)
        {
            // "s:Ns.Caches.slab": the type is written out in full; the parts before the static member are its qualifiers.
            if (!SimpleNames(SyntaxFactory.ParseExpression(owner.Substring(AccessPaths.StaticPrefix.Length)), parts))
                return null;
        }
        else
        {
            var (root, members) = AccessPaths.Split(owner);
            if (RootAt(model, free, model.GetEnclosingSymbol(position, cancellation), root) is not { } rootExpression)
                return null;
            parts.Add(rootExpression);
            parts.AddRange(members.Split(new[] { '.' }, StringSplitOptions.RemoveEmptyEntries).Select(Name));
        }

        List<ISymbol?> full = Enumerable.Range(0, parts.Count).Select(j => Bind(model, position, Chain(parts, 0, j))).ToList();
        // The part whose symbol fixes what the chain means: the static member, the member of this, or the root.
        int anchor = isStatic ? full.FindIndex(symbol => symbol is IFieldSymbol or IPropertySymbol)
            : parts[0] is ThisExpressionSyntax && parts.Count > 1 ? 1 : 0;
        if (anchor < 0 || (isStatic && !full[anchor]!.IsStatic))
            return null;
        // The path's members are fields and properties without arguments; anything else is not what it named.
        for (int j = Math.Max(anchor, isStatic ? 0 : 1); j < parts.Count; j++)
        {
            if (full[j] is not (IFieldSymbol or IPropertySymbol { Parameters.Length: 0 }))
                return null;
        }

        // The shortest spelling that binds to the same members: cache for this.cache, Caches.slab or slab for
        // Ns.Caches.slab; only qualifiers (this, a namespace or type) are dropped, never a member.
        for (int start = anchor; start > 0; start--)
        {
            if (Enumerable.Range(anchor, parts.Count - anchor).All(j => SymbolEqualityComparer.Default.Equals(full[j], Bind(model, position, Chain(parts, start, j)))))
                return Chain(parts, start, parts.Count - 1);
        }

        return Chain(parts, 0, parts.Count - 1);
    }

    /// <summary>Parts[from] through parts[to] as a member access chain.</summary>
    private static ExpressionSyntax Chain(List<ExpressionSyntax> parts, int from, int to) =>
        parts.Skip(from + 1).Take(to - from).Aggregate(parts[from],
            (expression, member) => SyntaxFactory.MemberAccessExpression(SyntaxKind.SimpleMemberAccessExpression, expression, (SimpleNameSyntax)member));

    /// <summary>The names of a chain of member accesses, left to right; false for anything else.</summary>
    private static bool SimpleNames(ExpressionSyntax expression, List<ExpressionSyntax> names)
    {
        switch (expression)
        {
            case SimpleNameSyntax name:
                names.Add(name.WithoutTrivia());
                return true;
            case MemberAccessExpressionSyntax { RawKind: (int)SyntaxKind.SimpleMemberAccessExpression } access when SimpleNames(access.Expression, names):
                names.Add(access.Name.WithoutTrivia());
                return true;
            default:
                return false;
        }
    }

    private static ISymbol? Bind(SemanticModel model, int position, ExpressionSyntax expression) =>
        model.GetSpeculativeSymbolInfo(position, expression, SpeculativeBindingOption.BindAsExpression).Symbol;

    /// <summary>The root of a path as an expression that binds at the free to the same parameter, receiver or local.</summary>
    private static ExpressionSyntax? RootAt(SemanticModel model, InvocationExpressionSyntax free, ISymbol? body, string root)
    {
        int position = free.SpanStart;
        if (root == AccessPaths.This)
            return body is IMethodSymbol { IsStatic: false } ? SyntaxFactory.ThisExpression() : null;
        if (AccessPaths.ParameterOrdinal(root) is var ordinal and >= 0)
        {
            return body is IMethodSymbol method && ordinal < method.Parameters.Length
                && BindsTo(model, position, method.Parameters[ordinal].Name) is IParameterSymbol parameter
                && SymbolEqualityComparer.Default.Equals(parameter, method.Parameters[ordinal])
                ? Name(parameter.Name) : null;
        }

        if (root.StartsWith(AccessPaths.CapturedParameterPrefix, StringComparison.Ordinal))
        {
            // A parameter of an enclosing method, captured by this lambda or local function: parameters are
            // in scope in the whole method, so the name binds to the one the allocation saw.
            string name = root.Substring(AccessPaths.CapturedParameterPrefix.Length);
            return BindsTo(model, position, name) is IParameterSymbol captured && !SymbolEqualityComparer.Default.Equals(captured.ContainingSymbol, body)
                ? Name(name) : null;
        }

        if (root.StartsWith(AccessPaths.LocalPrefix, StringComparison.Ordinal))
        {
            // The path names a local by name only: two blocks may each declare one, and the one in scope at the
            // free need not be the one the allocation used. Only a name declared once in the member is certain.
            string name = root.Substring(AccessPaths.LocalPrefix.Length);
            return BindsTo(model, position, name) is ILocalSymbol && LocalDeclarationsNamed(free, name) == 1 ? Name(name) : null;
        }

        return null;
    }

    private static int LocalDeclarationsNamed(SyntaxNode free, string name)
    {
        SyntaxNode member = free.FirstAncestorOrSelf<MemberDeclarationSyntax>() ?? free.SyntaxTree.GetRoot();
        return member.DescendantNodes().Count(node => node switch
        {
            VariableDeclaratorSyntax variable => variable.Identifier.ValueText == name,
            SingleVariableDesignationSyntax designation => designation.Identifier.ValueText == name,
            ForEachStatementSyntax loop => loop.Identifier.ValueText == name,
            CatchDeclarationSyntax exception => exception.Identifier.ValueText == name,
            _ => false,
        });
    }

    private static ISymbol? BindsTo(SemanticModel model, int position, string name) => Bind(model, position, Name(name));

    /// <summary>A simple name, escaped when it is a keyword (<c>@lock</c>).</summary>
    private static IdentifierNameSyntax Name(string name) =>
        SyntaxFactory.IdentifierName(SyntaxFacts.GetKeywordKind(name) == SyntaxKind.None ? SyntaxFactory.Identifier(name) : SyntaxFactory.Identifier(default, SyntaxKind.IdentifierToken, "@" + name, name, default));

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
