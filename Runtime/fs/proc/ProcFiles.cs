using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Threading;

namespace KmemGuard;

/// <summary>
/// The machine's /proc files (proc_create_single): each path has a renderer that produces the
/// file's whole text when it is read. Subsystems register theirs when they start.
/// </summary>
internal sealed class ProcFiles
{
    private readonly ConcurrentDictionary<string, Func<string>> _files = new(StringComparer.Ordinal);

    /// <summary>Adds a file. A path can be registered once per machine.</summary>
    public void Register(string path, Func<string> render)
    {
        ArgumentNullException.ThrowIfNull(render);
        if (!path.StartsWith("/proc/", StringComparison.Ordinal))
            throw new ArgumentException($"A /proc file's path starts with /proc/: '{path}'.", nameof(path));
        if (!_files.TryAdd(path, render))
            throw new InvalidOperationException($"{path} is already registered on this machine.");
    }

    public string Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (_files.TryGetValue(path, out Func<string>? render)) return render();
        throw new FileNotFoundException($"{path}: No such file or directory (this machine has {string.Join(", ", Paths)}).", path);
    }

    public IReadOnlyList<string> Paths
    {
        get
        {
            var paths = new List<string>(_files.Keys);
            paths.Sort(StringComparer.Ordinal);
            return paths;
        }
    }
}

public sealed partial class Machine
{
    private ProcFiles? _procFiles;

    /// <summary>The /proc files; the page allocator's (buddyinfo, meminfo, zoneinfo) are always there.</summary>
    internal ProcFiles ProcFiles => LazyInitializer.EnsureInitialized(ref _procFiles, () =>
    {
        var files = new ProcFiles();
        files.Register("/proc/buddyinfo", () => ProcRender.Buddyinfo(this));
        files.Register("/proc/meminfo", () => ProcRender.Meminfo(this));
        files.Register("/proc/zoneinfo", () => ProcRender.Zoneinfo(this));
        return files;
    });

    /// <summary>
    /// The text of a /proc file in the kernel's format: /proc/buddyinfo, /proc/meminfo,
    /// /proc/zoneinfo, and /proc/slabinfo and /proc/vmallocinfo once those subsystems run.
    /// An unknown path throws <see cref="FileNotFoundException"/>.
    /// </summary>
    public string ReadProc(string path)
    {
        ThrowIfDisposed();
        return ProcFiles.Read(path);
    }
}
