using System.Collections.Generic;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// A method or constructor body without a branch of any kind: its statements run once, in order, and it
/// returns at its end. Its control-flow graph would be one block between entry and exit holding the
/// same operations, so the analysis walks them directly: most helpers and accessors are such bodies,
/// and building their graphs was a quarter of the graphs' cost (and of the bytes the collector then
/// reclaims). Only operations that the graph keeps as they are may occur; anything the graph would
/// lower (conditions, short-circuits, <c>?.</c>, <c>??</c>, initializers, patterns, lambdas, loops,
/// try, using, lock, throw) sends the body to the graph.
/// </summary>
internal sealed class StraightLineBody
{
    private StraightLineBody(IOperation root, ImmutableArray<IOperation> statements, IReturnOperation? returned)
    {
        Root = root;
        Statements = statements;
        Return = returned;
    }

    /// <summary>The method's body operation, as a graph's <c>OriginalOperation</c> would be.</summary>
    public IOperation Root { get; }

    /// <summary>The statements before the return, in order (a constructor's initializer first).</summary>
    public ImmutableArray<IOperation> Statements { get; }

    /// <summary>The final <c>return</c>, if the body ends with one (the implicit one of an expression body included).</summary>
    public IReturnOperation? Return { get; }

    /// <summary>The root of the operation tree an operation belongs to (for a driver's operation block, the method's body).</summary>
    public static IOperation RootOf(IOperation operation)
    {
        while (operation.Parent is { } parent)
            operation = parent;
        return operation;
    }

    /// <summary>The body of a method or constructor as a straight line, or null when it has a branch or anything else a graph would lower.</summary>
    public static StraightLineBody? Of(IOperation root)
    {
        var statements = ImmutableArray.CreateBuilder<IOperation>();
        IReturnOperation? returned = null;
        bool straight = root switch
        {
            IMethodBodyOperation method => Add(statements, ref returned, method.BlockBody, method.ExpressionBody),
            IConstructorBodyOperation constructor => (constructor.Initializer is null || AddStatement(statements, ref returned, constructor.Initializer))
                && Add(statements, ref returned, constructor.BlockBody, constructor.ExpressionBody),
            _ => false,
        };
        return straight ? new StraightLineBody(root, statements.ToImmutable(), returned) : null;
    }

    private static bool Add(ImmutableArray<IOperation>.Builder statements, ref IReturnOperation? returned, IBlockOperation? block, IBlockOperation? expression) =>
        (block is null) != (expression is null) && AddStatement(statements, ref returned, block ?? expression!);

    private static bool AddStatement(ImmutableArray<IOperation>.Builder statements, ref IReturnOperation? returned, IOperation statement)
    {
        // Nothing may follow the return: code after it is unreachable, which only a graph tells.
        if (returned is not null)
            return false;
        switch (statement)
        {
            case IBlockOperation block:
                foreach (IOperation inner in block.Operations)
                {
                    if (!AddStatement(statements, ref returned, inner))
                        return false;
                }

                return true;
            case IEmptyOperation:
                return true;
            case IReturnOperation { Kind: OperationKind.Return } final when KeptAsIs(final):
                returned = final;
                return true;
            case IExpressionStatementOperation or IVariableDeclarationGroupOperation when KeptAsIs(statement):
                statements.Add(statement);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Whether the graph would keep the statement's operations as they are: every one of them is of a kind listed here.</summary>
    private static bool KeptAsIs(IOperation statement)
    {
        var pending = new Stack<IOperation>();
        pending.Push(statement);
        while (pending.Count > 0)
        {
            IOperation operation = pending.Pop();
            if (!IsKeptAsIs(operation))
                return false;
            foreach (IOperation child in operation.ChildOperations)
                pending.Push(child);
        }

        return true;
    }

    private static bool IsKeptAsIs(IOperation operation) => operation switch
    {
        IBinaryOperation binary => binary.OperatorKind is not (BinaryOperatorKind.ConditionalAnd or BinaryOperatorKind.ConditionalOr),
        IObjectCreationOperation creation => creation.Initializer is null,
        IDelegateCreationOperation creation => creation.Target is IMethodReferenceOperation,
        IVariableDeclarationOperation declaration => declaration.Initializer is null,
        _ => operation.Kind is OperationKind.ExpressionStatement or OperationKind.VariableDeclarationGroup or OperationKind.VariableDeclarator
            or OperationKind.VariableInitializer or OperationKind.Return or OperationKind.Invocation or OperationKind.Argument
            or OperationKind.Literal or OperationKind.LocalReference or OperationKind.ParameterReference or OperationKind.FieldReference
            or OperationKind.PropertyReference or OperationKind.InstanceReference or OperationKind.Conversion or OperationKind.Unary
            or OperationKind.SimpleAssignment or OperationKind.CompoundAssignment or OperationKind.Increment or OperationKind.Decrement
            or OperationKind.MethodReference or OperationKind.ArrayCreation or OperationKind.ArrayInitializer
            or OperationKind.ArrayElementReference or OperationKind.TypeOf or OperationKind.SizeOf or OperationKind.NameOf
            or OperationKind.DefaultValue,
    };
}
