using System.Collections.Immutable;
using System.Composition;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace KmemGuard.CodeFixes;

/// <summary>KMG0004: release the section before the return (or the end of the body) where it is still held.</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(SectionImbalanceCodeFixProvider)), Shared]
public sealed class SectionImbalanceCodeFixProvider : CodeFixProvider
{
    public const string AddReleaseKey = "KMG0004.AddRelease";

    public override ImmutableArray<string> FixableDiagnosticIds => ImmutableArray.Create("KMG0004");

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        Diagnostic diagnostic = context.Diagnostics[0];
        if (!diagnostic.Properties.TryGetValue("Release", out string? release) || string.IsNullOrEmpty(release))
            return;
        SyntaxNode root = (await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false))!;
        StatementSyntax releaseStatement = FixHelpers.ParseStatement(release!);
        SyntaxNode? changed = null;

        SyntaxToken token = root.FindToken(diagnostic.Location.SourceSpan.Start);
        if (token.IsKind(SyntaxKind.CloseBraceToken) && token.Parent is BlockSyntax body && diagnostic.Location.SourceSpan == token.Span)
        {
            changed = root.ReplaceNode(body, body.AddStatements(releaseStatement.WithAdditionalAnnotations(Microsoft.CodeAnalysis.Formatting.Formatter.Annotation)));
        }
        else if (root.FindNode(diagnostic.Location.SourceSpan) is ReturnStatementSyntax returned)
        {
            changed = returned.Parent is BlockSyntax
                ? root.InsertNodesBefore(returned, new[] { releaseStatement.WithLeadingTrivia(returned.GetLeadingTrivia()).WithTrailingTrivia(returned.GetTrailingTrivia()) })
                : root.ReplaceNode(returned, SyntaxFactory.Block(
                        releaseStatement.WithTrailingTrivia(SyntaxFactory.ElasticMarker),
                        returned.WithoutTrivia().WithLeadingTrivia(SyntaxFactory.ElasticMarker).WithTrailingTrivia(SyntaxFactory.ElasticMarker))
                    .WithTriviaFrom(returned).WithAdditionalAnnotations(Microsoft.CodeAnalysis.Formatting.Formatter.Annotation));
        }

        if (changed is null)
            return;
        SyntaxNode result = changed;
        context.RegisterCodeFix(CodeAction.Create($"Call {release} first",
            c => Microsoft.CodeAnalysis.Formatting.Formatter.FormatAsync(context.Document.WithSyntaxRoot(result), Microsoft.CodeAnalysis.Formatting.Formatter.Annotation, cancellationToken: c),
            AddReleaseKey), diagnostic);
    }
}
