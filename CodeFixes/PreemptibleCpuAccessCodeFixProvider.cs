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

namespace KmemGuard.CodeFixes;

/// <summary>KMG0003: pin the CPU around the statement, with get_cpu()/put_cpu() (using its result) or preempt_disable()/preempt_enable().</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(PreemptibleCpuAccessCodeFixProvider)), Shared]
public sealed class PreemptibleCpuAccessCodeFixProvider : CodeFixProvider
{
    public const string GetCpuKey = "KMG0003.GetCpu";
    public const string PreemptDisableKey = "KMG0003.PreemptDisable";

    private const string CurrentCpuCall = "smp_processor_id";

    public override ImmutableArray<string> FixableDiagnosticIds => ImmutableArray.Create("KMG0003");

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        Diagnostic diagnostic = context.Diagnostics[0];
        var (root, call) = await FixHelpers.InvocationAtAsync(context.Document, diagnostic, context.CancellationToken).ConfigureAwait(false);
        if (call?.FirstAncestorOrSelf<StatementSyntax>() is not { Parent: BlockSyntax } statement)
            return;
        SemanticModel model = (await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false))!;
        int position = statement.SpanStart;

        if (FixHelpers.CalleeName(call) == CurrentCpuCall && FixHelpers.IsVisible(model, position, "get_cpu") && FixHelpers.IsVisible(model, position, "put_cpu"))
        {
            string cpu = FreeName(model, position, "cpu");
            context.RegisterCodeFix(CodeAction.Create("Use get_cpu()/put_cpu()",
                c => Task.FromResult(Wrap(context.Document, root, statement, $"int {cpu} = get_cpu();", "put_cpu();",
                    statement.ReplaceNode(call, SyntaxFactory.IdentifierName(cpu).WithTriviaFrom(call)))),
                GetCpuKey), diagnostic);
        }

        if (FixHelpers.IsVisible(model, position, "preempt_disable") && FixHelpers.IsVisible(model, position, "preempt_enable"))
        {
            context.RegisterCodeFix(CodeAction.Create("Disable preemption around the statement",
                c => Task.FromResult(Wrap(context.Document, root, statement, "preempt_disable();", "preempt_enable();", statement)),
                PreemptDisableKey), diagnostic);
        }
    }

    private static Document Wrap(Document document, SyntaxNode root, StatementSyntax statement, string before, string after, StatementSyntax replacement)
    {
        SyntaxTriviaList indentation = statement.GetLeadingTrivia();
        var statements = new[]
        {
            FixHelpers.ParseStatement(before).WithLeadingTrivia(indentation).WithTrailingTrivia(statement.GetTrailingTrivia()),
            replacement.WithLeadingTrivia(indentation),
            FixHelpers.ParseStatement(after).WithLeadingTrivia(indentation).WithTrailingTrivia(statement.GetTrailingTrivia()),
        };
        return document.WithSyntaxRoot(root.ReplaceNode(statement, statements));
    }

    private static string FreeName(SemanticModel model, int position, string name)
    {
        string candidate = name;
        for (int i = 2; model.LookupSymbols(position, name: candidate).Any(); i++)
            candidate = name + i;
        return candidate;
    }
}
