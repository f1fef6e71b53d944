using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace KmemGuard.Analyzers.Flow;

/// <summary>
/// Finds the annotated counterpart of an API for messages and fixes (the free that matches a family,
/// the release that matches an enter) among the methods of KmemGuard.Kernel and of the API's own type.
/// </summary>
internal sealed class ApiCatalog
{
    private readonly KmemGuardContext context;
    private readonly INamedTypeSymbol? kernel;
    private readonly ConcurrentDictionary<INamedTypeSymbol, ImmutableArray<(IMethodSymbol Method, ApiEffects Effects)>> annotated =
        new(SymbolEqualityComparer.Default);
    private readonly ConcurrentDictionary<IMethodSymbol, IMethodSymbol?> releases = new(SymbolEqualityComparer.Default);

    public ApiCatalog(KmemGuardContext context, Compilation compilation)
    {
        this.context = context;
        kernel = compilation.GetTypeByMetadataName("KmemGuard.Kernel");
    }

    /// <summary>"vfree or kvfree": the frees that accept the family, exact matches first.</summary>
    public string FreesFor(Family family, IMethodSymbol near)
    {
        var names = FirstNonEmpty(Candidates(near).Select(type => type.Where(c => c.Effects.Frees is { } f && (family & ~f.Accepts) == 0)))
            .OrderBy(c => c.Effects.Frees!.Accepts == family ? 0 : 1)
            .ThenBy(c => c.Method.Name, StringComparer.Ordinal)
            .Select(c => c.Method.Name)
            .Distinct()
            .Take(3)
            .ToList();
        return names.Count <= 1 ? string.Concat(names) : string.Join(", ", names.Take(names.Count - 1)) + " or " + names.Last();
    }

    public string? FirstFreeFor(Family family, IMethodSymbol near)
    {
        string all = FreesFor(family, near);
        int end = all.IndexOfAny(new[] { ',', ' ' });
        return all.Length == 0 ? null : end < 0 ? all : all.Substring(0, end);
    }

    /// <summary>The call that undoes <paramref name="enterer"/>, e.g. <c>spin_unlock_irqrestore(lock, flags)</c>, or "".</summary>
    public string ReleaseFor(IMethodSymbol enterer, Func<string, string> argumentText)
    {
        IMethodSymbol? release = releases.TryGetValue(enterer, out var known) ? known : releases.GetOrAdd(enterer, FindRelease);
        if (release is null)
            return "";
        // Optional parameters ([CallerFilePath] and the like) are left to their defaults.
        return release.Name + "(" + string.Join(", ", release.Parameters.Where(p => !p.IsOptional).Select(p => argumentText(p.Name))) + ")";
    }

    private IMethodSymbol? FindRelease(IMethodSymbol enterer)
    {
        ApiEffects effects = context.EffectsOf(enterer);
        var entered = new HashSet<Section>(effects.Enters.Concat(effects.EntersIfTrue).Select(s => s.Kind));
        var parameterNames = new HashSet<string>(enterer.Parameters.Select(p => p.Name), StringComparer.Ordinal);
        return FirstNonEmpty(Candidates(enterer).Select(type => type
                .Where(c => !c.Effects.Leaves.IsEmpty && entered.SetEquals(c.Effects.Leaves.Select(s => s.Kind)))
                .Where(c => c.Method.Parameters.All(p => p.IsOptional || parameterNames.Contains(p.Name)))))
            .OrderByDescending(c => c.Method.Parameters.Count(p => !p.IsOptional))
            .ThenByDescending(c => CommonAffixes(c.Method.Name, enterer.Name))
            .Select(c => c.Method)
            .FirstOrDefault();
    }

    /// <summary>How alike two names are: spin_lock/spin_unlock and get_cpu/put_cpu share their ends.</summary>
    private static int CommonAffixes(string a, string b)
    {
        int prefix = 0;
        while (prefix < a.Length && prefix < b.Length && a[prefix] == b[prefix])
            prefix++;
        int suffix = 0;
        while (suffix < a.Length - prefix && suffix < b.Length - prefix && a[a.Length - 1 - suffix] == b[b.Length - 1 - suffix])
            suffix++;
        return prefix + suffix;
    }

    /// <summary>The API's own type first (a wrapper family suggests its own functions), then KmemGuard.Kernel.</summary>
    private IEnumerable<ImmutableArray<(IMethodSymbol Method, ApiEffects Effects)>> Candidates(IMethodSymbol near) =>
        new[] { near.ContainingType, kernel }.Where(t => t is not null).Distinct<INamedTypeSymbol?>(SymbolEqualityComparer.Default)
            .Select(t => annotated.GetOrAdd(t!, Annotated));

    private static IEnumerable<T> FirstNonEmpty<T>(IEnumerable<IEnumerable<T>> groups) =>
        groups.Select(g => g.ToList()).FirstOrDefault(g => g.Count > 0) ?? Enumerable.Empty<T>();

    private ImmutableArray<(IMethodSymbol, ApiEffects)> Annotated(INamedTypeSymbol type) =>
        type.GetMembers().OfType<IMethodSymbol>()
            .Select(m => (m, context.EffectsOf(m)))
            .Where(p => p.Item2.IsAnnotated)
            .ToImmutableArray();
}
