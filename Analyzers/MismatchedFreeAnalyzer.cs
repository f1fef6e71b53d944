using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers;

/// <summary>KMG0002: memory freed by a function that does not match the allocator it came from (family, page order, cache).</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class MismatchedFreeAnalyzer : KmemGuardAnalyzer
{
    private protected override DiagnosticDescriptor Rule => Descriptors.MismatchedFree;
}
