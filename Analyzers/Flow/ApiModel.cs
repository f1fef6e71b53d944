using System;

namespace KmemGuard.Analyzers.Flow;

// Mirrors of the annotation enums in Runtime/include/Annotations.cs (same values): the analyzer
// cannot reference the net10.0 Runtime, it reads the values from attribute arguments.

[Flags]
internal enum Family
{
    None = 0,
    Kmalloc = 1 << 0,
    SlabCache = 1 << 1,
    Pages = 1 << 2,
    Vmalloc = 1 << 3,
    IoRemap = 1 << 4,
    PerCpu = 1 << 5,
    Mempool = 1 << 6,
    Bootmem = 1 << 7,
}

/// <summary>SectionKind's values, plus the contexts a callback starts in.</summary>
internal enum Section
{
    Spinlock = 0,
    Mutex = 1,
    IrqsDisabled = 2,
    BottomHalvesDisabled = 3,
    PreemptDisabled = 4,
    RcuRead = 5,
    HardIrqContext = 100,
    SoftIrqContext = 101,
}

internal enum CallbackContextKind
{
    HardIrq = 0,
    SoftIrq = 1,
    Process = 2,
}

internal static class SectionFacts
{
    public static bool IsAtomic(Section kind) => kind != Section.Mutex;

    /// <summary>Sections in which the current CPU cannot change (RCU read sections may be preemptible).</summary>
    public static bool PinsCpu(Section kind) => kind is not (Section.Mutex or Section.RcuRead);

    public static Section? ForCallback(CallbackContextKind context) => context switch
    {
        CallbackContextKind.HardIrq => Section.HardIrqContext,
        CallbackContextKind.SoftIrq => Section.SoftIrqContext,
        _ => null,
    };
}
