using System;

namespace KmemGuard;

/// <summary>The kinds of bug the runtime checker reports.</summary>
public enum BugKind
{
    SlabOutOfBounds,
    SlabUseAfterFree,
    UseAfterFree,
    VmallocOutOfBounds,
    OutOfBounds,
    NullPtrDeref,
    WildAccess,
    DoubleFree,
    InvalidFree,
    MismatchedFree,
    SleepInAtomic,
    PreemptibleCpuAccess,
    UnbalancedPreempt,
    Leak,
    RedzoneOverwritten,
    PoisonOverwritten,
    CacheNotEmpty,
    BadPageState,
    BootmemAfterBoot,
    InvalidFlags,
    UsercopyExposure,
}

/// <summary>What the checker does when it finds a bug.</summary>
public enum BugAction
{
    /// <summary>Throw a <see cref="KernelBugException"/> (the default).</summary>
    Throw,
    /// <summary>Append a <see cref="KernelBugReport"/> to <see cref="Machine.Reports"/> and go on.</summary>
    Report,
}

/// <summary>The checks of a debug kernel, each of which can be switched off.</summary>
[Flags]
public enum Checks
{
    None = 0,
    /// <summary>CONFIG_DEBUG_ATOMIC_SLEEP: sleeping in atomic context.</summary>
    MightSleep = 1 << 0,
    /// <summary>CONFIG_DEBUG_PREEMPT: per-CPU access while preemptible, unbalanced preemption.</summary>
    DebugPreempt = 1 << 1,
    /// <summary>CONFIG_KASAN (generic): shadow memory, redzones, quarantine.</summary>
    Kasan = 1 << 2,
    /// <summary>Double, invalid and mismatched frees.</summary>
    Frees = 1 << 3,
    /// <summary>slub_debug: red zones and poison verified on free and allocation.</summary>
    SlubDebug = 1 << 4,
    /// <summary>kmemleak: allocation tracking for <see cref="Machine.ScanLeaks"/>.</summary>
    Kmemleak = 1 << 5,
    /// <summary>CONFIG_HARDENED_USERCOPY.</summary>
    Usercopy = 1 << 6,
    /// <summary>Sanity checks: bootmem after boot, invalid GFP flags, non-empty cache destroy, bad page state.</summary>
    Sanity = 1 << 7,
    All = MightSleep | DebugPreempt | Kasan | Frees | SlubDebug | Kmemleak | Usercopy | Sanity,
}
