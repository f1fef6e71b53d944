using System;

namespace KmemGuard;

public sealed partial class Machine
{
    private PerCpuAllocator? _percpu;

    /// <summary>The per-CPU areas; they are set up after the page allocator, as in the kernel's mm_init.</summary>
    internal PerCpuAllocator PerCpuAreas =>
        _percpu ?? throw new InvalidOperationException("Per-CPU data is not available in early boot: call Machine.FinishBoot() first.");

    partial void InitPerCpu()
    {
        _percpu = new PerCpuAllocator(this);
        Memory.PerCpuOwner = _percpu;
        // The per-CPU areas are roots for kmemleak, as the kernel's per-CPU sections are.
        if (IsChecking(Checks.Kmemleak)) Kmemleak.AddScanAreaProvider(_percpu.ScanAreas);
    }
}
