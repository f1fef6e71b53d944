using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.FlowAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>Where a path leaves a body: a graph's branch to its exit, or the end of a straight-line body.</summary>
internal readonly struct ExitPoint
{
    private ExitPoint(IOperation? returned, BasicBlock? block, ControlFlowBranch? branch, StraightLineBody? body)
    {
        Returned = returned;
        Block = block;
        Branch = branch;
        Body = body;
    }

    /// <summary>The value the path returns, when it returns one.</summary>
    public IOperation? Returned { get; }

    public BasicBlock? Block { get; }

    public ControlFlowBranch? Branch { get; }

    public StraightLineBody? Body { get; }

    public static ExitPoint Of(BasicBlock block, ControlFlowBranch branch) => new(
        branch.Semantics == ControlFlowBranchSemantics.Return && branch == block.FallThroughSuccessor ? block.BranchValue : null, block, branch, null);

    public static ExitPoint Of(StraightLineBody body) => new(body.Return?.ReturnedValue, null, null, body);
}

/// <summary>Finds the return statement a path's exit stands for (a graph keeps no syntax for it).</summary>
internal static class ExitLocations
{
    public static Location Of(ExitPoint exit, ISymbol? owner)
    {
        if (exit is { Block: { } block, Branch: { } branch })
            return Of(block, branch, owner);
        StraightLineBody body = exit.Body!;
        if (body.Return?.Syntax is ReturnStatementSyntax returned)
            return returned.GetLocation();
        // As for a graph's single block: the closing brace, or for an expression body the expression.
        return EndOf(owner) ?? (body.Statements.LastOrDefault() ?? body.Return)?.Syntax.GetLocation() ?? Location.None;
    }

    private static Location Of(BasicBlock block, ControlFlowBranch branch, ISymbol? owner)
    {
        if (block.BranchValue?.Syntax is { } value)
        {
            if (value.FirstAncestorOrSelf<ReturnStatementSyntax>() is { } returned && branch.Semantics == ControlFlowBranchSemantics.Return)
                return returned.GetLocation();
            if (value.FirstAncestorOrSelf<IfStatementSyntax>() is { } condition)
            {
                bool conditional = branch == block.ConditionalSuccessor;
                bool thenTaken = conditional == (block.ConditionKind == ControlFlowConditionKind.WhenTrue);
                StatementSyntax? taken = thenTaken ? condition.Statement : condition.Else?.Statement;
                if (FirstReturn(taken) is { } inBranch)
                    return inBranch.GetLocation();
            }
        }

        if (block.Operations.LastOrDefault()?.Syntax.FirstAncestorOrSelf<StatementSyntax>() is { } last)
        {
            if (last is ReturnStatementSyntax)
                return last.GetLocation();
            if (last.Parent is BlockSyntax parent)
            {
                int index = parent.Statements.IndexOf(last);
                if (index + 1 < parent.Statements.Count && parent.Statements[index + 1] is ReturnStatementSyntax next)
                    return next.GetLocation();
            }
        }

        return EndOf(owner) ?? (block.Operations.LastOrDefault() ?? block.BranchValue)?.Syntax.GetLocation() ?? Location.None;
    }

    private static ReturnStatementSyntax? FirstReturn(StatementSyntax? statement) => statement switch
    {
        null => null,
        ReturnStatementSyntax returned => returned,
        BlockSyntax block => block.Statements.OfType<ReturnStatementSyntax>().FirstOrDefault(),
        _ => null,
    };

    /// <summary>The closing brace of the body, where control falls off its end.</summary>
    private static Location? EndOf(ISymbol? owner)
    {
        SyntaxNode? syntax = owner?.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax();
        BlockSyntax? body = syntax switch
        {
            BaseMethodDeclarationSyntax method => method.Body,
            LocalFunctionStatementSyntax local => local.Body,
            AnonymousFunctionExpressionSyntax lambda => lambda.Block,
            AccessorDeclarationSyntax accessor => accessor.Body,
            _ => null,
        };
        return body?.CloseBraceToken.GetLocation();
    }
}
