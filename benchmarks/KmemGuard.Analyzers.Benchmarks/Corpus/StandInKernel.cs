namespace KmemGuard.Analyzers.Corpus;

/// <summary>
/// Annotated stand-ins for the kernel API, declared the way a user annotates their own wrappers; the
/// tests and the generated corpus compile against them. Sources live in namespace KmemGuard.Testing
/// (or below) so that these shadow same-named Runtime types.
/// </summary>
internal static class StandInKernel
{
    public const string Usings = """
        using System;
        using KmemGuard;
        using static KmemGuard.Testing.Api;

        namespace KmemGuard.Testing;

        """;

    public const string Source = """
        using System;
        using System.Runtime.CompilerServices;

        namespace KmemGuard.Testing
        {
            public sealed class spinlock_t { }
            public sealed class mutex { }
            public sealed class page { }
            public sealed class kmem_cache_t { }
            public sealed class mempool_t { }
            public sealed class timer_list { }
            public sealed class tasklet_struct { }
            public sealed class work_struct { }
            public delegate int irq_handler_t(int irq, object? dev);

            public static class Api
            {
                public const gfp_t GFP_KERNEL = Kernel.GFP_KERNEL;
                public const gfp_t GFP_ATOMIC = Kernel.GFP_ATOMIC;
                public const gfp_t GFP_NOFS = Kernel.GFP_NOFS;
                public const gfp_t GFP_NOIO = Kernel.GFP_NOIO;
                public const gfp_t GFP_NOWAIT = Kernel.GFP_NOWAIT;
                public const gfp_t __GFP_NOWARN = Kernel.__GFP_NOWARN;
                public const gfp_t __GFP_ZERO = Kernel.__GFP_ZERO;
                public const gfp_t __GFP_HIGH = Kernel.__GFP_HIGH;
                public static readonly KPtr NULL = default;

                [MaySleepIfGfp("flags"), Allocates(MemoryFamily.Kmalloc)]
                public static KPtr kmalloc(size_t size, gfp_t flags, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => default;
                [MaySleepIfGfp("flags"), Allocates(MemoryFamily.Kmalloc)]
                public static KPtr kzalloc(size_t size, gfp_t flags) => default;
                [Frees(MemoryFamily.Kmalloc, "objp")]
                public static void kfree(KPtr objp, [CallerFilePath] string file = "") { }
                [MaySleep, Allocates(MemoryFamily.Vmalloc)]
                public static KPtr vmalloc(size_t size) => default;
                [Frees(MemoryFamily.Vmalloc, "addr")]
                public static void vfree(KPtr addr) { }
                [MaySleepIfGfp("flags"), Allocates(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc)]
                public static KPtr kvmalloc(size_t size, gfp_t flags) => default;
                [Frees(MemoryFamily.Kmalloc | MemoryFamily.Vmalloc, "addr")]
                public static void kvfree(KPtr addr) { }
                [MaySleepIfGfp("flags"), Allocates(MemoryFamily.SlabCache, OwnerParameter = "cachep")]
                public static KPtr kmem_cache_alloc(kmem_cache_t cachep, gfp_t flags) => default;
                [Frees(MemoryFamily.SlabCache, "objp", OwnerParameter = "cachep")]
                public static void kmem_cache_free(kmem_cache_t cachep, KPtr objp) { }
                [MaySleepIfGfp("gfp_mask"), Allocates(MemoryFamily.Pages, OrderParameter = "order")]
                public static ulong __get_free_pages(gfp_t gfp_mask, int order) => 0;
                [MaySleepIfGfp("gfp_mask"), Allocates(MemoryFamily.Pages)]
                public static ulong __get_free_page(gfp_t gfp_mask) => 0;
                [Frees(MemoryFamily.Pages, "addr", OrderParameter = "order")]
                public static void free_pages(ulong addr, int order) { }
                [Frees(MemoryFamily.Pages, "addr")]
                public static void free_page(ulong addr) { }

                [EntersSection(SectionKind.Spinlock, LockParameter = "lock")]
                public static void spin_lock(spinlock_t @lock) { }
                [LeavesSection(SectionKind.Spinlock, LockParameter = "lock")]
                public static void spin_unlock(spinlock_t @lock) { }
                [EntersSectionIfTrue(SectionKind.Spinlock, LockParameter = "lock")]
                public static bool spin_trylock(spinlock_t @lock) => true;
                [EntersSection(SectionKind.Spinlock, LockParameter = "lock"), EntersSection(SectionKind.IrqsDisabled)]
                public static void spin_lock_irqsave(spinlock_t @lock, out ulong flags) => flags = 0;
                [LeavesSection(SectionKind.Spinlock, LockParameter = "lock"), LeavesSection(SectionKind.IrqsDisabled)]
                public static void spin_unlock_irqrestore(spinlock_t @lock, ulong flags) { }
                [EntersSection(SectionKind.Spinlock, LockParameter = "lock"), EntersSection(SectionKind.IrqsDisabled)]
                public static void spin_lock_irq(spinlock_t @lock) { }
                [LeavesSection(SectionKind.Spinlock, LockParameter = "lock"), LeavesSection(SectionKind.IrqsDisabled)]
                public static void spin_unlock_irq(spinlock_t @lock) { }
                [MaySleep, EntersSection(SectionKind.Mutex, LockParameter = "lock")]
                public static void mutex_lock(mutex @lock) { }
                [LeavesSection(SectionKind.Mutex, LockParameter = "lock")]
                public static void mutex_unlock(mutex @lock) { }
                [EntersSection(SectionKind.PreemptDisabled)]
                public static void preempt_disable() { }
                [LeavesSection(SectionKind.PreemptDisabled)]
                public static void preempt_enable() { }
                [EntersSection(SectionKind.PreemptDisabled)]
                public static int get_cpu() => 0;
                [LeavesSection(SectionKind.PreemptDisabled)]
                public static void put_cpu() { }
                [EntersSection(SectionKind.IrqsDisabled)]
                public static void local_irq_disable() { }
                [LeavesSection(SectionKind.IrqsDisabled)]
                public static void local_irq_enable() { }
                [EntersSection(SectionKind.RcuRead)]
                public static void rcu_read_lock() { }
                [LeavesSection(SectionKind.RcuRead)]
                public static void rcu_read_unlock() { }

                [MaySleep] public static void msleep(uint msecs) { }
                [MaySleep] public static void usleep_range(ulong min, ulong max) { }
                [MaySleep] public static void schedule() { }
                [MaySleep] public static ulong copy_from_user(KPtr to, byte[] from, ulong n) => 0;
                public static void udelay(ulong usecs) { }
                public static void mdelay(ulong msecs) { }

                [RequiresPreemptionDisabled] public static int smp_processor_id() => 0;
                public static int per_cpu(int[] v, int cpu) => v[cpu];

                [MaySleep, RunsCallback("handler", CallbackContext.HardIrq)]
                public static int request_irq(int irq, irq_handler_t handler, ulong flags, string name, object? dev) => 0;
                [RunsCallback("callback", CallbackContext.SoftIrq)]
                public static void timer_setup(timer_list timer, Action<timer_list> callback, uint flags) { }
                [RunsCallback("func", CallbackContext.SoftIrq)]
                public static void tasklet_init(tasklet_struct t, Action<ulong> func, ulong data) { }
                [RunsCallback("func", CallbackContext.Process)]
                public static void INIT_WORK(work_struct work, Action<work_struct> func) { }
            }
        }
        """;
}
