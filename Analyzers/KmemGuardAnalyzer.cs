using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace KmemGuard.Analyzers;

/// <summary>
/// Shared registration for the rule analyzers: each reports, per method body, the findings of its own
/// rule. Findings come from one flow analysis per body shared by all rules.
/// </summary>
public abstract class KmemGuardAnalyzer : DiagnosticAnalyzer
{
    private protected abstract DiagnosticDescriptor Rule { get; }

    public sealed override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Rule);

    public sealed override void Initialize(AnalysisContext context)
    {
        context.EnableConcurrentExecution();
        // No callbacks on generated code (files, and symbols with [GeneratedCode]); but a finding is always in
        // the body being analyzed, so the driver need not check each reported location again: that check
        // scans the reporting file's tokens for a [GeneratedCode] attribute, per file with a diagnostic.
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.ReportDiagnostics);
        context.RegisterCompilationStartAction(start =>
        {
            if (KmemGuardContext.For(start.Compilation) is not { } kmem)
                return;
            start.RegisterOperationBlockAction(block =>
            {
                foreach (var finding in kmem.FindingsOf(block))
                {
                    if (finding.Descriptor.Id == Rule.Id)
                        block.ReportDiagnostic(finding.ToDiagnostic());
                }
            });
        });
    }
}
