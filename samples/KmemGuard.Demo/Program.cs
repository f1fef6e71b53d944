using System;
using System.Diagnostics;
using System.Linq;
using KmemGuard;
using KmemGuard.Demo;
using Scull;
using Scull.Buggy;
using static KmemGuard.Kernel;

// KmemGuard's first run: LDD3's scull family on a simulated machine, what the allocators look
// like afterwards, then the buggy twin's bugs as a debug kernel reports them.
bool full = args.Contains("--full");
var clock = Stopwatch.StartNew();

Console.WriteLine(Term.Bold("KmemGuard") + " — the Linux kernel's memory API in C#, on a simulated machine, with a debug kernel's checker.");

Term.Heading("1. Boot the default machine and run the scull drivers");
int failures;
using (Machine m = Machine.Boot())
{
    Console.WriteLine($"  {m}");
    var workload = new Workload(m);
    failures = workload.Run();

    Term.Heading("2. slabtop: the caches that hold the most memory");
    ProcTables.PrintSlabtop(m.ReadProc("/proc/slabinfo"), 10, "scullc", "sbull_request");

    Term.Heading("3. /proc/buddyinfo: free blocks per order");
    ProcTables.PrintBuddyinfo(m.ReadProc("/proc/buddyinfo"));

    Term.Heading("4. /proc/vmallocinfo: scullv's quanta and sbull's disk");
    ProcTables.PrintVmallocinfo(m.ReadProc("/proc/vmallocinfo"));

    Term.Heading("5. /proc/meminfo");
    ProcTables.PrintMeminfo(m.ReadProc("/proc/meminfo"));

    failures += workload.Cleanup();
}

Term.Heading("6. The buggy twin, run in Report mode (a fresh machine for each bug)");
int index = 0;
foreach (SeededBug bug in SeededBugs.All)
{
    index++;
    var reports = SeededBugRunner.Run(bug);
    bool asExpected = reports.Count == 1 && reports[0].Kind == bug.Kind;
    if (!asExpected) failures++;
    string rule = bug.Rule is null ? "runtime only" : $"also {bug.Rule} at build time";
    Console.WriteLine();
    Console.WriteLine(Term.Bold($"[{index,2}/{SeededBugs.All.Count}] {bug.Name}") + Term.Dim($" — {bug.Description} ({rule})"));
    Console.WriteLine("  expected " + Term.Yellow(bug.Kind.ToString()) + ", got "
        + (reports.Count == 0 ? Term.Red("no report") : string.Join(", ", reports.Select(r => r.Kind == bug.Kind ? Term.Green(r.Kind.ToString()) : Term.Red(r.Kind.ToString())))));
    foreach (KernelBugReport report in reports) ReportPrinter.Print(report, full ? int.MaxValue : ReportPrinter.DefaultLines);
}

Term.Heading("7. The build-time side");
Console.WriteLine("  The same mistakes, found by the analyzers before anything runs (KMG0001..KMG0004, with the call chain):");
Console.WriteLine();
Console.WriteLine("      " + Term.Bold("dotnet build samples/Scull.Buggy --no-incremental"));
Console.WriteLine(Term.Dim("  (--no-incremental: this demo has just built it, and an up-to-date build runs no compiler, so shows no warnings)"));
Console.WriteLine();
Console.WriteLine(Term.Dim($"  ({(full ? "" : $"reports shortened to {ReportPrinter.DefaultLines} lines; --full prints them whole; ")}ran in {clock.Elapsed.TotalSeconds:0.0} s)"));

if (failures != 0)
{
    Console.Error.WriteLine(Term.Red($"{failures} check(s) of the demo failed: see above."));
    return 1;
}
return 0;
