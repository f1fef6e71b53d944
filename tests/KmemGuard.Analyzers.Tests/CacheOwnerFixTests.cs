using System.Threading.Tasks;
using KmemGuard.CodeFixes;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>
/// KMG0002's cache fix where the cache is named away from the free: owned by a generic type, or
/// recorded when another method stored a helper's allocation in a field.
/// </summary>
public class CacheOwnerFixTests
{
    [Fact]
    public Task StaticCacheOfAGenericType() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void f()
            {
                KPtr w = get(Caches<int>.slab);
                {|#0:kfree(w)|};
                KPtr x = get(Outer<long>.Inner.slab);
                {|#1:kfree(x)|};
            }
        }

        class Pool<T>
        {
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void f()
            {
                KPtr y = get(Caches<T>.slab);
                {|#2:kfree(y)|};
            }
        }

        static class Caches<T>
        {
            public static kmem_cache_t slab = new();
        }

        static class Outer<T>
        {
            public static class Inner { public static kmem_cache_t slab = new(); }
        }
        """, """
        class Dev
        {
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void f()
            {
                KPtr w = get(Caches<int>.slab);
                kmem_cache_free(Caches<int>.slab, w);
                KPtr x = get(Outer<long>.Inner.slab);
                kmem_cache_free(Outer<long>.Inner.slab, x);
            }
        }

        class Pool<T>
        {
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void f()
            {
                KPtr y = get(Caches<T>.slab);
                kmem_cache_free(Caches<T>.slab, y);
            }
        }

        static class Caches<T>
        {
            public static kmem_cache_t slab = new();
        }

        static class Outer<T>
        {
            public static class Inner { public static kmem_cache_t slab = new(); }
        }
        """, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)));

    [Fact]
    public Task FieldFilledByAnotherMethodFromAHelper() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>("""
        class Dev
        {
            kmem_cache_t cache = new();
            KPtr buf;
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void open() => buf = get(cache);
            void close() => {|#0:kfree(buf)|};
            static void closeOther(Dev other) => {|#1:kfree(other.buf)|};
        }
        """, """
        class Dev
        {
            kmem_cache_t cache = new();
            KPtr buf;
            static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void open() => buf = get(cache);
            void close() => kmem_cache_free(cache, buf);
            static void closeOther(Dev other) => kmem_cache_free(other.cache, other.buf);
        }
        """, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)));

    [Fact]
    public Task FieldAllocatedInAnotherFile() => FixSourcesAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>(
        new[] { OpensInOneFile, "partial class Dev { void close() => {|#0:kfree(buf)|}; }" },
        new[] { OpensInOneFile, "partial class Dev { void close() => kmem_cache_free(cache, buf); }" },
        MismatchedFreeCodeFixProvider.FreeToCacheKey, IgnoreExtra(Kmg("KMG0002").WithLocation(0)));

    private const string OpensInOneFile = """
        partial class Dev
        {
            kmem_cache_t cache = new();
            KPtr buf;
            void open() => buf = kmem_cache_alloc(cache, GFP_KERNEL);
        }
        """;

    /// <summary>A cache the storing method named through a local, or through another object than the field's: no fix.</summary>
    [Fact]
    public Task FieldFilledFromACacheTheFieldsObjectDoesNotName() => FixAsync<MismatchedFreeAnalyzer, MismatchedFreeCodeFixProvider>(
        CacheNotOfTheFieldsObject, CacheNotOfTheFieldsObject, MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)));

    private const string CacheNotOfTheFieldsObject = """
        class Dev
        {
            public kmem_cache_t cache = new();
            KPtr spare;
            public static KPtr get(kmem_cache_t c) => kmem_cache_alloc(c, GFP_KERNEL);
            void open()
            {
                kmem_cache_t local = new();
                spare = get(local);
            }

            void dropSpare() => {|#0:kfree(spare)|};
        }

        class Holder
        {
            public KPtr ptr;
            static void fill(Dev d, Holder h) => h.ptr = Dev.get(d.cache);
            void drop() => {|#1:kfree(ptr)|};
        }
        """;
}
