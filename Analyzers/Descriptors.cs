using Microsoft.CodeAnalysis;

namespace KmemGuard.Analyzers;

/// <summary>The diagnostic IDs; fixed by the project contract.</summary>
internal static class RuleIdentifiers
{
    public const string SleepInAtomic = "KMG0001";
    public const string MismatchedFree = "KMG0002";
    public const string PreemptibleCpuAccess = "KMG0003";
    public const string SectionImbalance = "KMG0004";
}

/// <summary>The one place that declares every KmemGuard diagnostic.</summary>
internal static class Descriptors
{
    /// <summary>Where the rule pages live; each descriptor links to its page under it.</summary>
    public const string HelpLinkBase = "https://github.com/KmemGuard/KmemGuard/blob/main/docs/rules/";

    private const string ContextCategory = "KmemGuard.Context";
    private const string MemoryCategory = "KmemGuard.Memory";

    public static readonly DiagnosticDescriptor SleepInAtomic = Create(
        RuleIdentifiers.SleepInAtomic,
        "A call that may sleep is made in atomic context",
        "{0} may sleep, but {1}{2}",
        ContextCategory,
        "Sleeping while a spinlock is held, with interrupts or preemption disabled, inside an RCU read-side section or in interrupt context deadlocks or corrupts the scheduler. Use a non-sleeping variant (GFP_ATOMIC, mdelay) or move the call out of the atomic section.");

    public static readonly DiagnosticDescriptor MismatchedFree = Create(
        RuleIdentifiers.MismatchedFree,
        "Memory is freed by a function that does not match its allocator",
        "memory from {0} at line {1} is freed with {2}{3}",
        MemoryCategory,
        "Each kernel allocator has its own free: kmalloc memory goes to kfree, vmalloc memory to vfree, pages to free_pages with the same order, slab objects to kmem_cache_free with the same cache. Any other pairing corrupts the allocator.");

    public static readonly DiagnosticDescriptor PreemptibleCpuAccess = Create(
        RuleIdentifiers.PreemptibleCpuAccess,
        "Per-CPU data is accessed while preemptible",
        "{0} needs preemption disabled, but {1} can be preempted and migrated to another CPU here{2}: use get_cpu()/put_cpu(), preempt_disable()/preempt_enable() or per_cpu(v, cpu) with an explicit CPU",
        ContextCategory,
        "The current CPU is only stable while preemption is disabled. Outside get_cpu/put_cpu, preempt_disable/preempt_enable or a spinlock the task can migrate between reading the CPU number and using it.");

    public static readonly DiagnosticDescriptor SectionImbalance = Create(
        RuleIdentifiers.SectionImbalance,
        "A section is entered and left unevenly on some path",
        "{0}",
        ContextCategory,
        "Every lock, get_cpu, preempt_disable, local_irq_disable and rcu_read_lock must be undone on every path out of the function, exactly once. A method that returns holding a section on purpose says so with [EntersSection] or [LeavesSection].");

    private static DiagnosticDescriptor Create(string id, string title, string message, string category, string description) =>
        new(id, title, message, category, DiagnosticSeverity.Warning, isEnabledByDefault: true,
            description: description, helpLinkUri: HelpLinkBase + id + ".md");
}
