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
    public const string LocalPrefix = "l:";
    public const string CapturedParameterPrefix = "p:";
    public const string StaticPrefix = "s:";

    /// <summary>
    /// The object a field or property belongs to, in the paths the compilation index keeps per member (the
    /// cache a field's memory came from, <c>$owner.cache</c>): each access renames it to its own instance.
    /// </summary>
    public const string FieldOwner = "$owner";

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
                return OfLocal(local.Local);
            case IParameterReferenceOperation parameter:
                return SymbolEqualityComparer.Default.Equals(parameter.Parameter.ContainingSymbol, body)
                    ? "$" + parameter.Parameter.Ordinal
                    : CapturedParameterPrefix + parameter.Parameter.Name;
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

    public static string OfLocal(ILocalSymbol local) => LocalPrefix + local.Name;

    private static string? Member(ISymbol member, IOperation? instance, ISymbol? body, Func<CaptureId, string> captureName)
    {
        if (member.IsStatic)
            return StaticPrefix + member.ContainingType.ToDisplayString() + "." + member.Name;
        string? root = Of(instance, body, captureName);
        return root is null ? null : root + "." + member.Name;
    }

    /// <summary>Rewrites a callee-relative path into the caller's terms, or null when it names something the caller cannot see.</summary>
    public static string? Rebase(string? path, Func<int, string?> argument, string? receiver)
    {
        if (path is null)
            return null;
        if (IsStatic(path))
            return path;
        var (root, rest) = Split(path);
        if (root == This)
            return receiver is null ? null : receiver + rest;
        if (ParameterOrdinal(root) is var ordinal and >= 0)
            return argument(ordinal) is { } mapped ? mapped + rest : null;
        return null;
    }

    /// <summary>
    /// A path in the terms of the object whose member is assigned (<c>$owner.cache</c> for
    /// <c>this.cache</c> when <c>this.buf</c> is assigned), or null when it does not start there; static
    /// paths stay as they are.
    /// </summary>
    public static string? RelativeTo(string? path, string? instance)
    {
        if (path is null || IsStatic(path))
            return path;
        if (instance is null || !IsAtOrBelow(path, instance))
            return null;
        return FieldOwner + path.Substring(instance.Length);
    }

    /// <summary>A path kept per member (<see cref="FieldOwner"/>) in the terms of one access to the member, whose instance has this path.</summary>
    public static string? AtAccess(string? path, string? instance)
    {
        if (path is null || IsStatic(path))
            return path;
        return instance is not null && IsAtOrBelow(path, FieldOwner) ? instance + path.Substring(FieldOwner.Length) : null;
    }

    /// <summary>Whether the path is <paramref name="root"/> itself or a member path below it.</summary>
    public static bool IsAtOrBelow(string path, string root) =>
        path == root || path.Length > root.Length && path[root.Length] == '.' && path.StartsWith(root, StringComparison.Ordinal);

    /// <summary>Whether <see cref="Rebase"/> can name the path in a caller's terms: it starts at a static member, the receiver or a parameter.</summary>
    public static bool CanRebase(string path) =>
        IsStatic(path) || Split(path).Root is var root && (root == This || ParameterOrdinal(root) >= 0);

    /// <summary>Whether a path starts at a static field or property: it means the same in every body.</summary>
    public static bool IsStatic(string path) => path.StartsWith(StaticPrefix, StringComparison.Ordinal);

    /// <summary>
    /// A path that does not start at a static member, as its root (<c>$0</c>, <c>$this</c>, <c>l:dev</c>)
    /// and the members after it, each with its leading dot (<c>.cache</c>, or "").
    /// </summary>
    public static (string Root, string Members) Split(string path)
    {
        int dot = path.IndexOf('.');
        return dot < 0 ? (path, "") : (path.Substring(0, dot), path.Substring(dot));
    }

    /// <summary>The parameter ordinal a path is exactly, or -1.</summary>
    public static int ParameterOrdinal(string? path) =>
        path is { Length: > 1 } && path[0] == '$' && int.TryParse(path.Substring(1), out int ordinal) ? ordinal : -1;
}
