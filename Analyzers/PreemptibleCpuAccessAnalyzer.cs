using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers;

/// <summary>KMG0003: per-CPU access or smp_processor_id() while the task can be preempted.</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class PreemptibleCpuAccessAnalyzer : KmemGuardAnalyzer
{
    private protected override DiagnosticDescriptor Rule => Descriptors.PreemptibleCpuAccess;
}
