using KmemGuard.Analyzers.Corpus;

namespace KmemGuard.Analyzers.Tests;

/// <summary>The stand-in kernel API (shared with the benchmark corpus) and the usings test bodies start with.</summary>
internal static class Prelude
{
    public const string Usings = StandInKernel.Usings;

    /// <summary>
    /// The shared stand-in plus the mempool API, which only the tests use (the benchmark corpus does not
    /// allocate from pools). A global using brings it into every test file without changing
    /// <see cref="Usings"/>, whose line count the tests' spans depend on.
    /// </summary>
    public const string Source = "global using static KmemGuard.Testing.MempoolApi;\n" + StandInKernel.Source + Mempool;

    /// <summary>Annotated as Runtime/mm/mempool/Kernel.Mempool.cs's mempool_alloc and mempool_free: the element comes first in the free.</summary>
    private const string Mempool = """

        namespace KmemGuard.Testing
        {
            public static class MempoolApi
            {
                [MaySleepIfGfp("gfp_mask"), Allocates(MemoryFamily.Mempool, OwnerParameter = "pool")]
                public static KPtr mempool_alloc(mempool_t pool, gfp_t gfp_mask) => default;
                [Frees(MemoryFamily.Mempool, "element", OwnerParameter = "pool")]
                public static void mempool_free(KPtr element, mempool_t pool) { }
            }
        }
        """;
}
