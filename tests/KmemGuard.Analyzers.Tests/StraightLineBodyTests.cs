using System.Collections.Generic;
using System.IO;
using System.Linq;
using KmemGuard.Analyzers.Corpus;
using KmemGuard.Analyzers.Flow;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;
using Xunit;

namespace KmemGuard.Analyzers.Tests;

/// <summary>
/// A body without branches is analysed without its control-flow graph: the result must be the one the
/// graph gives, finding for finding and summary for summary.
/// </summary>
public class StraightLineBodyTests
{
    [Theory]
    [InlineData("void f() { a(); int x = b(); x++; c(x); }", true)]
    [InlineData("int f() => b();", true)]
    [InlineData("int f() { a(); return b(); }", true)]
    [InlineData("void f() { { a(); } ; }", true)]
    [InlineData("void f() { a(); return; }", true)]
    [InlineData("void f() { if (b() > 0) a(); }", false)]
    [InlineData("bool f() => b() > 0 && b() < 9;", false)]
    [InlineData("int f() => b() > 0 ? 1 : 2;", false)]
    [InlineData("void f() { object? o = null; o?.ToString(); }", false)]
    [InlineData("void f() { var l = new System.Collections.Generic.List<int> { 1 }; }", false)]
    [InlineData("void f() { System.Action g = () => a(); }", false)]
    [InlineData("void f() { return; a(); }", false)]
    [InlineData("void f() { for (;;) a(); }", false)]
    [InlineData("void f() { try { a(); } finally { a(); } }", false)]
    [InlineData("void f() { throw new System.Exception(); }", false)]
    [InlineData("bool f() => b() is 3;", false)]
    [InlineData("string f() => $\"{b()}\";", false)]
    public void ShapesThatTakeTheStraightLine(string method, bool straight)
    {
        Compilation compilation = Compilations.Create(new[] { ("Shape.cs", "class C { void a() { } int b() => 1; void c(int x) { } " + method + " }") }, withPrelude: false);
        SyntaxTree tree = compilation.SyntaxTrees.Single();
        var declaration = tree.GetRoot().DescendantNodes().OfType<MethodDeclarationSyntax>().Single(m => m.Identifier.ValueText == "f");
        IOperation body = compilation.GetSemanticModel(tree).GetOperation(declaration)!;

        Assert.Equal(straight, StraightLineBody.Of(body) is not null);
    }

    /// <summary>Every straight-line body of the samples and of a generated corpus with seeded bugs, both ways.</summary>
    [Fact]
    public void StraightLineAnalysisEqualsTheGraphs()
    {
        var sources = CorpusGenerator.Generate(files: 16, seedBugs: true).Files
            .Concat(Directory.GetFiles(System.IO.Path.Combine(RuleDocumentationTests.RepositoryRoot, "samples"), "*.cs", SearchOption.AllDirectories)
                .Where(p => !p.Contains("/obj/") && !p.Contains("/bin/"))
                .Select(p => (p, File.ReadAllText(p))));
        Compilation compilation = Compilations.Create(sources, withPrelude: false);
        KmemGuardContext context = KmemGuardContext.For(compilation)!;
        int compared = 0, withFindings = 0;
        foreach (SyntaxTree tree in compilation.SyntaxTrees)
        {
            SemanticModel model = compilation.GetSemanticModel(tree);
            foreach (BaseMethodDeclarationSyntax declaration in tree.GetRoot().DescendantNodes().OfType<BaseMethodDeclarationSyntax>())
            {
                if (model.GetOperation(declaration) is not { } body || StraightLineBody.Of(body) is not { } straight
                    || model.GetDeclaredSymbol(declaration) is not IMethodSymbol method)
                {
                    continue;
                }

                ControlFlowGraph graph = body is IMethodBodyOperation methodBody ? ControlFlowGraph.Create(methodBody) : ControlFlowGraph.Create((IConstructorBodyOperation)body);
                string viaGraph = Describe(BodyAnalysis.Run(context, graph, method, FlowState.Empty, collectFindings: true));
                string viaLine = Describe(BodyAnalysis.Run(context, straight, method, FlowState.Empty));
                Assert.Equal(viaGraph, viaLine);
                compared++;
                if (viaLine.Contains("KMG"))
                    withFindings++;
            }
        }

        // Enough bodies, some with findings, for the comparison to say something.
        Assert.True(compared > 100, $"only {compared} straight-line bodies compared");
        Assert.True(withFindings > 0, "no straight-line body with a finding was compared");
    }

    private static string Describe(BodyResult result)
    {
        var lines = result.Findings.Select(f => f.ToDiagnostic())
            .Select(d => $"{d.Id} {d.Location.GetLineSpan()} {d.GetMessage()} | {string.Join("; ", d.AdditionalLocations.Select(l => l.GetLineSpan().ToString()))}"
                + $" | {string.Join(", ", d.Properties.OrderBy(p => p.Key).Select(p => p.Key + "=" + p.Value))}")
            .ToList();
        MethodSummary summary = result.Summary;
        lines.Add("sleeps: " + DescribeSleep(summary.Sleeps));
        lines.AddRange(summary.SleepsIfGfp.OrderBy(p => p.Key).Select(p => $"sleeps if {p.Key}: {DescribeSleep(p.Value)}"));
        lines.AddRange(summary.Returns.Select(o => $"returns {o.Family} {o.Order} {o.Owner} {o.Allocator} {o.Location.GetLineSpan()}"));
        lines.AddRange(summary.FreesParameter.OrderBy(p => p.Key)
            .Select(p => $"frees {p.Key}: {p.Value.Accepts} {p.Value.Freer.Name} {string.Join("→", p.Value.Chain)} {p.Value.Order} {p.Value.Location.GetLineSpan()}"));
        lines.AddRange(summary.SectionChanges.Select(c => $"section {c.Id} {c.Delta}"));
        lines.Add("needs preemption off: " + DescribeSleep(summary.NeedsPreemptionOff));
        lines.AddRange(summary.EntersIfTrue.Select(id => $"enters if true {id}"));
        return string.Join("\n", lines);
    }

    private static string DescribeSleep(SleepPath? path) =>
        path is null ? "-" : $"{string.Join("→", path.Chain)} {path.Leaf} {path.LeafName} {path.LeafLocation.GetLineSpan()}";
}
