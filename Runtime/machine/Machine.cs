using System;
using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// A simulated machine: RAM with page frames, zones and nodes, CPUs, and every kernel subsystem
/// over them. Kernel functions act on <see cref="Current"/>. Machines are independent: many can
/// run at once, each current for the threads that booted it and what those threads start.
/// </summary>
public sealed partial class Machine : IDisposable
{
    private static readonly AsyncLocal<Machine?> s_current = new();
    private static int s_nextId;

    private readonly ThreadLocal<KTask> _tasks;
    private int _nextPid = 1;
    private int _disposed;

    private Machine(MachineOptions options)
    {
        HostMemory.RequireLinux();
        options.Validate();
        Options = options.Clone();
        _checks = Options.Checks;
        Id = Interlocked.Increment(ref s_nextId);
        Reporter = new BugReporter(Options.OnBug);
        Cpus = new Cpu[Options.Cpus];
        for (int i = 0; i < Cpus.Length; i++) Cpus[i] = new Cpu(i, i * Options.NumaNodes / Options.Cpus);
        Scheduler = new Scheduler(Cpus) { PreemptEvery = Options.PreemptEvery };
        _tasks = new ThreadLocal<KTask>(CreateTask);
        Ram = new PhysicalMemory(Options);
        ulong vmallocBytes = (ulong)(Options.VmallocBytes > 0 ? Options.VmallocBytes : Math.Max(64L << 20, Options.MemoryBytes * 4));
        vmallocBytes = (vmallocBytes + (ulong)Kernel.PAGE_SIZE - 1) & ~((ulong)Kernel.PAGE_SIZE - 1);
        Memory = new KernelMemory(this, Ram, vmallocBytes, Options.Cpus);
        PageAllocator = new PageAllocator(this);
        InEarlyBoot = Options.EarlyBoot;
    }

    /// <summary>Boots a machine (the embedded default when <paramref name="options"/> is null) and makes it current.</summary>
    public static Machine Boot(MachineOptions? options = null)
    {
        var machine = new Machine(options ?? new MachineOptions());
        Machine? previous = s_current.Value;
        s_current.Value = machine;
        try
        {
            machine.BootSubsystems();
        }
        catch
        {
            s_current.Value = previous;
            machine.Dispose();
            throw;
        }
        return machine;
    }

    /// <summary>The machine the calling thread's kernel calls act on.</summary>
    public static Machine Current =>
        s_current.Value ?? throw new InvalidOperationException("No KmemGuard machine is current on this thread: call Machine.Boot() first (it is current for the booting thread and what it starts).");

    /// <summary>Makes this machine current for the calling thread (and what it starts from now on).</summary>
    public void MakeCurrent()
    {
        ThrowIfDisposed();
        s_current.Value = this;
    }

    public int Id { get; }
    /// <summary>The options the machine booted with (a copy: changing them after boot changes nothing).</summary>
    public MachineOptions Options { get; }
    public bool InEarlyBoot { get; private set; }

    /// <summary>What the checker reported in <see cref="BugAction.Report"/> mode, oldest first.</summary>
    public IReadOnlyList<KernelBugReport> Reports => Reporter.Snapshot();

    internal BugReporter Reporter { get; }
    internal Cpu[] Cpus { get; }
    internal Scheduler Scheduler { get; }
    internal PhysicalMemory Ram { get; }
    internal KernelMemory Memory { get; }
    internal PageAllocator PageAllocator { get; }

    /// <summary>
    /// False in a build with <c>-p:KmemGuardNoChecks=true</c> (KMEMGUARD_NO_CHECKS): every check
    /// gate (this, <see cref="IsChecking"/>, KASAN, fault injection, slub_debug) is then a constant
    /// the JIT folds away, so that build measures what the check code costs when it is off.
    /// </summary>
#if KMEMGUARD_NO_CHECKS
    internal const bool ChecksCompiledIn = false;
#else
    internal const bool ChecksCompiledIn = true;
#endif

    internal bool IsChecking(Checks check) => ChecksCompiledIn && (_checks & check) != 0;

    // Options.Checks as booted, read by every gate without going through the options object.
    private readonly Checks _checks;

    /// <summary>The jiffies counter (advanced by <c>AdvanceJiffies</c>).</summary>
    internal ulong Jiffies => Volatile.Read(ref JiffiesCounter);

    internal ulong JiffiesCounter;

    internal bool IsShutDown => Volatile.Read(ref _disposed) != 0;

    /// <summary>The calling thread as a task of this machine (or the irq/softirq context running on it).</summary>
    internal KTask CurrentTask
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get
        {
            if (t_context != null && ContextOverride is { } context) return context;
            return ReferenceEquals(t_taskMachine, this) ? t_task! : ThreadTaskSlow();
        }
    }

    // The thread's own task of the machine it called last, so that the allocators' fast paths do
    // not pay a ThreadLocal lookup per call. A thread's task of a machine never changes, so the
    // pair stays valid; it is only refreshed when the thread calls another machine.
    [ThreadStatic] private static Machine? t_taskMachine;
    [ThreadStatic] private static KTask? t_task;

    private KTask ThreadTaskSlow()
    {
        KTask task = _tasks.Value!;
        t_taskMachine = this;
        t_task = task;
        return task;
    }

    private KTask CreateTask()
    {
        string comm = Thread.CurrentThread.Name is { Length: > 0 } name ? name : $"kthread-{Environment.CurrentManagedThreadId}";
        if (comm.Length > 15) comm = comm.Substring(0, 15); // TASK_COMM_LEN
        return new KTask(this, Interlocked.Increment(ref _nextPid), comm, Scheduler.PlaceNewTask());
    }

    private void BootSubsystems()
    {
        if (InEarlyBoot)
        {
            InitBootmem();
            return;
        }
        PageAllocator.FreeAllRam();
        InitAfterPageAllocator();
    }

    /// <summary>Ends early boot: what bootmem did not hand out goes to the buddy allocator, and the rest of mm starts.</summary>
    public void FinishBoot()
    {
        ThrowIfDisposed();
        if (!InEarlyBoot) throw new InvalidOperationException("FinishBoot: the machine is not in early boot (boot it with MachineOptions.EarlyBoot = true).");
        HandOverBootmem();
        InEarlyBoot = false;
        InitAfterPageAllocator();
    }

    /// <summary>Subsystems that need the buddy allocator, in the order the kernel's mm_init starts them.</summary>
    private void InitAfterPageAllocator()
    {
        InitSlab();
        InitKmalloc();
        InitVmalloc();
        InitPerCpu();
        InitIoremap();
        InitContext();
    }

    partial void InitBootmem();
    partial void HandOverBootmem();
    partial void InitSlab();
    partial void InitKmalloc();
    partial void InitVmalloc();
    partial void InitPerCpu();
    partial void InitIoremap();
    partial void InitContext();
    partial void ShutdownSubsystems();

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(nameof(Machine), "This machine has been shut down.");
    }

    /// <summary>Shuts the machine down and releases its memory.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        ShutdownSubsystems();
        if (s_current.Value == this) s_current.Value = null;
        if (ReferenceEquals(t_taskMachine, this)) (t_taskMachine, t_task) = (null, null);
        Memory.Dispose();
        Ram.Dispose();
        _tasks.Dispose();
    }

    public override string ToString() => $"machine#{Id} ({Options.Cpus} CPUs, {Options.MemoryBytes >> 20} MiB, {Options.NumaNodes} node(s))";
}
