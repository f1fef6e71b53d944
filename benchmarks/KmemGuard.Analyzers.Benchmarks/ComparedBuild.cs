using System;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers.Benchmarks;

/// <summary>
/// Another build of KmemGuard.Analyzers, loaded beside this one in a load context of its own, so that
/// two builds run in the same process and the same rounds. Only the analyzer assembly is its own: Roslyn
/// and everything else resolve to the default context, so its analyzers run on the same compilations.
/// </summary>
internal static class ComparedBuild
{
    public static ImmutableArray<DiagnosticAnalyzer> Load(string path)
    {
        var context = new AssemblyLoadContext("compared KmemGuard.Analyzers");
        Assembly assembly = context.LoadFromAssemblyPath(path);
        var analyzers = assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(DiagnosticAnalyzer).IsAssignableFrom(t) && t.GetCustomAttributes<DiagnosticAnalyzerAttribute>().Any())
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .Select(t => (DiagnosticAnalyzer)Activator.CreateInstance(t)!)
            .ToImmutableArray();
        if (analyzers.IsEmpty)
            throw new InvalidDataException("No analyzers in the compared build " + path);
        return analyzers;
    }
}
