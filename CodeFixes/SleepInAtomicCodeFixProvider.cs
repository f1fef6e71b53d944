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

/// <summary>KMG0001: make the allocation atomic (GFP_ATOMIC, keeping the other modifiers) or busy-wait instead of sleeping.</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(SleepInAtomicCodeFixProvider)), Shared]
public sealed class SleepInAtomicCodeFixProvider : CodeFixProvider
{
    public const string UseGfpAtomicKey = "KMG0001.UseGfpAtomic";
    public const string BusyWaitKey = "KMG0001.BusyWait";
    public const string AllocateBeforeLockKey = "KMG0001.AllocateBeforeLock";

    private const string AtomicMask = "GFP_ATOMIC";
    private const string ReclaimBit = "__GFP_DIRECT_RECLAIM";

    /// <summary>Sleeping waits and the busy-waits that replace them; the first argument carries over.</summary>
    private static readonly ImmutableDictionary<string, string> BusyWaits = ImmutableDictionary.CreateRange(new[]
    {
        new System.Collections.Generic.KeyValuePair<string, string>("msleep", "mdelay"),
        new System.Collections.Generic.KeyValuePair<string, string>("usleep_range", "udelay"),
    });

    public override ImmutableArray<string> FixableDiagnosticIds => ImmutableArray.Create("KMG0001");

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        Diagnostic diagnostic = context.Diagnostics[0];
        var (_, call) = await FixHelpers.InvocationAtAsync(context.Document, diagnostic, context.CancellationToken).ConfigureAwait(false);
        if (call is null || call.Span != diagnostic.Location.SourceSpan)
            return;
        SemanticModel model = (await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false))!;

        if (diagnostic.Properties.TryGetValue("GfpParameter", out string? parameter) && parameter is not null
            && FixHelpers.IsVisible(model, call.SpanStart, AtomicMask)
            && model.GetOperation(call, context.CancellationToken) is IInvocationOperation invocation
            && invocation.Arguments.FirstOrDefault(a => a.Parameter?.Name == parameter)?.Syntax is ArgumentSyntax mask)
        {
            context.RegisterCodeFix(CodeAction.Create("Use GFP_ATOMIC",
                c => UseAtomicMaskAsync(context.Document, mask, c), UseGfpAtomicKey), diagnostic);
        }

        if (diagnostic.Properties.ContainsKey("GfpParameter") && HoistTarget(model, call, diagnostic, context.CancellationToken) is var (statement, before))
        {
            context.RegisterCodeFix(CodeAction.Create("Allocate before taking the lock",
                c => HoistAsync(context.Document, statement, before, c), AllocateBeforeLockKey), diagnostic);
        }

        if (FixHelpers.CalleeName(call) is { } name && BusyWaits.TryGetValue(name, out string? busyWait)
            && FixHelpers.IsVisible(model, call.SpanStart, busyWait) && call.ArgumentList.Arguments.Count > 0)
        {
            context.RegisterCodeFix(CodeAction.Create($"Busy-wait with {busyWait} instead of sleeping",
                c => BusyWaitAsync(context.Document, call, busyWait, c), BusyWaitKey), diagnostic);
        }
    }

    private static async Task<Document> UseAtomicMaskAsync(Document document, ArgumentSyntax mask, CancellationToken cancellation)
    {
        SemanticModel model = (await document.GetSemanticModelAsync(cancellation).ConfigureAwait(false))!;
        SyntaxNode root = (await document.GetSyntaxRootAsync(cancellation).ConfigureAwait(false))!;
        ulong reclaim = ReclaimValue(model);
        // The sleeping terms of the mask become one GFP_ATOMIC; the modifiers (__GFP_NOWARN, __GFP_ZERO...) stay.
        var terms = new System.Collections.Generic.List<string>();
        bool replaced = false;
        foreach (ExpressionSyntax term in Terms(mask.Expression))
        {
            bool sleeps = Bits(model.GetConstantValue(term, cancellation)) is { } bits && (bits & reclaim) != 0;
            if (!sleeps)
                terms.Add(term.ToString());
            else if (!replaced)
                terms.Add(AtomicMask);
            replaced |= sleeps;
        }

        if (!replaced)
            terms = new System.Collections.Generic.List<string> { AtomicMask };
        ExpressionSyntax atomic = SyntaxFactory.ParseExpression(string.Join(" | ", terms)).WithTriviaFrom(mask.Expression);
        return document.WithSyntaxRoot(root.ReplaceNode(mask.Expression, atomic));
    }

    /// <summary>The operands of a chain of <c>|</c>, in order.</summary>
    private static System.Collections.Generic.IEnumerable<ExpressionSyntax> Terms(ExpressionSyntax mask) => mask switch
    {
        BinaryExpressionSyntax binary when binary.IsKind(SyntaxKind.BitwiseOrExpression) => Terms(binary.Left).Concat(Terms(binary.Right)),
        ParenthesizedExpressionSyntax parenthesized => Terms(parenthesized.Expression),
        _ => new[] { mask },
    };

    /// <summary>
    /// The allocation's statement and the statement that took the lock, when both are in one block and
    /// nothing between them writes what the allocation reads (so moving it up keeps its meaning).
    /// </summary>
    private static (StatementSyntax Statement, StatementSyntax Lock)? HoistTarget(SemanticModel model, InvocationExpressionSyntax call, Diagnostic diagnostic, CancellationToken cancellation)
    {
        if (diagnostic.AdditionalLocations.Count == 0
            || call.FirstAncestorOrSelf<StatementSyntax>() is not { Parent: BlockSyntax block } statement
            || statement is not (LocalDeclarationStatementSyntax or ExpressionStatementSyntax))
        {
            return null;
        }

        var lockSpan = diagnostic.AdditionalLocations[0].SourceSpan;
        StatementSyntax? lockStatement = block.Statements.FirstOrDefault(s => s.Span.Contains(lockSpan));
        if (lockStatement is null || lockStatement.SpanStart >= statement.SpanStart)
            return null;
        int first = block.Statements.IndexOf(lockStatement);
        int last = block.Statements.IndexOf(statement);
        DataFlowAnalysis? between = model.AnalyzeDataFlow(block.Statements[first], block.Statements[last - 1]);
        DataFlowAnalysis? reads = model.AnalyzeDataFlow(call);
        if (between is null || reads is null || !between.Succeeded || !reads.Succeeded)
            return null;
        bool independent = !reads.ReadInside.Intersect(between.WrittenInside, SymbolEqualityComparer.Default).Any()
            && !call.DescendantNodes().OfType<MemberAccessExpressionSyntax>().Any()
            && !call.DescendantNodes().OfType<InvocationExpressionSyntax>().Any();
        return independent ? (statement, lockStatement) : null;
    }

    private static async Task<Document> HoistAsync(Document document, StatementSyntax statement, StatementSyntax lockStatement, CancellationToken cancellation)
    {
        SyntaxNode root = (await document.GetSyntaxRootAsync(cancellation).ConfigureAwait(false))!;
        SyntaxNode moved = root.TrackNodes(statement, lockStatement);
        moved = moved.RemoveNode(moved.GetCurrentNode(statement)!, SyntaxRemoveOptions.KeepNoTrivia)!;
        StatementSyntax anchor = moved.GetCurrentNode(lockStatement)!;
        moved = moved.InsertNodesBefore(anchor, new[] { statement.WithLeadingTrivia(anchor.GetLeadingTrivia()) });
        return document.WithSyntaxRoot(moved);
    }

    private static async Task<Document> BusyWaitAsync(Document document, InvocationExpressionSyntax call, string busyWait, CancellationToken cancellation)
    {
        SyntaxNode root = (await document.GetSyntaxRootAsync(cancellation).ConfigureAwait(false))!;
        InvocationExpressionSyntax renamed = FixHelpers.Rename(call, busyWait)
            .WithArgumentList(call.ArgumentList.WithArguments(SyntaxFactory.SingletonSeparatedList(call.ArgumentList.Arguments[0])));
        return document.WithSyntaxRoot(root.ReplaceNode(call, renamed));
    }

    private static ulong ReclaimValue(SemanticModel model) =>
        model.Compilation.GetTypeByMetadataName("KmemGuard.Kernel")?.GetMembers(ReclaimBit).OfType<IFieldSymbol>()
            .FirstOrDefault()?.ConstantValue is { } value ? System.Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture) : 0x400;

    private static ulong? Bits(Optional<object?> constant) => constant.Value switch
    {
        uint or ulong or ushort or byte when constant.HasValue => System.Convert.ToUInt64(constant.Value, System.Globalization.CultureInfo.InvariantCulture),
        int or long or short or sbyte when constant.HasValue => unchecked((ulong)System.Convert.ToInt64(constant.Value, System.Globalization.CultureInfo.InvariantCulture)),
        _ => null,
    };
}
