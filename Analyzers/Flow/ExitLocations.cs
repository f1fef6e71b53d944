using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.FlowAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>Finds the return statement a CFG branch to the exit stands for (the CFG itself keeps no syntax for it).</summary>
internal static class ExitLocations
{
    public static Location Of(BasicBlock block, ControlFlowBranch branch, ISymbol? owner)
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

        return EndOf(owner) ?? block.Operations.LastOrDefault()?.Syntax.GetLocation() ?? Location.None;
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
