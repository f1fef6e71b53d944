using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using KmemGuard.Analyzers.Corpus;
using Microsoft.CodeAnalysis;
using Xunit;

namespace KmemGuard.Analyzers.Tests;

/// <summary>Analyzer exceptions are bugs (AD0001), and valid driver code must stay quiet.</summary>
public class RobustnessTests
{
    [Fact]
    public async Task GeneratedValidProgramsYieldNoDiagnostics()
    {
        GeneratedCorpus corpus = CorpusGenerator.Generate(files: 12, seedBugs: false);
        Compilation compilation = Compilations.Create(corpus.Files, withPrelude: false);
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.Empty(diagnostics.Where(d => d.Id.StartsWith("KMG", StringComparison.Ordinal) || d.Id == "AD0001"));
    }

    [Fact]
    public async Task GeneratedProgramsWithSeededBugsYieldExactlyThoseBugs()
    {
        GeneratedCorpus corpus = CorpusGenerator.Generate(files: 16, seedBugs: true);
        Compilation compilation = Compilations.Create(corpus.Files, withPrelude: false);

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.DoesNotContain(diagnostics, d => d.Id == "AD0001");
        var counts = diagnostics.Where(d => d.Id.StartsWith("KMG", StringComparison.Ordinal))
            .GroupBy(d => d.Id).ToDictionary(g => g.Key, g => g.Count());
        foreach (var pair in corpus.ExpectedDiagnostics)
            Assert.Equal((pair.Key, pair.Value), (pair.Key, counts.TryGetValue(pair.Key, out int n) ? n : 0));
    }

    /// <summary>Delegate targets, trylock locals, fields and helpers, and called helpers in unusual places, some of them in code that does not compile.</summary>
    [Fact]
    public async Task UnusualShapesDoNotThrow()
    {
        const string source = Prelude.Usings + """
            class Ops { public Action<Dev>? rx; public Func<int>? poll { get; set; } public Action? bad; }

            class Base { protected Base(Func<int> f) { } }

            class Dev : Base
            {
                static readonly Ops ops = new Ops { rx = d => msleep(1), poll = () => smp_processor_id() };
                Ops Table => new Ops { rx = d => { int slot() => smp_processor_id(); slot(); } };
                Func<int> Prop { get; } = () => smp_processor_id();
                spinlock_t lk = new();

                Dev() : base(() => { Action<Dev> inner = x => ops.rx = y => schedule(); return 0; }) { }

                void f(bool flag)
                {
                    ops.bad = undefined_method;
                    ops.bad = () => missing(lk);
                    bool ok = spin_trylock(lk) && flag;
                    bool? maybe = spin_trylock(lk);
                    if (maybe == true) spin_unlock(lk);
                    if (ok is true) msleep(1);
                    bool broken = spin_trylock();
                    if (!broken) return;
                    spin_lock(lk);
                    ops.rx!(this);
                    ops.poll!();
                    Table.rx!(this);
                    Prop();
                    ops.bad!();
                    spin_unlock(lk);
                    local();
                    void local() { int c = smp_processor_id(); recurse(c); }
                    void recurse(int n) { if (n > 0) recurse(n - 1); }
                }

                // Trylock helpers and holders: recursion, a lock that does not exist, static and
                // property holders, a lock passed by reference, a virtual helper.
                static bool sheld;
                bool Held { get; set; }
                bool ping() => pong();
                bool pong() => ping();
                bool lost() => spin_trylock(missing_lock);
                static bool by_ref(ref spinlock_t l) => spin_trylock(l);
                protected virtual bool try_virtual() => spin_trylock(lk);
                bool local_trylock() { bool inner() => spin_trylock(lk); return inner(); }
                void g()
                {
                    if (ping() || lost()) spin_unlock(lk);
                    if (!(sheld = spin_trylock(lk))) return;
                    Held = spin_trylock(lk);
                    if (Held && sheld) spin_unlock(lk);
                    if (by_ref(ref lk)) spin_unlock(lk);
                    if (try_virtual() && local_trylock()) spin_unlock(lk);
                    (sheld, Held) = (spin_trylock(lk), true);
                }
            }

            // Flags and straight lines: a flag in a loop, by reference, through a ref local or an out
            // argument; constructors chained and expression-bodied; straight lines that do not compile.
            class Flags
            {
                spinlock_t lk = new();
                Flags() : this(1) { }
                Flags(int x) => spin_lock(lk);
                Flags(string s) : this(undefined) { spin_lock(lk) }
                static void set(ref bool b) => b = true;
                void loop(int n) { bool held = false; for (int i = 0; i < n; i++) { if (!held) { spin_lock(lk); held = true; } } if (held) spin_unlock(lk); }
                void by_ref() { bool held = false; set(ref held); if (held) spin_unlock(lk); }
                void aliased() { bool held = false; ref bool alias = ref held; alias = true; if (held) spin_unlock(lk); }
                void outed() { bool held = false; if (bool.TryParse("true", out held) && held) spin_unlock(lk); }
                bool constant() { bool ok = false; return ok; }
                int broken() { int x = missing(); return x + ; }
                int unfinished() { spin_lock(lk); return; }
            }

            partial class Dev2 { private void h() => request_irq(1, handler, 0, "d", null); }
            partial class Dev2 { private int handler(int irq, object? dev) { msleep(1); return 1; } private int handler; }
            """;
        Compilation compilation = Compilations.Create(new[] { ("Unusual.cs", source) });
        Assert.NotEmpty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.Empty(diagnostics.Where(d => d.Id == "AD0001").Select(d => d.GetMessage()));
    }

    /// <summary>Every folder of C# in the repository, the Runtime compiled from source (so its own annotations drive the analyzers).</summary>
    [Theory]
    [MemberData(nameof(SourceFolders))]
    public async Task NoAnalyzerExceptionOnRepositorySources(string folder)
    {
        var files = Directory.EnumerateFiles(Path.Combine(RuleDocumentationTests.RepositoryRoot, folder), "*.cs", SearchOption.AllDirectories)
            .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                     && !p.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(p => (p, File.ReadAllText(p)))
            .ToList();
        Compilation compilation = Compilations.Create(files, withPrelude: false, referenceRuntime: folder != "Runtime");

        var diagnostics = await Compilations.AnalyzeAsync(compilation);

        Assert.Empty(diagnostics.Where(d => d.Id == "AD0001").Select(d => d.GetMessage()));
    }

    public static IEnumerable<object[]> SourceFolders() =>
        new[] { "Runtime", "Analyzers", "CodeFixes", "tests", "benchmarks", "samples" }
            .Where(f => Directory.Exists(Path.Combine(RuleDocumentationTests.RepositoryRoot, f)))
            .Select(f => new object[] { f });
}
