using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace KmemGuard;

/// <summary>The C# call site of a kernel call, from the caller-info attributes.</summary>
internal readonly struct CallSite : IEquatable<CallSite>
{
    public readonly string Member;
    public readonly string File;
    public readonly int Line;

    public CallSite(string member, string file, int line)
    {
        Member = member ?? "";
        File = file ?? "";
        Line = line;
    }

    public bool IsKnown => Line != 0;

    // Caller-info strings are literals, hence interned: compare and hash by reference first, so a
    // depot lookup costs a few nanoseconds instead of hashing whole paths.
    public bool Equals(CallSite other) =>
        Line == other.Line
        && (ReferenceEquals(File, other.File) || File == other.File)
        && (ReferenceEquals(Member, other.Member) || Member == other.Member);

    public override bool Equals(object? obj) => obj is CallSite other && Equals(other);
    public override int GetHashCode() => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(File) ^ (Line * 16777619);

    public override string ToString() =>
        IsKnown ? $"{Member} ({System.IO.Path.GetFileName(File)}:{Line})" : "<unknown>";
}

/// <summary>
/// Like the kernel's stackdepot: stacks are stored once and shared. A full .NET stack walk costs
/// microseconds, so the walk is done once per call site and reused for later calls from the same
/// site (the frames above the site are those of its first call).
/// </summary>
internal static class StackDepot
{
    private static readonly ConcurrentDictionary<CallSite, string> s_stacks = new();
    private static readonly string s_runtimeAssembly = typeof(StackDepot).Assembly.GetName().Name!;

    public static string Stack(CallSite site)
    {
        if (!site.IsKnown) return Walk();
        return s_stacks.GetOrAdd(site, static _ => Walk());
    }

    /// <summary>The current stack without the runtime's own frames, in the kernel's indented form.</summary>
    /// <summary>Frames kept per stack: enough to reach the driver's entry point, not the test runner's.</summary>
    private const int MaxFrames = 12;

    public static string Walk()
    {
        var trace = new StackTrace(1, true);
        var text = new StringBuilder();
        int frames = 0;
        foreach (StackFrame frame in trace.GetFrames())
        {
            var method = frame.GetMethod();
            if (method?.DeclaringType is null) continue;
            // The runtime's own frames are noise, but for the public kernel function the driver called (kmalloc, ...).
            if (method.DeclaringType.Assembly.GetName().Name == s_runtimeAssembly && (method.DeclaringType != typeof(Kernel) || !method.IsPublic)) continue;
            if (method.DeclaringType.Namespace?.StartsWith("System", StringComparison.Ordinal) == true) continue;
            string? file = frame.GetFileName();
            text.Append(' ').Append(method.DeclaringType.Name).Append('.').Append(method.Name);
            if (file != null) text.Append(" (").Append(System.IO.Path.GetFileName(file)).Append(':').Append(frame.GetFileLineNumber()).Append(')');
            text.Append('\n');
            if (++frames == MaxFrames) break;
        }
        return text.ToString();
    }
}

/// <summary>Who did something to a block, and when: SLUB's "track" (alloc or free).</summary>
internal sealed class Track
{
    public Track(KTask task, CallSite site, ulong jiffies)
    {
        Pid = task.Pid;
        Comm = task.Comm;
        Cpu = task.CpuId;
        Site = site;
        Jiffies = jiffies;
        // Walk now, while the stack is the allocator's caller's, not at the first report.
        StackText = StackDepot.Stack(site);
    }

    public int Pid { get; }
    public string Comm { get; }
    public int Cpu { get; }
    public CallSite Site { get; }
    public ulong Jiffies { get; }

    /// <summary>The stack, formatted as KASAN prints it under "Allocated by task N:".</summary>
    public string StackText { get; }
}
