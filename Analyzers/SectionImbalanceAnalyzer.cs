using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers;

/// <summary>KMG0004: a lock, preempt, irq, bh or RCU section entered and not left (or left and not entered) on some path.</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class SectionImbalanceAnalyzer : KmemGuardAnalyzer
{
    private protected override DiagnosticDescriptor Rule => Descriptors.SectionImbalance;
}
