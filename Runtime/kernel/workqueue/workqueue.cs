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

    /// <summary>The delayed_work this item belongs to, if any.</summary>
    internal delayed_work? Delayed;

    /// <summary>What the last run threw (a KernelBugException in Throw mode): flush_work rethrows it.</summary>
    internal ExceptionDispatchInfo? Failure;
}

/// <summary>A kworker (bound to a CPU) or a dedicated kernel thread (an irq thread): one host thread that runs its work items in order.</summary>
internal sealed class Worker
{
    public readonly object Gate = new();
    public readonly LinkedList<work_struct> Queue = new();
    public work_struct? Current;
    public Thread? Thread;

    /// <summary>kthread_stop: the thread ends after the item it is running.</summary>
    public volatile bool Stopping;

    public Worker(int cpu) => Cpu = cpu;

    /// <summary>The CPU a kworker is bound to; -1 for an unbound thread.</summary>
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
    private readonly List<Worker> _threads = new();
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
            worker = StartThread(cpu, $"kworker/{cpu}:0");
            Volatile.Write(ref _workers[cpu], worker);
            return worker;
        }
    }

    /// <summary>Starts an unbound kernel thread that runs the work queued on it (kthread_run).</summary>
    public Worker StartKthread(string name)
    {
        lock (_workers)
        {
            Worker worker = StartThread(-1, name);
            _threads.Add(worker);
            return worker;
        }
    }

    private Worker StartThread(int cpu, string name)
    {
        if (_stopping) throw new ObjectDisposedException(nameof(Machine), "This machine has been shut down.");
        var worker = new Worker(cpu);
        worker.Thread = new Thread(() => Run(worker)) { IsBackground = true, Name = name };
        worker.Thread.Start();
        return worker;
    }

    /// <summary>kthread_stop: the thread ends after the item it runs (queued items are dropped).</summary>
    public void StopKthread(Worker worker)
    {
        lock (_workers) _threads.Remove(worker);
        Stop(worker);
    }

    private static void Stop(Worker worker)
    {
        worker.Stopping = true;
        lock (worker.Gate) Monitor.PulseAll(worker.Gate);
        if (worker.Thread is { } thread && thread != Thread.CurrentThread) thread.Join(TimeSpan.FromSeconds(2));
    }

    public bool Queue(work_struct work, int cpu) => Queue(work, WorkerFor(cpu));

    public static bool Queue(work_struct work, Worker worker)
    {
        if (work.Func is null) throw new InvalidOperationException("schedule_work: the work item was not set up with INIT_WORK.");
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
            return worker.Current != work && RunInline(work, task);
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

    private static bool RunInline(work_struct work, KTask task)
    {
        if (!TryUnqueue(work)) return false;
        RunOne(task, work);
        return true;
    }

    /// <summary>Takes a queued item off its queue without waiting; true when it was queued.</summary>
    public static bool TryUnqueue(work_struct work)
    {
        Worker? worker = work.QueuedOn;
        if (worker == null) return false;
        lock (worker.Gate)
        {
            lock (work)
            {
                if (!work.Pending) return false;
                work.Pending = false;
            }
            worker.Queue.Remove(work);
            return true;
        }
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
        if (worker.Cpu >= 0)
        {
            task.CpuId = worker.Cpu;
            task.Bound = true;
        }
        while (true)
        {
            work_struct work;
            lock (worker.Gate)
            {
                while (worker.Queue.Count == 0 && !_stopping && !worker.Stopping) Monitor.Wait(worker.Gate);
                if (_stopping || worker.Stopping) return;
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
        DebugPreempt.RunBalanced(task, 0, false, () => func(work), leaked =>
            $"BUG: workqueue leaked atomic, lock or RCU: {task.Comm}[{task.Pid}]\n" +
            $"     preempt=0x{leaked:x8} lock=0->{task.HeldLocks.Count} RCU=0->{task.RcuDepth} workfn={func.Method.Name}\n");
    }

    /// <summary>Stops every kworker and kernel thread after the item each is running (queued items are dropped).</summary>
    public void Stop()
    {
        var workers = new List<Worker>();
        lock (_workers)
        {
            _stopping = true;
            foreach (Worker? worker in _workers)
                if (worker != null) workers.Add(worker);
            workers.AddRange(_threads);
            _threads.Clear();
        }
        foreach (Worker worker in workers) Stop(worker);
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
