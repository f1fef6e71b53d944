using System.Threading;

namespace KmemGuard;

/// <summary>
/// A thread that calls the kernel, seen as a task (struct task_struct): pid, comm, the CPU it
/// runs on, and its preempt_count.
/// </summary>
internal sealed class KTask
{
    // preempt_count layout (include/linux/preempt.h).
    public const int PreemptMask = 0x000000ff;
    public const int SoftirqOffset = 0x00000100;
    public const int SoftirqMask = 0x0000ff00;
    public const int HardirqOffset = 0x00010000;
    public const int HardirqMask = 0x000f0000;

    public KTask(Machine machine, int pid, string comm, int cpu)
    {
        Machine = machine;
        Pid = pid;
        Comm = comm;
        CpuId = cpu;
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

    public bool Preemptible => PreemptCount == 0 && !OwnsCpu;

    public override string ToString() => $"{Comm}/{Pid} on cpu {CpuId}";
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
}

/// <summary>
/// Decides which task runs on which CPU. A task that becomes non-preemptible takes its CPU for
/// itself until it is preemptible again, so that two tasks are never inside non-preemptible
/// sections of the same CPU at once (what makes per-CPU data safe in a kernel).
/// </summary>
internal sealed class Scheduler
{
    private readonly Cpu[] _cpus;
    private int _nextCpu = -1;

    public Scheduler(Cpu[] cpus) => _cpus = cpus;

    public Cpu[] Cpus => _cpus;

    /// <summary>The CPU a new task starts on (round robin).</summary>
    public int PlaceNewTask() => (int)((uint)Interlocked.Increment(ref _nextCpu) % (uint)_cpus.Length);

    /// <summary>
    /// Makes <paramref name="task"/> the owner of a CPU: its own if free, else (it is still
    /// preemptible, so it may migrate) any free one; waits while all are taken.
    /// </summary>
    public void TakeCpu(KTask task)
    {
        var spin = new SpinWait();
        while (true)
        {
            int start = task.CpuId;
            for (int i = 0; i < _cpus.Length; i++)
            {
                Cpu cpu = _cpus[(start + i) % _cpus.Length];
                if (Interlocked.CompareExchange(ref cpu.Owner, task, null) == null)
                {
                    task.CpuId = cpu.Id;
                    task.OwnsCpu = true;
                    return;
                }
            }
            spin.SpinOnce();
        }
    }

    public void ReleaseCpu(KTask task)
    {
        task.OwnsCpu = false;
        Volatile.Write(ref _cpus[task.CpuId].Owner, null);
    }
}
