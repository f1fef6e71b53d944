using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>KMG0002's cache fix with a static cache owned by a generic type, constructed or open.</summary>
public class GenericCacheOwnerFixTests
{
    [Fact]
    public Task StaticCacheOfAGenericType() => FixAsync<MismatchedFreeAnalyzer, KmemGuard.CodeFixes.MismatchedFreeCodeFixProvider>("""
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
        """, KmemGuard.CodeFixes.MismatchedFreeCodeFixProvider.FreeToCacheKey,
        IgnoreExtra(Kmg("KMG0002").WithLocation(0)), IgnoreExtra(Kmg("KMG0002").WithLocation(1)), IgnoreExtra(Kmg("KMG0002").WithLocation(2)));
}
