using System.Runtime.CompilerServices;

namespace KmemGuard;

// include/linux/kmemleak.h: what a driver tells kmemleak about its own blocks. With kmemleak off
// (Checks without Kmemleak) these do nothing, as the kernel's stubs without CONFIG_DEBUG_KMEMLEAK.
public static partial class Kernel
{
    /// <summary>
    /// The block at <paramref name="ptr"/> (its start) is not a leak even when nothing points to it;
    /// what it points to stays reachable. A NULL or unknown pointer is ignored.
    /// </summary>
    public static void kmemleak_not_leak(KPtr ptr)
    {
        KmemleakFor(ptr)?.NotLeak(ptr.Address);
    }

    /// <summary>The block is never reported and never scanned: what only it points to may then leak.</summary>
    public static void kmemleak_ignore(KPtr ptr)
    {
        KmemleakFor(ptr)?.Ignore(ptr.Address);
    }

    /// <summary>The block is not scanned for pointers (it holds no pointers, or too many false ones), but may leak.</summary>
    public static void kmemleak_no_scan(KPtr ptr)
    {
        KmemleakFor(ptr)?.NoScan(ptr.Address);
    }

    /// <summary>
    /// Registers a block of a driver's own allocator. <paramref name="min_count"/> is how many
    /// references it needs not to be a leak: 1 usually, 0 never a leak (and scanned), -1 ignored.
    /// </summary>
    public static void kmemleak_alloc(KPtr ptr, size_t size, int min_count, gfp_t gfp,
        [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        _ = gfp; // the kernel uses it only for kmemleak's own metadata allocation
        if (min_count < Kmemleak.Black)
            throw new System.ArgumentOutOfRangeException(nameof(min_count), min_count, "kmemleak_alloc: min_count is -1 (ignore), 0 (never a leak) or the references a block needs.");
        Kmemleak? leaks = KmemleakFor(ptr);
        if (leaks == null) return;
        Machine machine = Machine.Current;
        leaks.Track(ptr.Address, size, MemoryFamily.None, null, new Track(machine.CurrentTask, new CallSite(caller, file, line), machine.Jiffies), min_count);
    }

    /// <summary>Forgets a block registered with <see cref="kmemleak_alloc"/>, before the driver's allocator frees it.</summary>
    public static void kmemleak_free(KPtr ptr)
    {
        KmemleakFor(ptr)?.Untrack(ptr.Address);
    }

    /// <summary>The current machine's kmemleak, or null when it is off or the pointer is NULL (the kernel's calls ignore NULL).</summary>
    private static Kmemleak? KmemleakFor(KPtr ptr)
    {
        Machine machine = Machine.Current;
        return !ZERO_OR_NULL_PTR(ptr) && machine.IsChecking(Checks.Kmemleak) ? machine.Kmemleak : null;
    }
}
