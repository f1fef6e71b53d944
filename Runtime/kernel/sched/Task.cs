using System.Collections.Generic;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// A thread that calls the kernel, seen as a task (struct task_struct): pid, comm, the CPU it
/// runs on, and its preempt_count. An interrupt or softirq that runs on a host thread gets a
/// temporary context task of its own (see <see cref="IsContext"/>), bound to the CPU it runs on.
/// </summary>
internal sealed class KTask
{
    // preempt_count layout (include/linux/preempt.h).
    public const int PreemptMask = 0x000000ff;
    public const int SoftirqOffset = 0x00000100;
    public const int SoftirqMask = 0x0000ff00;
    public const int HardirqOffset = 0x00010000;
    public const int HardirqMask = 0x000f0000;

    /// <summary>local_bh_disable adds twice the serving offset, so that "serving" and "disabled" differ.</summary>
    public const int SoftirqDisableOffset = 2 * SoftirqOffset;

    public KTask(Machine machine, int pid, string comm, int cpu)
    {
        Machine = machine;
        Pid = pid;
        Comm = comm;
        CpuId = cpu;
        _random = (uint)pid * 2654435761u | 1;
    }

    public Machine Machine { get; }
    public int Pid { get; }
    public string Comm { get; }

    /// <summary>The CPU the task runs on; it changes only while the task is preemptible.</summary>
    public int CpuId;

    /// <summary>preempt_count: preemption depth, softirq and hardirq counts.</summary>
    public int PreemptCount;

    /// <summary>True while the task owns its CPU exclusively (anything that makes it non-preemptible).</summary>
    public bool OwnsCpu;

    /// <summary>Local interrupts are disabled on the task's CPU by this task (or context).</summary>
    public bool IrqsOff;

    /// <summary>Where preempt_count last went from 0 to non-zero (DEBUG_PREEMPT's preempt_disable_ip).</summary>
    public CallSite PreemptDisabledAt;

    /// <summary>Where this task last disabled interrupts (lockdep's "hardirqs last disabled at").</summary>
    public CallSite IrqsDisabledAt;

    /// <summary>rcu_read_lock nesting.</summary>
    public int RcuDepth;

    /// <summary>Locks held, oldest first (lockdep's held_locks).</summary>
    public readonly List<HeldLock> HeldLocks = new();

    /// <summary>A temporary hard-irq or softirq context, not a thread's own task.</summary>
    public bool IsContext { get; private init; }

    /// <summary>For a context: the context it interrupted on the same host thread, if any.</summary>
    public KTask? Interrupted { get; private init; }

    /// <summary>For a context: it took its CPU's ownership (the CPU was free) and gives it back on exit.</summary>
    public bool TookCpu;

    /// <summary>For a hard-irq context: the line whose handlers it runs; -1 otherwise.</summary>
    public int HandlingIrq = -1;

    /// <summary>Bound to its CPU (a per-CPU kworker): it never migrates, and DEBUG_PREEMPT accepts it.</summary>
    public bool Bound;

    /// <summary>Preemption points passed, for the migration policy.</summary>
    public uint PreemptionPoints;

    private uint _random;

    public bool Preemptible => PreemptCount == 0 && !IrqsOff && !IsContext;

    /// <summary>A deterministic pseudo-random number (xorshift) for the migration policy.</summary>
    public uint NextRandom()
    {
        uint x = _random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        _random = x;
        return x;
    }

    /// <summary>
    /// A context that runs on <paramref name="cpu"/> on the calling host thread. It shows as the
    /// task it interrupts (the kernel's <c>current</c> does not change in an interrupt).
    /// </summary>
    public static KTask Context(KTask shownAs, int cpu, int preemptCount, bool irqsOff, KTask? interrupted, CallSite entry) => new(shownAs.Machine, shownAs.Pid, shownAs.Comm, cpu)
    {
        IsContext = true,
        Interrupted = interrupted,
        PreemptCount = preemptCount,
        IrqsOff = irqsOff,
        OwnsCpu = true,
        PreemptDisabledAt = entry,
        IrqsDisabledAt = entry,
    };

    public override string ToString() => $"{Comm}/{Pid} on cpu {CpuId}";
}

/// <summary>A lock a task holds, as lockdep lists it.</summary>
internal sealed class HeldLock
{
    public HeldLock(object @lock, string name, string usage, CallSite at)
    {
        Lock = @lock;
        Name = name;
        Usage = usage;
        At = at;
    }

    public object Lock { get; }
    public string Name { get; }

    /// <summary>lockdep's usage and wait-type suffix, e.g. "{+.+.}-{2:2}" for a spinlock.</summary>
    public string Usage { get; }

    public CallSite At { get; }
}

/// <summary>A simulated CPU.</summary>
internal sealed class Cpu
{
    public Cpu(int id, int node)
    {
        Id = id;
        Node = node;
    }

    public int Id { get; }
    public int Node { get; }

    /// <summary>The task running non-preemptibly on this CPU, if any: no other task may run here then.</summary>
    public KTask? Owner;

    /// <summary>Guards the interrupt state below.</summary>
    public readonly object IrqLock = new();

    /// <summary>How many contexts on this CPU have interrupts disabled (an irq is delivered only at 0).</summary>
    public int IrqsOffCount;

    /// <summary>Interrupts raised while this CPU had interrupts disabled, in arrival order.</summary>
    public readonly Queue<int> PendingIrqs = new();
}

/// <summary>
/// Decides which task runs on which CPU. A task that becomes non-preemptible takes its CPU for
/// itself until it is preemptible again, so that two tasks are never inside non-preemptible
/// sections of the same CPU at once (what makes per-CPU data safe in a kernel). A preemptible
/// task migrates at preemption points, so per-CPU code that forgot get_cpu sees its CPU change.
/// </summary>
internal sealed class Scheduler
{
    private const int SpinsBeforeBlocking = 20;

    private readonly Cpu[] _cpus;
    private readonly object _released = new();
    private int _nextCpu = -1;
    private int _waiters;

    public Scheduler(Cpu[] cpus) => _cpus = cpus;

    public Cpu[] Cpus => _cpus;

    /// <summary>
    /// Every Nth preemption point of a task preempts it: it yields the host thread and moves to a
    /// pseudo-randomly chosen CPU. 0 turns preemption at these points off.
    /// </summary>
    public int PreemptEvery { get; set; } = 16;

    /// <summary>The CPU a new task starts on (round robin).</summary>
    public int PlaceNewTask() => (int)((uint)Interlocked.Increment(ref _nextCpu) % (uint)_cpus.Length);

    /// <summary>
    /// Makes <paramref name="task"/> the owner of a CPU: its own if free, else (it is still
    /// preemptible, so it may migrate; a bound task may not) any free one; waits while all are taken.
    /// </summary>
    public void TakeCpu(KTask task)
    {
        // The uncontended case first: one CAS, and no delegate for the wait loop.
        if (TryTakeAny(task)) return;
        WaitUntil(static (scheduler, t) => scheduler.TryTakeAny(t), task);
    }

    private bool TryTakeAny(KTask task)
    {
        int start = task.CpuId;
        int candidates = task.Bound ? 1 : _cpus.Length;
        for (int i = 0; i < candidates; i++)
        {
            Cpu cpu = _cpus[(start + i) % _cpus.Length];
            if (Interlocked.CompareExchange(ref cpu.Owner, task, null) == null)
            {
                task.CpuId = cpu.Id;
                task.OwnsCpu = true;
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Retries <paramref name="attempt"/> (which acts when it succeeds) until it succeeds: a short
    /// spin, then blocking until a CPU is released (or a millisecond passes). A waiter must not
    /// spin for long: the host may have descheduled the owner, and spinning would then burn the
    /// owner's time slice.
    /// </summary>
    private void WaitUntil(System.Func<Scheduler, KTask, bool> attempt, KTask task)
    {
        var spin = new SpinWait();
        while (!attempt(this, task))
        {
            if (spin.Count < SpinsBeforeBlocking)
            {
                spin.SpinOnce(sleep1Threshold: -1);
                continue;
            }
            Interlocked.Increment(ref _waiters);
            try
            {
                lock (_released)
                {
                    if (attempt(this, task)) return;
                    Monitor.Wait(_released, 1);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _waiters);
            }
        }
    }

    /// <summary>Takes a given CPU if nobody owns it (for an interrupt that lands there).</summary>
    public bool TryTakeCpu(KTask task, int cpu)
    {
        if (Interlocked.CompareExchange(ref _cpus[cpu].Owner, task, null) != null) return false;
        task.OwnsCpu = true;
        return true;
    }

    public void ReleaseCpu(KTask task)
    {
        task.OwnsCpu = false;
        // Only an owner replaces a non-null owner (everyone else takes a CPU by CAS from null),
        // so a release write suffices where a CAS would cost a locked instruction per section.
        // Without a full fence the read of _waiters below may pass the write: a waiter that
        // registers in that window misses the pulse and retries when its 1 ms wait times out.
        ref KTask? owner = ref _cpus[task.CpuId].Owner;
        if (ReferenceEquals(owner, task)) Volatile.Write(ref owner, null);
        if (Volatile.Read(ref _waiters) == 0) return;
        lock (_released) Monitor.PulseAll(_released);
    }

    /// <summary>
    /// A preemption point of a preemptible task: now and then it is preempted (yields, and may
    /// migrate); and it never goes on running on a CPU that another task holds non-preemptibly.
    /// True when the task was preempted.
    /// </summary>
    public bool PreemptionPoint(KTask task)
    {
        if (!task.Preemptible || task.OwnsCpu) return false;
        bool preempted = false;
        int every = PreemptEvery;
        if (every > 0 && ++task.PreemptionPoints % (uint)every == 0)
        {
            if (!task.Bound) task.CpuId = (int)(task.NextRandom() % (uint)_cpus.Length);
            Thread.Yield();
            preempted = true;
        }
        KTask? owner = Volatile.Read(ref _cpus[task.CpuId].Owner);
        if (owner != null && owner != task)
        {
            MoveOff(task);
            preempted = true;
        }
        return preempted;
    }

    /// <summary>Waits for a CPU that nobody holds (a bound task waits for its own).</summary>
    private void MoveOff(KTask task)
    {
        WaitUntil(static (scheduler, t) => scheduler.TryMoveToFree(t), task);
    }

    private bool TryMoveToFree(KTask task)
    {
        int candidates = task.Bound ? 1 : _cpus.Length;
        for (int i = 0; i < candidates; i++)
        {
            int id = (task.CpuId + i) % _cpus.Length;
            if (Volatile.Read(ref _cpus[id].Owner) == null)
            {
                task.CpuId = id;
                return true;
            }
        }
        return false;
    }
}
