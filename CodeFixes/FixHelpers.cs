using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace KmemGuard.CodeFixes;

internal static class FixHelpers
{
    /// <summary>The invocation a diagnostic sits on.</summary>
    public static async Task<(SyntaxNode Root, InvocationExpressionSyntax? Call)> InvocationAtAsync(Document document, Diagnostic diagnostic, CancellationToken cancellation)
    {
        SyntaxNode root = (await document.GetSyntaxRootAsync(cancellation).ConfigureAwait(false))!;
        SyntaxNode node = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true);
        return (root, node.FirstAncestorOrSelf<InvocationExpressionSyntax>());
    }

    /// <summary>Whether a simple name resolves to a method or constant at the position (the fix then compiles).</summary>
    public static bool IsVisible(SemanticModel model, int position, string name) =>
        model.LookupSymbols(position, name: name).Any();

    /// <summary>The invocation with its callee's simple name replaced, keeping any qualification.</summary>
    public static InvocationExpressionSyntax Rename(InvocationExpressionSyntax call, string name) => call.Expression switch
    {
        MemberAccessExpressionSyntax access => call.WithExpression(access.WithName(SyntaxFactory.IdentifierName(name).WithTriviaFrom(access.Name))),
        IdentifierNameSyntax identifier => call.WithExpression(SyntaxFactory.IdentifierName(name).WithTriviaFrom(identifier)),
        _ => call,
    };

    public static string? CalleeName(InvocationExpressionSyntax call) => call.Expression switch
    {
        MemberAccessExpressionSyntax access => access.Name.Identifier.ValueText,
        IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
        _ => null,
    };

    public static StatementSyntax ParseStatement(string text) =>
        SyntaxFactory.ParseStatement(text.EndsWith(";", System.StringComparison.Ordinal) ? text : text + ";");
}
