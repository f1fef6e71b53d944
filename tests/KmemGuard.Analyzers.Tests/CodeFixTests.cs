using System.Threading;
using System.Threading.Tasks;
using KmemGuard.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>Each fix, applied once and by Fix All (the test framework also checks document, project and solution scopes).</summary>
public class SleepInAtomicCodeFixTests
{
    [Fact]
    public Task SleepingMaskBecomesAtomicKeepingModifiers() => FixAsync<SleepInAtomicAnalyzer, SleepInAtomicCodeFixProvider>("""
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                spin_lock(lk);
                var a = {|#0:kmalloc(64, GFP_KERNEL | __GFP_NOWARN)|};
                var b = {|#1:kzalloc(64, GFP_NOFS)|};
                var c = {|#2:kmalloc(64, __GFP_ZERO | GFP_KERNEL)|};
                spin_unlock(lk);
            }
        }
        """, """
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                spin_lock(lk);
                var a = kmalloc(64, GFP_ATOMIC | __GFP_NOWARN);
                var b = kzalloc(64, GFP_ATOMIC);
                var c = kmalloc(64, __GFP_ZERO | GFP_ATOMIC);
                spin_unlock(lk);
            }
        }
        """, SleepInAtomicCodeFixProvider.UseGfpAtomicKey,
        IgnoreExtra(Kmg("KMG0001").WithLocation(0)), IgnoreExtra(Kmg("KMG0001").WithLocation(1)), IgnoreExtra(Kmg("KMG0001").WithLocation(2)));

    [Fact]
    public Task SleepsBecomeBusyWaits() => FixAsync<SleepInAtomicAnalyzer, SleepInAtomicCodeFixProvider>("""
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                spin_lock(lk);
                {|#0:msleep(5)|};
                {|#1:usleep_range(10, 20)|};
                spin_unlock(lk);
            }
        }
        """, """
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                spin_lock(lk);
                mdelay(5);
                udelay(10);
                spin_unlock(lk);
            }
        }
        """, SleepInAtomicCodeFixProvider.BusyWaitKey,
        IgnoreExtra(Kmg("KMG0001").WithLocation(0)), IgnoreExtra(Kmg("KMG0001").WithLocation(1)));

}

public class MismatchedFreeCodeFixTests
{
    [Fact]
    public Task MismatchedFreeBecomesTheMatchingOne() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            void f()
            {
                KPtr v = vmalloc(100);
                {|#0:kfree(v)|};
                KPtr k = kmalloc(10, GFP_KERNEL);
                {|#1:vfree(k)|};
                KPtr both = kvmalloc(10, GFP_KERNEL);
                {|#2:kfree(both)|};
            }
        }
        """, """
        class Dev
        {
            void f()
            {
                KPtr v = vmalloc(100);
                vfree(v);
                KPtr k = kmalloc(10, GFP_KERNEL);
                kfree(k);
                KPtr both = kvmalloc(10, GFP_KERNEL);
                kvfree(both);
            }
        }
        """, MismatchedFreeCodeFixProvider.MatchingFreeKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)));

    [Fact]
    public Task PageOrderIsCorrected() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            void f()
            {
                ulong a = __get_free_pages(GFP_KERNEL, 3);
                {|#0:free_pages(a, 1)|};
            }
        }
        """, """
        class Dev
        {
            void f()
            {
                ulong a = __get_free_pages(GFP_KERNEL, 3);
                free_pages(a, 3);
            }
        }
        """, MismatchedFreeCodeFixProvider.MatchingOrderKey, IgnoreExtra(Kmg("KMG0002").WithLocation(0)));


    [Fact]
    public Task SlabObjectGoesBackToItsCache() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            kmem_cache_t cache = new();
            KPtr buf;
            void f()
            {
                KPtr o = kmem_cache_alloc(cache, GFP_KERNEL);
                {|#0:kfree(o)|};
                kmem_cache_t local = new();
                KPtr p = kmem_cache_alloc(local, GFP_ATOMIC);
                {|#1:kfree(p)|};
            }

            void open() => buf = kmem_cache_alloc(this.cache, GFP_KERNEL);
            void release() => {|#2:kfree(buf)|};
        }
        """, """
        class Dev
        {
            kmem_cache_t cache = new();
            KPtr buf;
            void f()
            {
                KPtr o = kmem_cache_alloc(cache, GFP_KERNEL);
                kmem_cache_free(cache, o);
                kmem_cache_t local = new();
                KPtr p = kmem_cache_alloc(local, GFP_ATOMIC);
                kmem_cache_free(local, p);
            }

            void open() => buf = kmem_cache_alloc(this.cache, GFP_KERNEL);
            void release() => kmem_cache_free(cache, buf);
        }
        """, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)));

    [Fact]
    public Task MempoolElementGoesBackToItsPool() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            mempool_t pool = new();
            KPtr req;
            void f(Dev d)
            {
                KPtr e = mempool_alloc(pool, GFP_NOIO);
                {|#0:kfree(e)|};
                KPtr g = mempool_alloc(d.pool, GFP_ATOMIC);
                {|#1:kfree(g)|};
            }

            void submit() => req = mempool_alloc(this.pool, GFP_NOIO);
            void complete() => {|#2:kfree(req)|};
        }
        """, """
        class Dev
        {
            mempool_t pool = new();
            KPtr req;
            void f(Dev d)
            {
                KPtr e = mempool_alloc(pool, GFP_NOIO);
                mempool_free(e, pool);
                KPtr g = mempool_alloc(d.pool, GFP_ATOMIC);
                mempool_free(g, d.pool);
            }

            void submit() => req = mempool_alloc(this.pool, GFP_NOIO);
            void complete() => mempool_free(req, pool);
        }
        """, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)));

    [Fact]
    public Task PoolOutOfScopeAtTheFreeIsNotGuessed() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>(PoolOutOfScope, PoolOutOfScope,
        MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)));

    private const string PoolOutOfScope = """
        class Dev
        {
            mempool_t pool = new();
            KPtr req;
            void f()
            {
                {
                    mempool_t inner = new();
                    req = mempool_alloc(inner, GFP_NOIO);
                }
                {|#0:kfree(req)|};
            }

            void submit(Dev d) => req = mempool_alloc(d.pool, GFP_NOIO);
            static void complete(Dev d) => {|#1:kfree(d.req)|};
        }
        """;

    [Fact]
    public Task CacheOutOfScopeAtTheFreeIsNotGuessed() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>(CacheOutOfScope, CacheOutOfScope,
        MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)));

    private const string CacheOutOfScope = """
        class Dev
        {
            kmem_cache_t cache = new();
            KPtr buf;
            void f(Dev other)
            {
                {
                    kmem_cache_t inner = new();
                    buf = kmem_cache_alloc(inner, GFP_KERNEL);
                }
                {|#0:kfree(buf)|};
            }

            void open(Dev d) => buf = kmem_cache_alloc(d.cache, GFP_KERNEL);
            static void release(Dev d) => {|#1:kfree(d.buf)|};
        }
        """;

    [Fact]
    public Task HelpersCacheIsTheOneItsCallerPassed() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            kmem_cache_t cache = new();
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            static KPtr of(Dev d) => kmem_cache_alloc(d.cache, GFP_KERNEL);
            KPtr mine() => kmem_cache_alloc(cache, GFP_KERNEL);
            void f(Dev dev)
            {
                KPtr p = get(dev.cache);
                {|#0:kfree(p)|};
                KPtr q = get(cache);
                {|#1:kfree(q)|};
                KPtr r = of(dev);
                {|#2:kfree(r)|};
                var other = new Dev();
                KPtr s = other.mine();
                {|#3:kfree(s)|};
                Action later = () =>
                {
                    KPtr t = get(dev.cache);
                    {|#4:kfree(t)|};
                };
            }

            static kmem_cache_t shared = new();
            static void g(Dev @lock)
            {
                KPtr u = get(@lock.cache);
                {|#5:kfree(u)|};
                KPtr v = get(shared);
                {|#6:kfree(v)|};
                KPtr w = get(Caches.slab);
                {|#7:kfree(w)|};
            }
        }

        static class Caches
        {
            public static kmem_cache_t slab = new();
        }
        """, """
        class Dev
        {
            kmem_cache_t cache = new();
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            static KPtr of(Dev d) => kmem_cache_alloc(d.cache, GFP_KERNEL);
            KPtr mine() => kmem_cache_alloc(cache, GFP_KERNEL);
            void f(Dev dev)
            {
                KPtr p = get(dev.cache);
                kmem_cache_free(dev.cache, p);
                KPtr q = get(cache);
                kmem_cache_free(cache, q);
                KPtr r = of(dev);
                kmem_cache_free(dev.cache, r);
                var other = new Dev();
                KPtr s = other.mine();
                kmem_cache_free(other.cache, s);
                Action later = () =>
                {
                    KPtr t = get(dev.cache);
                    kmem_cache_free(dev.cache, t);
                };
            }

            static kmem_cache_t shared = new();
            static void g(Dev @lock)
            {
                KPtr u = get(@lock.cache);
                kmem_cache_free(@lock.cache, u);
                KPtr v = get(shared);
                kmem_cache_free(shared, v);
                KPtr w = get(Caches.slab);
                kmem_cache_free(Caches.slab, w);
            }
        }

        static class Caches
        {
            public static kmem_cache_t slab = new();
        }
        """, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)),
        IgnoreExtra(Kmg("KMG0002").WithLocation(3)), IgnoreExtra(Kmg("KMG0002").WithLocation(4)), IgnoreExtra(Kmg("KMG0002").WithLocation(5)),
        IgnoreExtra(Kmg("KMG0002").WithLocation(6)), IgnoreExtra(Kmg("KMG0002").WithLocation(7)));

    [Fact]
    public Task HelpersCacheNotNamedAtTheFreeIsNotGuessed() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>(HelperCacheOutOfScope,
        HelperCacheOutOfScope, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)));

    /// <summary>Two locals named c (the one at the free is not the one passed), a helper's own cache, a local gone out of scope.</summary>
    private const string HelperCacheOutOfScope = """
        class Dev
        {
            KPtr buf;
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            static KPtr fresh()
            {
                kmem_cache_t c = new();
                return kmem_cache_alloc(c, GFP_KERNEL);
            }

            void f(kmem_cache_t a, kmem_cache_t b)
            {
                KPtr p;
                {
                    kmem_cache_t c = a;
                    p = get(c);
                }
                {
                    kmem_cache_t c = b;
                    {|#0:kfree(p)|};
                }
                KPtr q = fresh();
                {|#1:kfree(q)|};
                {
                    kmem_cache_t inner = a;
                    buf = get(inner);
                }
                {|#2:kfree(buf)|};
            }
        }
        """;
}

public class PreemptibleCpuAccessCodeFixTests
{
    [Fact]
    public Task GetCpuWrapsTheAccessAndUsesItsResult() => FixAsync<PreemptibleCpuAccessAnalyzer, PreemptibleCpuAccessCodeFixProvider>("""
        class Dev
        {
            int[] counts = new int[4];
            void f()
            {
                counts[{|#0:smp_processor_id()|}]++;
            }
        }
        """, """
        class Dev
        {
            int[] counts = new int[4];
            void f()
            {
                int cpu = get_cpu();
                counts[cpu]++;
                put_cpu();
            }
        }
        """, PreemptibleCpuAccessCodeFixProvider.GetCpuKey, Kmg("KMG0003").WithLocation(0));

    [Fact]
    public Task PreemptDisableWrapsTheStatement() => FixAsync<PreemptibleCpuAccessAnalyzer, PreemptibleCpuAccessCodeFixProvider>("""
        class Dev
        {
            int[] counts = new int[4];
            void f()
            {
                int cpu = 1;
                counts[{|#0:smp_processor_id()|}] += cpu;
            }
        }
        """, """
        class Dev
        {
            int[] counts = new int[4];
            void f()
            {
                int cpu = 1;
                preempt_disable();
                counts[smp_processor_id()] += cpu;
                preempt_enable();
            }
        }
        """, PreemptibleCpuAccessCodeFixProvider.PreemptDisableKey, Kmg("KMG0003").WithLocation(0));


    [Fact]
    public Task PreemptDisableWrapsTheCallOfAHelper() => FixAsync<PreemptibleCpuAccessAnalyzer, PreemptibleCpuAccessCodeFixProvider>("""
        class Dev
        {
            int[] counts = new int[4];
            int slot() => smp_processor_id() * 2;
            void f()
            {
                counts[{|#0:slot()|}]++;
            }
        }
        """, """
        class Dev
        {
            int[] counts = new int[4];
            int slot() => smp_processor_id() * 2;
            void f()
            {
                preempt_disable();
                counts[slot()]++;
                preempt_enable();
            }
        }
        """, PreemptibleCpuAccessCodeFixProvider.PreemptDisableKey, IgnoreExtra(Kmg("KMG0003").WithLocation(0)));
}

public class SectionImbalanceCodeFixTests
{
    [Fact]
    public Task ReleaseIsAddedBeforeEachEarlyReturn() => FixAsync<SectionImbalanceAnalyzer, SectionImbalanceCodeFixProvider>("""
        class Dev
        {
            spinlock_t lk = new();
            int f(int n)
            {
                spin_lock_irqsave(lk, out ulong flags);
                if (n < 0)
                    {|#0:return -22;|}
                if (n > 100)
                {
                    udelay(1);
                    {|#1:return -7;|}
                }
                spin_unlock_irqrestore(lk, flags);
                return 0;
            }
        }
        """, """
        class Dev
        {
            spinlock_t lk = new();
            int f(int n)
            {
                spin_lock_irqsave(lk, out ulong flags);
                if (n < 0)
                {
                    spin_unlock_irqrestore(lk, flags);
                    return -22;
                }
                if (n > 100)
                {
                    udelay(1);
                    spin_unlock_irqrestore(lk, flags);
                    return -7;
                }
                spin_unlock_irqrestore(lk, flags);
                return 0;
            }
        }
        """, SectionImbalanceCodeFixProvider.AddReleaseKey,
        IgnoreExtra(Kmg("KMG0004").WithLocation(0)), IgnoreExtra(Kmg("KMG0004").WithLocation(1)));

    [Fact]
    public Task ReleaseIsAddedAtTheEndOfTheBody() => FixAsync<SectionImbalanceAnalyzer, SectionImbalanceCodeFixProvider>("""
        class Dev
        {
            void f()
            {
                preempt_disable();
                udelay(1);
            {|#0:}|}
        }
        """, """
        class Dev
        {
            void f()
            {
                preempt_disable();
                udelay(1);
                preempt_enable();
            }
        }
        """, SectionImbalanceCodeFixProvider.AddReleaseKey, IgnoreExtra(Kmg("KMG0004").WithLocation(0)));

}

public class FixAllTests
{
    [Fact]
    public Task FixAllAcrossDocuments() => FixAllAsync(
        "void f() { KPtr v = vmalloc(1); kfree(v); KPtr w = vmalloc(2); kfree(w); }",
        "void f() { KPtr v = vmalloc(1); vfree(v); KPtr w = vmalloc(2); vfree(w); }",
        MismatchedFreeCodeFixProvider.MatchingFreeKey, (37, 45), (68, 76));

    [Fact]
    public Task FixAllFreesToTheCacheAcrossDocuments() => FixAllAsync(
        "kmem_cache_t c = new(); void f() { KPtr v = kmem_cache_alloc(c, GFP_KERNEL); kfree(v); KPtr w = kmem_cache_alloc(c, 0); kfree(w); }",
        "kmem_cache_t c = new(); void f() { KPtr v = kmem_cache_alloc(c, GFP_KERNEL); kmem_cache_free(c, v); KPtr w = kmem_cache_alloc(c, 0); kmem_cache_free(c, w); }",
        MismatchedFreeCodeFixProvider.FreeToCacheKey, (82, 90), (125, 133));

    [Fact]
    public Task FixAllFreesToThePoolAcrossDocuments() => FixAllAsync(
        "mempool_t m = new(); void f() { KPtr v = mempool_alloc(m, GFP_NOIO); kfree(v); KPtr w = mempool_alloc(m, 0); kfree(w); }",
        "mempool_t m = new(); void f() { KPtr v = mempool_alloc(m, GFP_NOIO); mempool_free(v, m); KPtr w = mempool_alloc(m, 0); mempool_free(w, m); }",
        MismatchedFreeCodeFixProvider.FreeToCacheKey, (74, 82), (114, 122));

    /// <summary>Fix All in project and solution over two documents, each a class with <paramref name="members"/>; the spans are columns on line 8.</summary>
    private static async Task FixAllAsync(string members, string fixedMembers, string equivalenceKey, params (int Start, int End)[] columns)
    {
        string Source(string name, string body) => Prelude.Usings + $$"""
            class {{name}}
            {
                {{body}}
            }
            """;
        var test = new CSharpCodeFixTest<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider, DefaultVerifier>
        {
            ReferenceAssemblies = Net100,
            CodeActionEquivalenceKey = equivalenceKey,
        };
        foreach (string name in new[] { "A", "B" })
        {
            test.TestState.Sources.Add(($"{name}.cs", Source(name, members)));
            test.FixedState.Sources.Add(($"{name}.cs", Source(name, fixedMembers)));
            foreach (var (start, end) in columns)
                test.ExpectedDiagnostics.Add(IgnoreExtra(Kmg("KMG0002").WithSpan($"{name}.cs", 8, start, 8, end)));
        }

        test.TestState.Sources.Add(("Prelude.cs", Prelude.Source));
        test.TestState.AdditionalReferences.Add(Runtime);
        test.FixedState.Sources.Add(("Prelude.cs", Prelude.Source));
        test.FixedState.AdditionalReferences.Add(Runtime);
        test.NumberOfFixAllIterations = 1;
        test.NumberOfFixAllInDocumentIterations = 2;
        await test.RunAsync(CancellationToken.None);
    }
}

public class AllocateBeforeLockCodeFixTests
{
    [Fact]
    public Task IndependentAllocationMovesAboveTheLock() => FixAsync<SleepInAtomicAnalyzer, SleepInAtomicCodeFixProvider>("""
        class Dev
        {
            spinlock_t lk = new();
            KPtr buf;
            void f(int len)
            {
                spin_lock(lk);
                udelay(1);
                var p = {|#0:kmalloc(len, GFP_KERNEL)|};
                buf = p;
                spin_unlock(lk);
            }
        }
        """, """
        class Dev
        {
            spinlock_t lk = new();
            KPtr buf;
            void f(int len)
            {
                var p = kmalloc(len, GFP_KERNEL);
                spin_lock(lk);
                udelay(1);
                buf = p;
                spin_unlock(lk);
            }
        }
        """, SleepInAtomicCodeFixProvider.AllocateBeforeLockKey, IgnoreExtra(Kmg("KMG0001").WithLocation(0)));

    [Fact]
    public Task DependentAllocationIsNotMoved() => FixAsync<SleepInAtomicAnalyzer, SleepInAtomicCodeFixProvider>(Dependent, Dependent,
        SleepInAtomicCodeFixProvider.AllocateBeforeLockKey, IgnoreExtra(Kmg("KMG0001").WithLocation(0)));

    private const string Dependent = """
        class Dev
        {
            spinlock_t lk = new();
            void f(int len)
            {
                spin_lock(lk);
                len = len * 2;
                var p = {|#0:kmalloc(len, GFP_KERNEL)|};
                spin_unlock(lk);
            }
        }
        """;
}
