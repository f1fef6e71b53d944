using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers;

/// <summary>KMG0001: a call that may sleep (sleeping GFP mask, vmalloc, mutex_lock, msleep, or a source method that reaches one) in atomic context.</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class SleepInAtomicAnalyzer : KmemGuardAnalyzer
{
    private protected override DiagnosticDescriptor Rule => Descriptors.SleepInAtomic;
}
