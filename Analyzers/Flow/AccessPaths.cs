using System;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// Names tracked values and locks by access path: <c>$0</c> is the body's first parameter, <c>$this</c>
/// its receiver, <c>l:p</c> a local, <c>s:T.f</c> a static field, <c>#n</c> a CFG capture; members append <c>.name</c>.
/// Paths rooted at a parameter or <c>this</c> can be rewritten into a caller's terms.
/// </summary>
internal static class AccessPaths
{
    public const string This = "$this";

    public static IOperation Strip(IOperation operation)
    {
        while (operation is IConversionOperation { Operand: { } operand })
            operation = operand;
        return operation;
    }

    public static string? Of(IOperation? operation, ISymbol? body, Func<CaptureId, string> captureName)
    {
        if (operation is null)
            return null;
        switch (Strip(operation))
        {
            case ILocalReferenceOperation local:
                return "l:" + local.Local.Name;
            case IParameterReferenceOperation parameter:
                return SymbolEqualityComparer.Default.Equals(parameter.Parameter.ContainingSymbol, body)
                    ? "$" + parameter.Parameter.Ordinal
                    : "p:" + parameter.Parameter.Name;
            case IInstanceReferenceOperation:
                return This;
            case IFlowCaptureReferenceOperation capture:
                return captureName(capture.Id);
            case IFieldReferenceOperation field:
                return Member(field.Field, field.Instance, body, captureName);
            case IPropertyReferenceOperation { Arguments.Length: 0 } property:
                return Member(property.Property, property.Instance, body, captureName);
            default:
                return null;
        }
    }

    private static string? Member(ISymbol member, IOperation? instance, ISymbol? body, Func<CaptureId, string> captureName)
    {
        if (member.IsStatic)
            return "s:" + member.ContainingType.ToDisplayString() + "." + member.Name;
        string? root = Of(instance, body, captureName);
        return root is null ? null : root + "." + member.Name;
    }

    /// <summary>Rewrites a callee-relative path into the caller's terms, or null when it names something the caller cannot see.</summary>
    public static string? Rebase(string? path, Func<int, string?> argument, string? receiver)
    {
        if (path is null)
            return null;
        if (path.StartsWith("s:", StringComparison.Ordinal))
            return path;
        int dot = path.IndexOf('.');
        string root = dot < 0 ? path : path.Substring(0, dot);
        string rest = dot < 0 ? "" : path.Substring(dot);
        if (root == This)
            return receiver is null ? null : receiver + rest;
        if (root.Length > 1 && root[0] == '$' && int.TryParse(root.Substring(1), out int ordinal))
            return argument(ordinal) is { } mapped ? mapped + rest : null;
        return null;
    }

    /// <summary>The parameter ordinal a path is exactly, or -1.</summary>
    public static int ParameterOrdinal(string? path) =>
        path is { Length: > 1 } && path[0] == '$' && int.TryParse(path.Substring(1), out int ordinal) ? ordinal : -1;
}
