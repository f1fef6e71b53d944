using BenchmarkDotNet.Attributes;

namespace KmemGuard.Benchmarks;

/// <summary>
/// A booted machine for the benchmarks of one class. Every benchmark method does
/// <see cref="Pairs"/> allocate/free pairs per invocation (OperationsPerInvoke), so that making
/// the machine current at its start (BenchmarkDotNet does not promise that the setup's
/// AsyncLocal value reaches the measured thread) costs nothing measurable per pair.
/// </summary>
[MemoryDiagnoser]
public abstract class MachineBenchmark
{
    /// <summary>Pairs per invocation.</summary>
    public const int Pairs = 1024;

    private Machine? _machine;

    /// <summary>
    /// One CPU (the bar is for a pair on one CPU), 256 MiB, no forced preemption: the bars are for
    /// the fast path, and forced preemption (a host yield every 16th might_sleep) is a debugging
    /// aid that is off here (<see cref="MachineOptions.PreemptEvery"/> = 0).
    /// </summary>
    protected void BootMachine(Checks checks) => _machine = BootBenchmarkMachine(checks);

    /// <summary>The benchmarks' machine (see <see cref="BootMachine"/>).</summary>
    public static Machine BootBenchmarkMachine(Checks checks) =>
        Machine.Boot(new MachineOptions { Cpus = 1, MemoryBytes = 256L << 20, Checks = checks, PreemptEvery = 0 });

    /// <summary>
    /// Pairs run in setup so that a checked machine is measured as it runs after a while: KASAN's
    /// quarantine (1/32 of RAM) full and cycling, its slabs built. Until then a checked pair also
    /// builds slabs and costs several times its steady figure; the first 2 million pairs cover it
    /// with room to spare (docs/performance.md).
    /// </summary>
    public const int SteadyStatePairs = 2_000_000;

    /// <summary>Brings <paramref name="machine"/>'s kmalloc-64 to its steady state (<see cref="SteadyStatePairs"/>).</summary>
    public static void RunToSteadyState(Machine machine)
    {
        machine.MakeCurrent();
        for (int i = 0; i < SteadyStatePairs; i++) Kernel.kfree(Kernel.kmalloc(64, Kernel.GFP_KERNEL));
    }

    protected Machine Machine => _machine!;

    /// <summary>Makes the machine current for the measured thread; call first in every benchmark method.</summary>
    protected void EnterMachine() => _machine!.MakeCurrent();

    /// <summary>What a class set up on the machine, undone before it shuts down.</summary>
    protected virtual void TearDown()
    {
    }

    [GlobalCleanup]
    public void ShutDown()
    {
        if (_machine == null) return;
        EnterMachine();
        TearDown();
        _machine.Dispose();
    }
}
