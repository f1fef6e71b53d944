using System;
using System.Linq;
using BenchmarkDotNet.Running;

namespace KmemGuard.Benchmarks;

/// <summary>
/// Runs the benchmarks with BenchmarkDotNet's own command line (--filter, --job, --list, ...).
/// With no arguments it runs every benchmark; --quick stands for --job short (fewer iterations,
/// wider error bars) for a fast rerun. --interleaved-checks-off DIR [ROUNDS] runs
/// <see cref="InterleavedChecksOff"/> against the Runtime built without the check code in DIR.
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "--interleaved-checks-off")
        {
            InterleavedChecksOff.Run(args[1], args.Length > 2 ? int.Parse(args[2]) : 101);
            return;
        }
        string[] bdnArgs = args.SelectMany(a => a == "--quick" ? new[] { "--job", "short" } : new[] { a }).ToArray();
        if (!bdnArgs.Contains("--filter") && !bdnArgs.Contains("--list")) bdnArgs = bdnArgs.Concat(new[] { "--filter", "*" }).ToArray();
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(bdnArgs);
    }
}
