using System;
using System.Collections.Generic;

namespace KmemGuard;

/// <summary>One bug the checker found, with the text a debug kernel would print.</summary>
public sealed class KernelBugReport
{
    internal KernelBugReport(BugKind kind, string text, ulong address)
    {
        Kind = kind;
        Text = text;
        Address = address;
    }

    public BugKind Kind { get; }

    /// <summary>The whole report in the kernel's format.</summary>
    public string Text { get; }

    /// <summary>The report's first line ("BUG: KASAN: slab-out-of-bounds in ...").</summary>
    public string Title
    {
        get
        {
            int end = Text.IndexOf('\n');
            return end < 0 ? Text : Text.Substring(0, end);
        }
    }

    /// <summary>The faulting or freed address, when the bug has one; 0 otherwise.</summary>
    public ulong Address { get; }

    public override string ToString() => Text;
}

/// <summary>Thrown in <see cref="BugAction.Throw"/> mode when the checker finds a bug.</summary>
public sealed class KernelBugException : Exception
{
    internal KernelBugException(KernelBugReport details)
        : base(details.Title)
    {
        Details = details;
    }

    public KernelBugReport Details { get; }

    public BugKind Kind => Details.Kind;

    /// <summary>The whole report in the kernel's format.</summary>
    public string Report => Details.Text;
}

/// <summary>Where a machine's reports go: thrown or collected, as its options say.</summary>
internal sealed class BugReporter
{
    private readonly BugAction _action;
    private readonly List<KernelBugReport> _reports = new();
    private readonly object _gate = new();

    public BugReporter(BugAction action) => _action = action;

    public BugAction Action => _action;

    public IReadOnlyList<KernelBugReport> Snapshot()
    {
        lock (_gate) return _reports.ToArray();
    }

    /// <summary>
    /// Hands a report over. Callers report before they change any state, so that a throw leaves
    /// the machine as it was; in Report mode they then skip the bad operation.
    /// </summary>
    public void Raise(BugKind kind, string text, ulong address = 0)
    {
        var report = new KernelBugReport(kind, text, address);
        if (_action == BugAction.Throw) throw new KernelBugException(report);
        lock (_gate) _reports.Add(report);
    }
}
