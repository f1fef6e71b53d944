using System;
using System.Threading;
using System.Threading.Tasks;
using KmemGuard;

namespace KmemGuard.Runtime.Tests;

/// <summary>Runs work on several threads of a machine while another thread scans for leaks without pause.</summary>
internal static class ScanningThreads
{
    public static async Task RunWhileScanning(Machine m, int threads, Action<int> work)
    {
        using var scanning = new CancellationTokenSource();
        Task scanner = Task.Run(() =>
        {
            m.MakeCurrent();
            while (!scanning.IsCancellationRequested) m.ScanLeaks();
        });
        Parallel.For(0, threads, t =>
        {
            m.MakeCurrent();
            work(t);
        });
        scanning.Cancel();
        await scanner;
    }
}
