using KmemGuard.Analyzers.Corpus;

namespace KmemGuard.Analyzers.Tests;

/// <summary>The stand-in kernel API (shared with the benchmark corpus) and the usings test bodies start with.</summary>
internal static class Prelude
{
    public const string Usings = StandInKernel.Usings;

    public const string Source = StandInKernel.Source;
}
