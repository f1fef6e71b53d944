using System;
using System.Collections.Generic;
using KmemGuard;

namespace Scull.Buggy;

/// <summary>
/// One seeded bug of the buggy twin: what it is, the analyzer rule that flags it at build time (if
/// any), the report the runtime checker gives when it runs (on <see cref="Machine.Current"/>), and the
/// checks its machine runs with. Run is the buggy function itself, so reports name it in their stacks.
/// </summary>
public sealed record SeededBug(string Name, string? Rule, BugKind Kind, string Description, Action Run)
{
    /// <summary>
    /// Most bugs run on a machine with every check; a few run the way a production kernel is
    /// configured (slub_debug or hardened usercopy without KASAN), which is where those checks matter.
    /// </summary>
    public Checks Checks { get; init; } = Checks.All;
}

/// <summary>Runs a seeded bug on a fresh machine in Report mode and collects what the checker says.</summary>
public static class SeededBugRunner
{
    /// <summary>The reports of the run, then those of a kmemleak scan after it (a correct run leaves nothing behind).</summary>
    public static IReadOnlyList<KernelBugReport> Run(SeededBug bug, long memoryBytes = 32L << 20, int cpus = 2)
    {
        using Machine m = Machine.Boot(new MachineOptions
        {
            MemoryBytes = memoryBytes,
            Cpus = cpus,
            Checks = bug.Checks,
            OnBug = BugAction.Report,
        });
        bug.Run();
        var reports = new List<KernelBugReport>(m.Reports);
        reports.AddRange(m.ScanLeaks());
        return reports;
    }
}
