using System.Collections.Generic;
using System.Text;

namespace KmemGuard;

public sealed partial class Machine
{
    /// <summary>How many lines the kernel log keeps (the ring buffer drops the oldest).</summary>
    internal const int LogCapacity = 1024;

    private readonly Queue<string> _log = new();

    /// <summary>
    /// The kernel log (dmesg): warnings that are not bugs of the caller's code, such as
    /// "page allocation failure" or a bootmem allocation that failed. Oldest first.
    /// </summary>
    internal IReadOnlyList<string> Log
    {
        get
        {
            lock (_log) return _log.ToArray();
        }
    }

    /// <summary>printk at KERN_WARNING: appends one message (it may hold several lines) to <see cref="Log"/>.</summary>
    internal void Warn(string message)
    {
        lock (_log)
        {
            if (_log.Count == LogCapacity) _log.Dequeue();
            _log.Enqueue(message);
        }
    }
}

/// <summary>Pieces of kernel log messages shared by the subsystems.</summary>
internal static class KernelLog
{
    /// <summary>The first lines of a WARN(): "------------[ cut here ]------------" and "WARNING: CPU: 0 PID: 1 at file function".</summary>
    public static string WarningHeader(Machine machine, string file, string function)
    {
        KTask task = machine.CurrentTask;
        return new StringBuilder()
            .Append("------------[ cut here ]------------\n")
            .Append("WARNING: CPU: ").Append(task.CpuId).Append(" PID: ").Append(task.Pid)
            .Append(" at ").Append(file).Append(' ').Append(function).Append('\n')
            .ToString();
    }
}
