using System;
using System.IO;
using Scull.Buggy;
using Xunit;

namespace KmemGuard.Samples.Tests;

/// <summary>The README's main command, as a newcomer runs it (output redirected, so no colours).</summary>
public class DemoTests
{
    [Fact]
    public void The_demo_runs_the_workload_and_every_seeded_bug_and_exits_0()
    {
        DotnetRun demo = Dotnet.Run(AppContext.BaseDirectory, $"\"{Path.Combine(AppContext.BaseDirectory, "KmemGuard.Demo.dll")}\"", timeoutMinutes: 2);
        demo.AssertSucceeded("the demo");
        string output = demo.Output;

        Assert.False(output.Contains('\u001b', StringComparison.Ordinal), "colour codes in redirected output"); // ordinal: a culture comparison ignores ESC
        Assert.DoesNotContain("MISMATCH", output);
        Assert.Contains("no leaks", output);
        Assert.Contains("the checker reported nothing", output);
        Assert.Contains("scullc", output);                         // slabtop shows the sample's cache
        Assert.Contains("DMA32", output);                          // a buddyinfo row per zone
        foreach (SeededBug bug in SeededBugs.All)
            Assert.Contains($"expected {bug.Kind}, got {bug.Kind}", output);
        Assert.Contains("dotnet build samples/Scull.Buggy --no-incremental", output);
    }
}
