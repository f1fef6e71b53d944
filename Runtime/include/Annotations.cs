using System;

namespace KmemGuard;

// Attributes that describe what a kernel function does to the execution context and to memory.
// The KmemGuard analyzers read only these: the Runtime's own API carries them, and users put the
// same attributes on their own wrappers so that the analyzers follow those too.

/// <summary>The allocator a block of memory comes from; a free accepts one or more of them.</summary>
[Flags]
public enum MemoryFamily
{
    None = 0,
    /// <summary>kmalloc, kzalloc, kcalloc, krealloc, ...: freed by kfree.</summary>
    Kmalloc = 1 << 0,
    /// <summary>kmem_cache_alloc: freed by kmem_cache_free to the same cache.</summary>
    SlabCache = 1 << 1,
    /// <summary>Whole pages from the buddy allocator: freed by free_pages / __free_pages with the same order.</summary>
    Pages = 1 << 2,
    /// <summary>vmalloc, vzalloc: freed by vfree.</summary>
    Vmalloc = 1 << 3,
    /// <summary>ioremap: undone by iounmap.</summary>
    IoRemap = 1 << 4,
    /// <summary>alloc_percpu: freed by free_percpu.</summary>
    PerCpu = 1 << 5,
    /// <summary>mempool_alloc: freed by mempool_free to the same pool.</summary>
    Mempool = 1 << 6,
    /// <summary>alloc_bootmem: given back only by free_bootmem, never by a runtime free.</summary>
    Bootmem = 1 << 7,
}

/// <summary>A section of code that the kernel treats specially; every kind but <see cref="Mutex"/> is atomic.</summary>
public enum SectionKind
{
    /// <summary>A spinlock is held (preemption is disabled).</summary>
    Spinlock,
    /// <summary>A mutex is held: not atomic, but it must be released on every path.</summary>
    Mutex,
    /// <summary>Local interrupts are disabled.</summary>
    IrqsDisabled,
    /// <summary>Softirqs (bottom halves) are disabled.</summary>
    BottomHalvesDisabled,
    /// <summary>Preemption is disabled (preempt_disable, get_cpu, get_cpu_var).</summary>
    PreemptDisabled,
    /// <summary>An RCU read-side critical section.</summary>
    RcuRead,
}

/// <summary>The context a callback runs in.</summary>
public enum CallbackContext
{
    /// <summary>Hard interrupt context (irq handlers): atomic.</summary>
    HardIrq,
    /// <summary>Softirq context (timers, tasklets): atomic.</summary>
    SoftIrq,
    /// <summary>Process context (work items): may sleep.</summary>
    Process,
}

/// <summary>The method may sleep whatever its arguments (mutex_lock, msleep, vmalloc, ...).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, Inherited = false)]
public sealed class MaySleepAttribute : Attribute
{
}

/// <summary>The method may sleep when its GFP argument allows blocking (has __GFP_DIRECT_RECLAIM).</summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, Inherited = false)]
public sealed class MaySleepIfGfpAttribute : Attribute
{
    public MaySleepIfGfpAttribute(string gfpParameter) => GfpParameter = gfpParameter;

    /// <summary>Name of the <c>gfp_t</c> parameter that decides.</summary>
    public string GfpParameter { get; }
}

/// <summary>The method returns memory of the given family.</summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class AllocatesAttribute : Attribute
{
    public AllocatesAttribute(MemoryFamily family) => Family = family;

    /// <summary>The family (or families, for kvmalloc) of the returned memory.</summary>
    public MemoryFamily Family { get; }

    /// <summary>Name of the parameter that holds the page order, for page allocations.</summary>
    public string? OrderParameter { get; set; }

    /// <summary>Name of the parameter that holds the slab cache or mempool the memory belongs to.</summary>
    public string? OwnerParameter { get; set; }
}

/// <summary>The method frees the memory passed in <see cref="Parameter"/>, which must be of an accepted family.</summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class FreesAttribute : Attribute
{
    public FreesAttribute(MemoryFamily accepts, string parameter)
    {
        Accepts = accepts;
        Parameter = parameter;
    }

    /// <summary>The families this free accepts (kvfree accepts Kmalloc | Vmalloc).</summary>
    public MemoryFamily Accepts { get; }

    /// <summary>Name of the parameter that holds the memory.</summary>
    public string Parameter { get; }

    /// <summary>Name of the parameter that holds the page order, for page frees.</summary>
    public string? OrderParameter { get; set; }

    /// <summary>Name of the parameter that holds the slab cache or mempool the memory must belong to.</summary>
    public string? OwnerParameter { get; set; }
}

/// <summary>The method enters a section of the given kind (and keeps it on return).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
public sealed class EntersSectionAttribute : Attribute
{
    public EntersSectionAttribute(SectionKind kind) => Kind = kind;

    public SectionKind Kind { get; }

    /// <summary>Name of the parameter that identifies the lock, for locks.</summary>
    public string? LockParameter { get; set; }
}

/// <summary>The method enters a section of the given kind only when it returns <c>true</c> (trylock).</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
public sealed class EntersSectionIfTrueAttribute : Attribute
{
    public EntersSectionIfTrueAttribute(SectionKind kind) => Kind = kind;

    public SectionKind Kind { get; }

    public string? LockParameter { get; set; }
}

/// <summary>The method leaves a section of the given kind.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
public sealed class LeavesSectionAttribute : Attribute
{
    public LeavesSectionAttribute(SectionKind kind) => Kind = kind;

    public SectionKind Kind { get; }

    public string? LockParameter { get; set; }
}

/// <summary>The delegate passed in <see cref="DelegateParameter"/> is later run in the given context.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true, Inherited = false)]
public sealed class RunsCallbackAttribute : Attribute
{
    public RunsCallbackAttribute(string delegateParameter, CallbackContext context)
    {
        DelegateParameter = delegateParameter;
        Context = context;
    }

    public string DelegateParameter { get; }

    public CallbackContext Context { get; }
}

/// <summary>The method touches this CPU's data and must be called with preemption disabled.</summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
public sealed class RequiresPreemptionDisabledAttribute : Attribute
{
}
