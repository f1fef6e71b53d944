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
    private readonly ConcurrentDictionary<NameInScope, Lazy<Dictionary<ISymbol, ImmutableArray<AssignedValue>>>> assignmentsByName = new();
    private readonly ConcurrentDictionary<ISymbol, ImmutableArray<AllocationOrigin>> memberOrigins = new(SymbolEqualityComparer.Default);
    private readonly ConcurrentDictionary<NameInScope, Lazy<Dictionary<IMethodSymbol, CallbackRegistration>>> callbacksByName = new();
    private readonly ConcurrentDictionary<NameInScope, Lazy<HashSet<IMethodSymbol>>> calledByName = new();

    public CompilationIndex(KmemGuardContext context, Compilation compilation)
    {
        this.context = context;
        names = new Lazy<NameIndex>(() => NameIndex.Build(compilation), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>
    /// Every allocation that any assignment in the compilation stores into the field or property. A cache
    /// it came from is named relative to the object the member belongs to (<see cref="AccessPaths.FieldOwner"/>)
    /// when the assignment named it so (<c>buf = get(cache)</c>, <c>d.buf = get(d.cache)</c>), else not at all.
    /// </summary>
    public ImmutableArray<AllocationOrigin> OriginsOf(ISymbol member) =>
        memberOrigins.TryGetValue(member, out var known) ? known : memberOrigins.GetOrAdd(member, m => AssignedValues(m)
            .SelectMany(value => value.Allocation is { } allocation ? new[] { allocation }
                : value.Called is { } called
                    ? context.Targets.Of(called, value.CalledThrough).SelectMany(t => context.Summaries.Get(t).Returns.Select(o => o with
                        {
                            Owner = AccessPaths.Rebase(o.Owner, ordinal => ordinal < value.Arguments.Length ? value.Arguments[ordinal] : null, value.Receiver),
                        }))
                    : Enumerable.Empty<AllocationOrigin>())
            .Distinct()
            .ToImmutableArray());

    /// <summary>The methods, lambdas and anonymous methods a delegate-typed field or property is ever assigned (ops tables).</summary>
    public IEnumerable<IMethodSymbol> DelegateTargetsOf(ISymbol member) =>
        AssignedValues(member).Select(value => value.Delegate).OfType<IMethodSymbol>();

    private ImmutableArray<AssignedValue> AssignedValues(ISymbol member) =>
        AssignmentsNamed(NameInScope.Of(member)).TryGetValue(member.OriginalDefinition, out var values) ? values : ImmutableArray<AssignedValue>.Empty;

    /// <summary>All assignments to members of this name (in this scope), bound once and grouped by member (many types share field names).</summary>
    private Dictionary<ISymbol, ImmutableArray<AssignedValue>> AssignmentsNamed(NameInScope name) => OncePer(assignmentsByName, name, BindAssignments);

    /// <summary>
    /// Builds a by-name entry exactly once: binding the candidates of a name touches many trees, and two
    /// threads asking for the same name at the same time would otherwise both do it.
    /// </summary>
    private static T OncePer<T>(ConcurrentDictionary<NameInScope, Lazy<T>> cache, NameInScope name, Func<NameInScope, T> build) =>
        (cache.TryGetValue(name, out var known) ? known : cache.GetOrAdd(name, n => new Lazy<T>(() => build(n), LazyThreadSafetyMode.ExecutionAndPublication))).Value;

    private Dictionary<ISymbol, ImmutableArray<AssignedValue>> BindAssignments(NameInScope name)
    {
        var byMember = new Dictionary<ISymbol, ImmutableArray<AssignedValue>>(SymbolEqualityComparer.Default);
        foreach (SyntaxNode candidate in names.Value.Assignments.Of(name))
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
            ISymbol? body = model.GetEnclosingSymbol(candidate.SpanStart);
            byMember[key] = (byMember.TryGetValue(key, out var known) ? known : ImmutableArray<AssignedValue>.Empty)
                .Add(AssignedValue.Of(context, AccessPaths.Strip(operation), body, OwnerPathOf(model, candidate, target)));
        }

        return byMember;
    }

    /// <summary>
    /// The path, in the assigning body's terms, of the object whose member an assignment stores into:
    /// <c>$this</c> for an initializer or <c>buf = ...</c>, <c>$0</c> for <c>d.buf = ...</c> with d the
    /// first parameter; null for a static member or an instance with no path.
    /// </summary>
    private static string? OwnerPathOf(SemanticModel model, SyntaxNode candidate, ISymbol target)
    {
        if (target.IsStatic)
            return null;
        if (candidate is not AssignmentExpressionSyntax assignment)
            return AccessPaths.This;
        IOperation? instance = model.GetOperation(assignment.Left) switch
        {
            IMemberReferenceOperation member => member.Instance,
            _ => null,
        };
        return AccessPaths.Of(instance, model.GetEnclosingSymbol(assignment.SpanStart), NoCaptures);
    }

    /// <summary>Operation trees outside a control-flow graph have no flow captures.</summary>
    private static string NoCaptures(Microsoft.CodeAnalysis.FlowAnalysis.CaptureId id) => "#";

    /// <summary>Where the method is passed to a [RunsCallback] parameter that runs it in atomic context.</summary>
    public CallbackRegistration? CallbackOf(IMethodSymbol method) =>
        CallbacksNamed(NameInScope.Of(method)).TryGetValue(method.OriginalDefinition, out var registration) ? registration : null;

    /// <summary>Every atomic callback registration of methods with this name (in this scope), bound once (hard-irq wins over softirq).</summary>
    private Dictionary<IMethodSymbol, CallbackRegistration> CallbacksNamed(NameInScope name) => OncePer(callbacksByName, name, BindCallbacks);

    private Dictionary<IMethodSymbol, CallbackRegistration> BindCallbacks(NameInScope name)
    {
        var byMethod = new Dictionary<IMethodSymbol, CallbackRegistration>(SymbolEqualityComparer.Default);
        foreach (ArgumentSyntax argument in names.Value.Arguments.Of(name))
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
        && CalledNamed(NameInScope.Of(method)).Contains(method.OriginalDefinition);

    private static bool IsExternallyVisible(ISymbol symbol)
    {
        for (ISymbol? current = symbol; current is not null and not INamespaceSymbol; current = current.ContainingSymbol)
        {
            if (current.DeclaredAccessibility is not (Accessibility.Public or Accessibility.Protected or Accessibility.ProtectedOrInternal))
                return false;
        }

        return true;
    }

    /// <summary>The methods of this name (in this scope) that some invocation in the compilation calls from another body, bound once.</summary>
    private HashSet<IMethodSymbol> CalledNamed(NameInScope name) => OncePer(calledByName, name, BindCalls);

    private HashSet<IMethodSymbol> BindCalls(NameInScope name)
    {
        var called = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
        foreach (InvocationExpressionSyntax invocation in names.Value.Invocations.Of(name))
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
    /// A member's name and, for a private member, the name of the type it belongs to: a private member can
    /// be named only inside that type's declarations (its partial parts and nested types included), so the
    /// candidates elsewhere need no binding. Drivers repeat names (every device has its <c>lock</c> and its
    /// <c>irq_handler</c>); without the scope, the first lookup of a name would bind a body in every file
    /// and keep each file's bound trees alive while the rest of the build runs.
    /// </summary>
    private readonly record struct NameInScope(string Name, string? DeclaringType)
    {
        public static NameInScope Of(ISymbol member) =>
            new(member.Name, member.DeclaredAccessibility == Accessibility.Private ? member.ContainingType?.Name : null);
    }

    /// <summary>
    /// What an assignment stores, as symbols and origins rather than operations: an operation keeps its
    /// semantic model, and with it the bound trees of a whole file, alive for the rest of the build.
    /// </summary>
    /// <remarks>
    /// Paths in it are relative to the object whose member is assigned (<see cref="AccessPaths.FieldOwner"/>):
    /// the allocation's cache, and a called helper's arguments (by parameter ordinal) and receiver.
    /// </remarks>
    private sealed record AssignedValue(IMethodSymbol? Delegate, AllocationOrigin? Allocation, IMethodSymbol? Called, ISymbol? CalledThrough,
        ImmutableArray<string?> Arguments, string? Receiver)
    {
        public static AssignedValue Of(KmemGuardContext context, IOperation value, ISymbol? body, string? owner)
        {
            IMethodSymbol? assignedDelegate = (value is IDelegateCreationOperation creation ? creation.Target : value) switch
            {
                IMethodReferenceOperation reference => reference.Method,
                IAnonymousFunctionOperation lambda => lambda.Symbol,
                _ => null,
            };
            if (value is not IInvocationOperation call)
                return new AssignedValue(assignedDelegate, null, null, null, ImmutableArray<string?>.Empty, null);
            string? Relative(IOperation? operation) => AccessPaths.RelativeTo(AccessPaths.Of(operation, body, NoCaptures), owner);
            if (context.EffectsOf(call.TargetMethod).Allocates is { } allocation)
            {
                var origin = BodyAnalysis.OriginOf(allocation, call.TargetMethod.Name, call.Arguments, call.Syntax.GetLocation(), Relative);
                return new AssignedValue(null, origin, null, null, ImmutableArray<string?>.Empty, null);
            }

            var arguments = new string?[call.TargetMethod.Parameters.Length];
            foreach (IArgumentOperation argument in call.Arguments)
            {
                if (argument.Parameter is { Ordinal: var ordinal } && ordinal < arguments.Length)
                    arguments[ordinal] = Relative(argument.Value);
            }

            string? receiver = call.Instance is null ? null : Relative(call.Instance);
            return new AssignedValue(null, null, call.TargetMethod, CallTargets.DelegateMemberOf(call.Instance), arguments.ToImmutableArray(), receiver);
        }
    }

    /// <summary>Syntax nodes by the name they assign, pass or call, and by that name within each type declaration around them.</summary>
    private sealed class Candidates<T>
        where T : SyntaxNode
    {
        private readonly Dictionary<string, List<T>> anywhere = new(StringComparer.Ordinal);
        private readonly Dictionary<(string Type, string Name), List<T>> inType = new();

        public IReadOnlyList<T> Of(NameInScope name) =>
            (name.DeclaringType is { } type ? inType.TryGetValue((type, name.Name), out var inside) ? inside : null
                : anywhere.TryGetValue(name.Name, out var all) ? all : null) ?? (IReadOnlyList<T>)Array.Empty<T>();

        public void Add(string name, T node, List<string> enclosingTypes)
        {
            AddTo(anywhere, name, node);
            foreach (string type in enclosingTypes)
                AddTo(inType, (type, name), node);
        }

        private static void AddTo<TKey>(Dictionary<TKey, List<T>> map, TKey key, T node)
            where TKey : notnull
        {
            if (!map.TryGetValue(key, out var list))
                map[key] = list = new List<T>();
            list.Add(node);
        }
    }

    private sealed class NameIndex
    {
        public Candidates<SyntaxNode> Assignments { get; } = new();
        public Candidates<ArgumentSyntax> Arguments { get; } = new();
        public Candidates<InvocationExpressionSyntax> Invocations { get; } = new();

        public static NameIndex Build(Compilation compilation)
        {
            var index = new NameIndex();
            foreach (SyntaxTree tree in compilation.SyntaxTrees)
                index.Visit(tree.GetRoot());
            return index;
        }

        /// <summary>
        /// Depth first in document order, keeping the names of the type declarations around each node. An
        /// explicit stack, since expressions nest deeper than a call stack should; a null on it marks the
        /// end of a type declaration.
        /// </summary>
        private void Visit(SyntaxNode root)
        {
            var enclosingTypes = new List<string>();
            var pending = new Stack<SyntaxNode?>();
            pending.Push(root);
            while (pending.Count > 0)
            {
                if (pending.Pop() is not { } node)
                {
                    enclosingTypes.RemoveAt(enclosingTypes.Count - 1);
                    continue;
                }

                if (HoldsNoCandidates(node))
                    continue;
                Index(node, enclosingTypes);
                if (node is BaseTypeDeclarationSyntax type)
                {
                    enclosingTypes.Add(type.Identifier.ValueText);
                    pending.Push(null);
                }

                foreach (SyntaxNodeOrToken child in node.ChildNodesAndTokens().Reverse())
                {
                    if (child.AsNode() is { } childNode)
                        pending.Push(childNode);
                }
            }
        }

        /// <summary>
        /// Names, directives, attributes and parameter lists: nothing in them assigns, passes or calls a
        /// member (the walk touches every node of every file, so these are not even entered).
        /// </summary>
        private static bool HoldsNoCandidates(SyntaxNode node) => (SyntaxKind)node.RawKind is SyntaxKind.IdentifierName or SyntaxKind.PredefinedType
            or SyntaxKind.QualifiedName or SyntaxKind.GenericName or SyntaxKind.AliasQualifiedName or SyntaxKind.UsingDirective
            or SyntaxKind.AttributeList or SyntaxKind.ParameterList or SyntaxKind.BracketedParameterList or SyntaxKind.TypeParameterList
            or SyntaxKind.TypeParameterConstraintClause or SyntaxKind.BaseList or SyntaxKind.NumericLiteralExpression
            or SyntaxKind.StringLiteralExpression or SyntaxKind.TrueLiteralExpression or SyntaxKind.FalseLiteralExpression
            or SyntaxKind.NullLiteralExpression;

        /// <summary>Dispatches on the kind, one integer test per node, before any type test.</summary>
        private void Index(SyntaxNode node, List<string> enclosingTypes)
        {
            switch ((SyntaxKind)node.RawKind)
            {
                case SyntaxKind.SimpleAssignmentExpression when RightmostName(((AssignmentExpressionSyntax)node).Left) is { } name:
                    Assignments.Add(name, node, enclosingTypes);
                    break;
                case SyntaxKind.VariableDeclarator when node is VariableDeclaratorSyntax { Initializer: not null, Parent.Parent: FieldDeclarationSyntax } declarator:
                    Assignments.Add(declarator.Identifier.ValueText, node, enclosingTypes);
                    break;
                case SyntaxKind.PropertyDeclaration when node is PropertyDeclarationSyntax { Initializer: not null } property:
                    Assignments.Add(property.Identifier.ValueText, node, enclosingTypes);
                    break;
                case SyntaxKind.Argument when node is ArgumentSyntax argument && RightmostName(argument.Expression) is { } passed:
                    Arguments.Add(passed, argument, enclosingTypes);
                    break;
                case SyntaxKind.InvocationExpression when node is InvocationExpressionSyntax invocation && RightmostName(invocation.Expression) is { } callee:
                    Invocations.Add(callee, invocation, enclosingTypes);
                    break;
            }
        }

        private static string? RightmostName(ExpressionSyntax expression) => expression switch
        {
            IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
            MemberAccessExpressionSyntax access => access.Name.Identifier.ValueText,
            _ => null,
        };
    }
}
