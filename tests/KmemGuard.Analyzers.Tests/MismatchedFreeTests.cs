using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

public class MismatchedFreeTests
{
    private static Microsoft.CodeAnalysis.Testing.DiagnosticResult Mismatch(int free, int allocation) =>
        Kmg("KMG0002").WithLocation(free).WithLocation(allocation);

    [Fact]
    public Task VmallocFreedWithKfree() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            void f()
            {
                KPtr p = {|#1:vmalloc(4096)|};
                {|#0:kfree(p)|};
            }
        }
        """, Mismatch(0, 1).WithMessage("memory from vmalloc at line 10 is freed with kfree: use vfree or kvfree"));

    [Fact]
    public Task MatchingFreesAreClean() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            kmem_cache_t cache = new();
            void f()
            {
                KPtr a = kmalloc(10, GFP_KERNEL); kfree(a);
                KPtr b = vmalloc(10); vfree(b);
                KPtr c = kvmalloc(10, GFP_KERNEL); kvfree(c);
                KPtr d = kmalloc(10, GFP_KERNEL); kvfree(d);
                KPtr e = vmalloc(10); kvfree(e);
                KPtr o = kmem_cache_alloc(cache, GFP_KERNEL); kmem_cache_free(cache, o);
                ulong pg = __get_free_pages(GFP_KERNEL, 2); free_pages(pg, 2);
                ulong one = __get_free_page(GFP_KERNEL); free_page(one);
                ulong z = __get_free_pages(GFP_KERNEL, 0); free_page(z);
                kfree(NULL);
            }
        }
        """);

    [Fact]
    public Task EachWrongPairing() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            kmem_cache_t cache = new();
            kmem_cache_t other = new();
            void f()
            {
                KPtr a = {|#1:kmalloc(10, GFP_KERNEL)|}; {|#0:vfree(a)|};
                KPtr c = {|#3:kvmalloc(10, GFP_KERNEL)|}; {|#2:kfree(c)|};
                KPtr o = {|#5:kmem_cache_alloc(cache, GFP_KERNEL)|}; {|#4:kfree(o)|};
                KPtr o2 = {|#7:kmem_cache_alloc(cache, GFP_KERNEL)|}; {|#6:kmem_cache_free(other, o2)|};
                ulong pg = {|#9:__get_free_pages(GFP_KERNEL, 2)|}; {|#8:free_pages(pg, 1)|};
                ulong one = {|#11:__get_free_pages(GFP_KERNEL, 3)|}; {|#10:free_page(one)|};
            }
        }
        """,
        Mismatch(0, 1).WithMessage("memory from kmalloc at line 12 is freed with vfree: use kfree or kvfree"),
        Mismatch(2, 3).WithMessage("memory from kvmalloc at line 13 is freed with kfree: use kvfree"),
        Mismatch(4, 5),
        Mismatch(6, 7).WithMessage("memory from kmem_cache_alloc at line 15 is freed with kmem_cache_free to other, which is not the cache or pool it came from"),
        Mismatch(8, 9).WithMessage("memory from __get_free_pages at line 16 is freed with free_pages of order 1, but it was allocated with order 2"),
        Mismatch(10, 11));

    [Fact]
    public Task MempoolElementFreedWithKfreeOrToAnotherPool() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            mempool_t pool = new();
            mempool_t other = new();
            void f()
            {
                KPtr e = {|#1:mempool_alloc(pool, GFP_NOIO)|};
                {|#0:kfree(e)|};
                KPtr g = {|#3:mempool_alloc(pool, GFP_NOIO)|};
                {|#2:mempool_free(g, other)|};
                KPtr h = mempool_alloc(pool, GFP_NOIO);
                mempool_free(h, pool);
            }
        }
        """,
        Mismatch(0, 1).WithMessage("memory from mempool_alloc at line 12 is freed with kfree: use mempool_free"),
        Mismatch(2, 3).WithMessage("memory from mempool_alloc at line 14 is freed with mempool_free to other, which is not the cache or pool it came from"));

    [Fact]
    public Task OneBranchIsEnough() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            void f(bool big)
            {
                KPtr p;
                if (big)
                    p = {|#1:vmalloc(1 << 20)|};
                else
                    p = kmalloc(64, GFP_KERNEL);
                {|#0:kfree(p)|};
                KPtr q = big ? {|#3:vmalloc(10)|} : kmalloc(10, GFP_KERNEL);
                {|#2:kfree(q)|};
            }
        }
        """, Mismatch(0, 1), Mismatch(2, 3));

    [Fact]
    public Task ReassignmentForgetsTheOldAllocation() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            void f()
            {
                KPtr p = vmalloc(10);
                vfree(p);
                p = kmalloc(10, GFP_KERNEL);
                kfree(p);
                KPtr q = vmalloc(10);
                KPtr alias = q;
                vfree(alias);
            }
        }
        """);

    [Fact]
    public Task FieldAssignedAnywhereAndFreedAnywhere() => AnalyzeSourcesAsync<MismatchedFreeAnalyzer>(new[]
    {
        Prelude.Usings + """
        class Dev
        {
            public KPtr ring;
            public KPtr small;
            public void open() { ring = {|#1:vmalloc(1 << 16)|}; small = kmalloc(8, GFP_KERNEL); }
        }
        """,
        Prelude.Usings + """
        static class Teardown
        {
            public static void release(Dev dev)
            {
                {|#0:kfree(dev.ring)|};
                kfree(dev.small);
            }
        }
        """,
    }, Mismatch(0, 1));

    [Fact]
    public Task HelpersThatReturnOrFreeMemory() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            static KPtr get_ring(int n) => {|#1:vmalloc(n)|};
            static KPtr get_ring_twice(int n) => get_ring(n);
            static void put_buf(KPtr buf) => kfree(buf);
            static void put_buf_twice(KPtr buf) => put_buf(buf);

            void f()
            {
                KPtr r = get_ring_twice(100);
                {|#0:kfree(r)|};
                KPtr v = {|#3:vmalloc(100)|};
                {|#2:put_buf_twice(v)|};
                KPtr k = kmalloc(10, GFP_KERNEL);
                put_buf_twice(k);
            }
        }
        """,
        Mismatch(0, 1).WithMessage("memory from vmalloc at line 8 is freed with kfree: use vfree or kvfree"),
        Mismatch(2, 3).WithMessage("memory from vmalloc at line 17 is freed with kfree (in put_buf_twice() → put_buf()): use vfree or kvfree"));

    [Fact]
    public Task CacheOfAHelpersResultIsNamedAtTheCall() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            public kmem_cache_t cache = new();
            public kmem_cache_t spare = new();
            static KPtr get(Dev d) => {|#1:kmem_cache_alloc(d.cache, GFP_KERNEL)|};
            KPtr mine() => kmem_cache_alloc(cache, GFP_KERNEL);
            void f(int n, Dev dev)
            {
                KPtr p = get(dev);
                kmem_cache_free(dev.cache, p);
                KPtr q = mine();
                kmem_cache_free(cache, q);
                KPtr r = dev.mine();
                kmem_cache_free(dev.cache, r);
                KPtr s = get(dev);
                {|#0:kmem_cache_free(dev.spare, s)|};
            }
        }
        """, Mismatch(0, 1).WithMessage("memory from kmem_cache_alloc at line 10 is freed with kmem_cache_free to dev.spare, which is not the cache or pool it came from"));

    [Fact]
    public Task FreedInsideTryFinallyAndLoops() => AnalyzeAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            void f(int n)
            {
                KPtr p = {|#1:vmalloc(100)|};
                try
                {
                    for (int i = 0; i < n; i++)
                        udelay(1);
                }
                finally
                {
                    {|#0:kfree(p)|};
                }
            }
        }
        """, Mismatch(0, 1));
}
