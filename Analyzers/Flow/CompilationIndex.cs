using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// Compilation-wide facts that a single body cannot see: what a field is ever assigned (its
/// allocations, its delegate targets), where a method is registered as an atomic callback, and
/// whether anything calls it.
/// One syntactic pass over the trees indexes candidates by name; symbols are bound on demand and cached.
/// </summary>
internal sealed class CompilationIndex
{
    private readonly KmemGuardContext context;
    private readonly Lazy<NameIndex> names;
    private readonly ConcurrentDictionary<string, Lazy<Dictionary<ISymbol, ImmutableArray<AssignedValue>>>> assignmentsByName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<ISymbol, ImmutableArray<AllocationOrigin>> memberOrigins = new(SymbolEqualityComparer.Default);
    private readonly ConcurrentDictionary<string, Lazy<Dictionary<IMethodSymbol, CallbackRegistration>>> callbacksByName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<HashSet<IMethodSymbol>>> calledByName = new(StringComparer.Ordinal);

    public CompilationIndex(KmemGuardContext context, Compilation compilation)
    {
        this.context = context;
        names = new Lazy<NameIndex>(() => NameIndex.Build(compilation), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Every allocation that any assignment in the compilation stores into the field or property.</summary>
    public ImmutableArray<AllocationOrigin> OriginsOf(ISymbol member) =>
        memberOrigins.GetOrAdd(member, m => AssignedValues(m)
            .SelectMany(value => value.Allocation is { } allocation ? new[] { allocation }
                : value.Called is { } called
                    ? context.Targets.Of(called, value.CalledThrough).SelectMany(t => context.Summaries.Get(t).Returns.Select(o => o with { Owner = null }))
                    : Enumerable.Empty<AllocationOrigin>())
            .Distinct()
            .ToImmutableArray());

    /// <summary>The methods, lambdas and anonymous methods a delegate-typed field or property is ever assigned (ops tables).</summary>
    public IEnumerable<IMethodSymbol> DelegateTargetsOf(ISymbol member) =>
        AssignedValues(member).Select(value => value.Delegate).OfType<IMethodSymbol>();

    private ImmutableArray<AssignedValue> AssignedValues(ISymbol member) =>
        AssignmentsNamed(member.Name).TryGetValue(member.OriginalDefinition, out var values) ? values : ImmutableArray<AssignedValue>.Empty;

    /// <summary>All assignments to members of this name, bound once and grouped by member (many types share field names).</summary>
    private Dictionary<ISymbol, ImmutableArray<AssignedValue>> AssignmentsNamed(string name) => OncePer(assignmentsByName, name, BindAssignments);

    /// <summary>
    /// Builds a by-name entry exactly once: binding the candidates of a name touches many trees, and two
    /// threads asking for the same name at the same time would otherwise both do it.
    /// </summary>
    private static T OncePer<T>(ConcurrentDictionary<string, Lazy<T>> cache, string name, Func<string, T> build) =>
        cache.GetOrAdd(name, n => new Lazy<T>(() => build(n), LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    private Dictionary<ISymbol, ImmutableArray<AssignedValue>> BindAssignments(string name)
    {
        var byMember = new Dictionary<ISymbol, ImmutableArray<AssignedValue>>(SymbolEqualityComparer.Default);
        if (!names.Value.Assignments.TryGetValue(name, out var candidates))
            return byMember;
        foreach (SyntaxNode candidate in candidates)
        {
            SemanticModel model = Model(candidate.SyntaxTree);
            (ISymbol? target, ExpressionSyntax? value) = candidate switch
            {
                AssignmentExpressionSyntax assignment => (model.GetSymbolInfo(assignment.Left).Symbol, assignment.Right),
                VariableDeclaratorSyntax declarator => (model.GetDeclaredSymbol(declarator), declarator.Initializer?.Value),
                PropertyDeclarationSyntax property => (model.GetDeclaredSymbol(property), property.Initializer?.Value),
                _ => (null, null),
            };
            if (target is null || value is null || model.GetOperation(value) is not { } operation)
                continue;
            ISymbol key = target.OriginalDefinition;
            byMember[key] = (byMember.TryGetValue(key, out var known) ? known : ImmutableArray<AssignedValue>.Empty).Add(AssignedValue.Of(context, AccessPaths.Strip(operation)));
        }

        return byMember;
    }

    /// <summary>Where the method is passed to a [RunsCallback] parameter that runs it in atomic context.</summary>
    public CallbackRegistration? CallbackOf(IMethodSymbol method) =>
        CallbacksNamed(method.Name).TryGetValue(method.OriginalDefinition, out var registration) ? registration : null;

    /// <summary>Every atomic callback registration of methods with this name, bound once (hard-irq wins over softirq).</summary>
    private Dictionary<IMethodSymbol, CallbackRegistration> CallbacksNamed(string name) => OncePer(callbacksByName, name, BindCallbacks);

    private Dictionary<IMethodSymbol, CallbackRegistration> BindCallbacks(string name)
    {
        var byMethod = new Dictionary<IMethodSymbol, CallbackRegistration>(SymbolEqualityComparer.Default);
        if (!names.Value.Arguments.TryGetValue(name, out var candidates))
            return byMethod;
        foreach (ArgumentSyntax argument in candidates)
        {
            // Symbols, not the argument's operation: an operation is built with the operation tree of the
            // whole registering body, which its semantic model then keeps; symbols bind the call's statement.
            if (argument.Parent is not ArgumentListSyntax { Parent: InvocationExpressionSyntax invocation } list)
                continue;
            SemanticModel model = Model(argument.SyntaxTree);
            if (model.GetSymbolInfo(argument.Expression).Symbol is not IMethodSymbol handler
                || model.GetSymbolInfo(invocation).Symbol is not IMethodSymbol registrar
                || ParameterFor(registrar, list, argument) is not { Type.TypeKind: TypeKind.Delegate } parameter)
            {
                continue;
            }

            foreach (CallbackSpec spec in context.EffectsOf(registrar).Callbacks)
            {
                IMethodSymbol key = handler.OriginalDefinition;
                if (spec.DelegateParameter == parameter.Name && SectionFacts.ForCallback(spec.Context) is { } atomic
                    && (!byMethod.TryGetValue(key, out var known) || atomic == Section.HardIrqContext && known.Context != atomic))
                {
                    byMethod[key] = new CallbackRegistration(atomic, BodyAnalysis.CallbackDescription(registrar, spec), invocation.GetLocation());
                }
            }
        }

        return byMethod;
    }

    /// <summary>The parameter an argument is passed to: by its name, or by its position.</summary>
    private static IParameterSymbol? ParameterFor(IMethodSymbol method, ArgumentListSyntax list, ArgumentSyntax argument)
    {
        if (argument.NameColon is { } named)
            return method.Parameters.FirstOrDefault(p => p.Name == named.Name.Identifier.ValueText);
        int position = list.Arguments.IndexOf(argument);
        return position < method.Parameters.Length ? method.Parameters[position] : null;
    }

    /// <summary>
    /// Whether a per-CPU access in the method is its callers' to pin: it is a method or local function
    /// that other assemblies cannot call and that is called by name somewhere in the compilation
    /// outside its own body (a recursive call is no caller).
    /// </summary>
    public bool LeavesPinningToCallers(IMethodSymbol method) =>
        method.MethodKind is MethodKind.Ordinary or MethodKind.LocalFunction
        && !IsExternallyVisible(method)
        && CalledNamed(method.Name).Contains(method.OriginalDefinition);

    private static bool IsExternallyVisible(ISymbol symbol)
    {
        for (ISymbol? current = symbol; current is not null and not INamespaceSymbol; current = current.ContainingSymbol)
        {
            if (current.DeclaredAccessibility is not (Accessibility.Public or Accessibility.Protected or Accessibility.ProtectedOrInternal))
                return false;
        }

        return true;
    }

    /// <summary>The methods of this name that some invocation in the compilation calls from another body, bound once.</summary>
    private HashSet<IMethodSymbol> CalledNamed(string name) => OncePer(calledByName, name, BindCalls);

    private HashSet<IMethodSymbol> BindCalls(string name)
    {
        var called = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        if (!names.Value.Invocations.TryGetValue(name, out var candidates))
            return called;
        foreach (InvocationExpressionSyntax invocation in candidates)
        {
            SemanticModel model = Model(invocation.SyntaxTree);
            if (model.GetSymbolInfo(invocation).Symbol is IMethodSymbol method
                && !SymbolEqualityComparer.Default.Equals(model.GetEnclosingSymbol(invocation.SpanStart)?.OriginalDefinition, method.OriginalDefinition))
            {
                called.Add((method.ReducedFrom ?? method).OriginalDefinition);
            }
        }

        return called;
    }

    private SemanticModel Model(SyntaxTree tree) => context.ModelOf(tree);

    /// <summary>
    /// What an assignment stores, as symbols and origins rather than operations: an operation keeps its
    /// semantic model, and with it the bound trees of a whole file, alive for the rest of the build.
    /// </summary>
    private sealed record AssignedValue(IMethodSymbol? Delegate, AllocationOrigin? Allocation, IMethodSymbol? Called, ISymbol? CalledThrough)
    {
        public static AssignedValue Of(KmemGuardContext context, IOperation value)
        {
            IMethodSymbol? assignedDelegate = (value is IDelegateCreationOperation creation ? creation.Target : value) switch
            {
                IMethodReferenceOperation reference => reference.Method,
                IAnonymousFunctionOperation lambda => lambda.Symbol,
                _ => null,
            };
            if (value is not IInvocationOperation call)
                return new AssignedValue(assignedDelegate, null, null, null);
            return context.EffectsOf(call.TargetMethod).Allocates is { } allocation
                ? new AssignedValue(null, BodyAnalysis.OriginOf(allocation, call.TargetMethod.Name, call.Arguments, call.Syntax.GetLocation(), _ => null), null, null)
                : new AssignedValue(null, null, call.TargetMethod, CallTargets.DelegateMemberOf(call.Instance));
        }
    }

    private sealed class NameIndex
    {
        public Dictionary<string, List<SyntaxNode>> Assignments { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, List<ArgumentSyntax>> Arguments { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, List<InvocationExpressionSyntax>> Invocations { get; } = new(StringComparer.Ordinal);

        public static NameIndex Build(Compilation compilation)
        {
            var index = new NameIndex();
            foreach (SyntaxTree tree in compilation.SyntaxTrees)
            {
                foreach (SyntaxNode node in tree.GetRoot().DescendantNodes())
                {
                    switch (node)
                    {
                        case AssignmentExpressionSyntax { RawKind: (int)SyntaxKind.SimpleAssignmentExpression } assignment when RightmostName(assignment.Left) is { } name:
                            Add(index.Assignments, name, node);
                            break;
                        case VariableDeclaratorSyntax { Initializer: not null, Parent.Parent: FieldDeclarationSyntax } declarator:
                            Add(index.Assignments, declarator.Identifier.ValueText, node);
                            break;
                        case PropertyDeclarationSyntax { Initializer: not null } property:
                            Add(index.Assignments, property.Identifier.ValueText, node);
                            break;
                        case ArgumentSyntax argument when RightmostName(argument.Expression) is { } passed:
                            Add(index.Arguments, passed, argument);
                            break;
                        case InvocationExpressionSyntax invocation when RightmostName(invocation.Expression) is { } callee:
                            Add(index.Invocations, callee, invocation);
                            break;
                    }
                }
            }

            return index;
        }

        private static string? RightmostName(ExpressionSyntax expression) => expression switch
        {
            IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
            MemberAccessExpressionSyntax access => access.Name.Identifier.ValueText,
            _ => null,
        };

        private static void Add<T>(Dictionary<string, List<T>> map, string name, T node)
        {
            if (!map.TryGetValue(name, out var list))
                map[name] = list = new List<T>();
            list.Add(node);
        }
    }
}
