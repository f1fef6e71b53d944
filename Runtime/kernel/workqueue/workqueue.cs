using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace KmemGuard;

/// <summary>A work item: <c>func</c> runs later on a kworker thread, in process context (it may sleep).</summary>
public sealed class work_struct
{
    internal Action<work_struct>? Func;

    /// <summary>WORK_STRUCT_PENDING: queued and not yet started.</summary>
    internal bool Pending;

    /// <summary>cancel_work_sync is running: the item may not be queued again meanwhile.</summary>
    internal bool Canceling;

    /// <summary>The worker it was last queued on (flush and cancel look there).</summary>
    internal Worker? QueuedOn;

    /// <summary>What the last run threw (a KernelBugException in Throw mode): flush_work rethrows it.</summary>
    internal ExceptionDispatchInfo? Failure;
}

/// <summary>A per-CPU kworker: one host thread that runs its CPU's work items in order.</summary>
internal sealed class Worker
{
    public readonly object Gate = new();
    public readonly LinkedList<work_struct> Queue = new();
    public work_struct? Current;
    public Thread? Thread;

    public Worker(int cpu) => Cpu = cpu;

    public int Cpu { get; }

    public bool Busy(work_struct work) => Current == work || work.Pending && work.QueuedOn == this;
}

/// <summary>
/// system_wq: a kworker thread per CPU (kworker/N:0), started when the CPU first gets work,
/// bound to it (so DEBUG_PREEMPT accepts smp_processor_id there, as the kernel does for
/// per-CPU kworkers), and stopped when the machine shuts down.
/// </summary>
internal sealed class Workqueue
{
    private readonly Machine _machine;
    private readonly Worker?[] _workers;
    private volatile bool _stopping;

    public Workqueue(Machine machine)
    {
        _machine = machine;
        _workers = new Worker?[machine.Cpus.Length];
    }

    private Worker WorkerFor(int cpu)
    {
        Worker? worker = Volatile.Read(ref _workers[cpu]);
        if (worker != null) return worker;
        lock (_workers)
        {
            if (_workers[cpu] is { } existing) return existing;
            if (_stopping) throw new ObjectDisposedException(nameof(Machine), "This machine has been shut down.");
            worker = new Worker(cpu);
            worker.Thread = new Thread(() => Run(worker)) { IsBackground = true, Name = $"kworker/{cpu}:0" };
            worker.Thread.Start();
            Volatile.Write(ref _workers[cpu], worker);
            return worker;
        }
    }

    public bool Queue(work_struct work, int cpu)
    {
        if (work.Func is null) throw new InvalidOperationException("schedule_work: the work item was not set up with INIT_WORK.");
        Worker worker = WorkerFor(cpu);
        lock (worker.Gate)
        {
            lock (work)
            {
                if (work.Pending || work.Canceling) return false;
                work.Pending = true;
                work.QueuedOn = worker;
            }
            worker.Queue.AddLast(work);
            Monitor.PulseAll(worker.Gate);
        }
        return true;
    }

    /// <summary>Waits until the item is neither queued nor running; true when it had to wait.</summary>
    public static bool Flush(work_struct work, KTask task)
    {
        Worker? worker = work.QueuedOn;
        if (worker == null) return false;
        if (worker.Thread == Thread.CurrentThread)
        {
            // A work item flushing another queued behind it on the same kworker: the kernel's
            // concurrency management would start a second worker for it; run it here instead.
            return worker.Current != work && RunInline(worker, work, task);
        }
        bool waited = false;
        using (SleepScope.Enter(task))
        {
            lock (worker.Gate)
            {
                while (worker.Busy(work))
                {
                    waited = true;
                    Monitor.Wait(worker.Gate);
                }
            }
        }
        RethrowFailure(work);
        return waited;
    }

    private static bool RunInline(Worker worker, work_struct work, KTask task)
    {
        lock (worker.Gate)
        {
            lock (work)
            {
                if (!work.Pending) return false;
                work.Pending = false;
            }
            worker.Queue.Remove(work);
        }
        RunOne(task, work);
        return true;
    }

    /// <summary>Takes a queued item off its queue and waits for a running one; true when it was pending.</summary>
    public static bool Cancel(work_struct work, KTask task)
    {
        Worker? worker = work.QueuedOn;
        if (worker == null) return false;
        bool wasPending;
        lock (worker.Gate)
        {
            lock (work)
            {
                wasPending = work.Pending;
                work.Canceling = true;
                work.Pending = false;
            }
            if (wasPending) worker.Queue.Remove(work);
        }
        try
        {
            if (worker.Thread != Thread.CurrentThread)
            {
                using (SleepScope.Enter(task))
                {
                    lock (worker.Gate)
                    {
                        while (worker.Current == work) Monitor.Wait(worker.Gate);
                    }
                }
            }
        }
        finally
        {
            lock (work) work.Canceling = false;
        }
        RethrowFailure(work);
        return wasPending;
    }

    /// <summary>Waits until every worker is idle with an empty queue.</summary>
    public void FlushAll(KTask task)
    {
        using (SleepScope.Enter(task))
        {
            foreach (Worker? worker in _workers)
            {
                if (worker == null || worker.Thread == Thread.CurrentThread) continue;
                lock (worker.Gate)
                {
                    while (worker.Current != null || worker.Queue.Count > 0) Monitor.Wait(worker.Gate);
                }
            }
        }
    }

    private static void RethrowFailure(work_struct work)
    {
        ExceptionDispatchInfo? failure = Interlocked.Exchange(ref work.Failure, null);
        failure?.Throw();
    }

    private void Run(Worker worker)
    {
        KTask task;
        try
        {
            _machine.MakeCurrent();
            task = _machine.CurrentTask;
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        task.CpuId = worker.Cpu;
        task.Bound = true;
        while (true)
        {
            work_struct work;
            lock (worker.Gate)
            {
                while (worker.Queue.Count == 0 && !_stopping) Monitor.Wait(worker.Gate);
                if (_stopping) return;
                work = worker.Queue.First!.Value;
                worker.Queue.RemoveFirst();
                lock (work) work.Pending = false;
                worker.Current = work;
            }
            try
            {
                RunOne(task, work);
            }
            catch (Exception e)
            {
                work.Failure = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                lock (worker.Gate)
                {
                    worker.Current = null;
                    Monitor.PulseAll(worker.Gate);
                }
            }
        }
    }

    private static void RunOne(KTask task, work_struct work)
    {
        Action<work_struct> func = work.Func!;
        try
        {
            func(work);
        }
        catch
        {
            DebugPreempt.Restore(task, 0, false, 0, 0);
            throw;
        }
        DebugPreempt.CheckBalanced(task, 0, false, 0, 0, leaked =>
            $"BUG: workqueue leaked atomic, lock or RCU: {task.Comm}[{task.Pid}]\n" +
            $"     preempt=0x{leaked:x8} lock=0->{task.HeldLocks.Count} RCU=0->{task.RcuDepth} workfn={func.Method.Name}\n");
    }

    /// <summary>Stops the workers after the item each is running (queued items are dropped).</summary>
    public void Stop()
    {
        Worker?[] workers;
        lock (_workers)
        {
            _stopping = true;
            workers = (Worker?[])_workers.Clone();
        }
        foreach (Worker? worker in workers)
        {
            if (worker == null) continue;
            lock (worker.Gate) Monitor.PulseAll(worker.Gate);
        }
        foreach (Worker? worker in workers)
        {
            if (worker?.Thread is { } thread && thread != Thread.CurrentThread) thread.Join(TimeSpan.FromSeconds(2));
        }
    }
}

// kernel/workqueue.c: the system workqueue.
public static partial class Kernel
{
    /// <summary>Sets the work item up to run <paramref name="func"/> in process context.</summary>
    [RunsCallback("func", CallbackContext.Process)]
    public static void INIT_WORK(work_struct work, Action<work_struct> func)
    {
        ArgumentNullException.ThrowIfNull(func);
        lock (work)
        {
            if (work.Pending) throw new InvalidOperationException("INIT_WORK: the work item is queued (re-initialising it would corrupt the queue).");
            work.Func = func;
            work.Failure = null;
        }
    }

    /// <summary>Queues the work on this CPU's kworker; false when it was already queued.</summary>
    public static bool schedule_work(work_struct work)
    {
        Machine machine = Machine.Current;
        return machine.Workqueue.Queue(work, machine.CurrentTask.CpuId);
    }

    /// <summary>Queues the work on CPU <paramref name="cpu"/>'s kworker; false when it was already queued.</summary>
    public static bool schedule_work_on(int cpu, work_struct work)
    {
        Machine machine = Machine.Current;
        if ((uint)cpu >= (uint)machine.Cpus.Length) throw new ArgumentOutOfRangeException(nameof(cpu), cpu, $"This machine has CPUs 0 to {machine.Cpus.Length - 1}.");
        return machine.Workqueue.Queue(work, cpu);
    }

    /// <summary>True while the work is queued and not started.</summary>
    public static bool work_pending(work_struct work)
    {
        lock (work) return work.Pending;
    }

    /// <summary>
    /// Waits until the work has finished; true when it had to wait. A bug the work hit in Throw
    /// mode (or any exception it threw) is rethrown here.
    /// </summary>
    [MaySleep]
    public static bool flush_work(work_struct work, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Workqueue.Flush(work, MightSleep(new CallSite(caller, file, line)));

    /// <summary>Cancels queued work and waits for a running instance; true when it was pending.</summary>
    [MaySleep]
    public static bool cancel_work_sync(work_struct work, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Workqueue.Cancel(work, MightSleep(new CallSite(caller, file, line)));

    /// <summary>Waits until all work queued on the system workqueue has run.</summary>
    [MaySleep]
    public static void flush_scheduled_work([CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        KTask task = MightSleep(new CallSite(caller, file, line));
        task.Machine.Workqueue.FlushAll(task);
    }
}
