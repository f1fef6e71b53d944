using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// The source methods a call may run: the target itself, the implementations of a virtual or
/// interface method in the compilation, or the methods assigned to the delegate field it invokes.
/// </summary>
internal sealed class CallTargets
{
    private readonly KmemGuardContext context;
    private readonly Compilation compilation;
    private readonly Lazy<ImmutableArray<INamedTypeSymbol>> sourceTypes;
    private readonly ConcurrentDictionary<IMethodSymbol, ImmutableArray<IMethodSymbol>> implementations = new(SymbolEqualityComparer.Default);

    public CallTargets(KmemGuardContext context, Compilation compilation)
    {
        this.context = context;
        this.compilation = compilation;
        sourceTypes = new Lazy<ImmutableArray<INamedTypeSymbol>>(CollectSourceTypes, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public ImmutableArray<IMethodSymbol> Of(IMethodSymbol target, IOperation? instance) => Of(target, DelegateMemberOf(instance));

    /// <summary>The field or property a delegate is invoked through, if the instance is one.</summary>
    public static ISymbol? DelegateMemberOf(IOperation? instance) => instance is null ? null : AccessPaths.Strip(instance) switch
    {
        IFieldReferenceOperation field => field.Field,
        IPropertyReferenceOperation property => property.Property,
        _ => null,
    };

    /// <summary>The targets of a call, given the field or property a delegate call goes through.</summary>
    public ImmutableArray<IMethodSymbol> Of(IMethodSymbol target, ISymbol? member)
    {
        target = target.ReducedFrom ?? target;
        if (target.MethodKind == MethodKind.DelegateInvoke)
        {
            return member is null ? ImmutableArray<IMethodSymbol>.Empty
                : context.Index.DelegateTargetsOf(member).Where(HasBody).Distinct<IMethodSymbol>(SymbolEqualityComparer.Default).ToImmutableArray();
        }

        if (target.MethodKind == MethodKind.LocalFunction)
            return ImmutableArray.Create(target);
        if (target.IsAbstract || target.IsVirtual || target.IsOverride)
            return implementations.TryGetValue(target.OriginalDefinition, out var known) ? known : implementations.GetOrAdd(target.OriginalDefinition, FindImplementations);
        return HasBody(target) ? ImmutableArray.Create(target) : ImmutableArray<IMethodSymbol>.Empty;
    }

    private static bool HasBody(IMethodSymbol method) =>
        !method.IsAbstract && (method.PartialImplementationPart ?? method).DeclaringSyntaxReferences.Length > 0;

    private ImmutableArray<IMethodSymbol> FindImplementations(IMethodSymbol target)
    {
        var found = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        if (HasBody(target))
            found.Add(target);
        bool onInterface = target.ContainingType.TypeKind == TypeKind.Interface;
        foreach (INamedTypeSymbol type in sourceTypes.Value)
        {
            if (onInterface)
            {
                if (type.FindImplementationForInterfaceMember(target) is IMethodSymbol implementation && HasBody(implementation))
                    found.Add(implementation.OriginalDefinition);
                continue;
            }

            foreach (IMethodSymbol method in type.GetMembers(target.Name).OfType<IMethodSymbol>())
            {
                for (IMethodSymbol? overridden = method.OverriddenMethod; overridden is not null; overridden = overridden.OverriddenMethod)
                {
                    if (SymbolEqualityComparer.Default.Equals(overridden.OriginalDefinition, target) && HasBody(method))
                    {
                        found.Add(method.OriginalDefinition);
                        break;
                    }
                }
            }
        }

        return found.ToImmutableArray();
    }

    private ImmutableArray<INamedTypeSymbol> CollectSourceTypes()
    {
        var types = ImmutableArray.CreateBuilder<INamedTypeSymbol>();
        var pending = new Stack<INamespaceOrTypeSymbol>();
        pending.Push(compilation.Assembly.GlobalNamespace);
        while (pending.Count > 0)
        {
            INamespaceOrTypeSymbol current = pending.Pop();
            if (current is INamespaceSymbol ns)
            {
                foreach (INamespaceOrTypeSymbol member in ns.GetMembers())
                    pending.Push(member);
            }
            else if (current is INamedTypeSymbol type)
            {
                if (type.TypeKind is TypeKind.Class or TypeKind.Struct)
                    types.Add(type);
                foreach (INamedTypeSymbol nested in type.GetTypeMembers())
                    pending.Push(nested);
            }
        }

        return types.ToImmutable();
    }
}
