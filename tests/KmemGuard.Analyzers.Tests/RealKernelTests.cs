using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>The analyzers against the Runtime's own annotated API, as driver code uses it.</summary>
public class RealKernelTests
{
    [Fact]
    public Task SleepsUnderTheRuntimesLocksAndInItsIrqHandlers() => AnalyzeKernelAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            mutex m = new();
            int probe()
            {
                {|#1:spin_lock_irqsave(lk, out ulong flags)|};
                ulong pages = {|#0:__get_free_pages(GFP_KERNEL | __GFP_NOWARN, 1)|};
                ulong quiet = __get_free_pages(GFP_ATOMIC, 1);
                {|#2:mutex_lock(m)|};
                mutex_unlock(m);
                spin_unlock_irqrestore(lk, flags);
                msleep(1);
                return {|#4:request_irq(9, (irq, dev) => { {|#3:msleep(1)|}; return IRQ_HANDLED; }, 0, "dev", null)|};
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1)
            .WithMessage("__get_free_pages with GFP_KERNEL | __GFP_NOWARN may sleep, but spin_lock_irqsave(lk) at line 12 holds an atomic section"),
        Kmg("KMG0001").WithLocation(2).WithLocation(1),
        Kmg("KMG0001").WithLocation(3).WithLocation(4));

    [Fact]
    public Task CallbacksOfTheRuntime() => AnalyzeKernelAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            timer_list t = new();
            tasklet_struct ts = new();
            work_struct w = new();
            void setup()
            {
                {|#1:timer_setup(t, timer => {|#0:schedule()|}, 0)|};
                {|#3:tasklet_init(ts, data => {|#2:msleep(2)|}, 0)|};
                INIT_WORK(w, work => msleep(3));
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1),
        Kmg("KMG0001").WithLocation(2).WithLocation(3));

    [Fact]
    public Task PageOrdersOfTheRuntime() => AnalyzeKernelAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            void f()
            {
                ulong a = {|#1:__get_free_pages(GFP_KERNEL, 2)|};
                {|#0:free_pages(a, 1)|};
                ulong b = __get_free_pages(GFP_KERNEL, 2);
                free_pages(b, 2);
            }
        }
        """, Kmg("KMG0002").WithLocation(0).WithLocation(1));

    [Fact]
    public Task UnbalancedRuntimeLock() => AnalyzeKernelAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int f(int n)
            {
                {|#1:spin_lock_irqsave(lk, out ulong flags)|};
                if (n < 0)
                    {|#0:return -22;|}
                spin_unlock_irqrestore(lk, flags);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1)
            .WithMessage("spin_lock_irqsave(lk) at line 11 is still held when f() returns here: call spin_unlock_irqrestore(lk, flags) first"));

    [Fact]
    public Task MemoryAndPerCpuOfTheRuntime() => AnalyzeKernelAsync<MismatchedFreeAnalyzer>("""
        class Dev
        {
            KPtr ring;
            void open() => ring = {|#1:vmalloc(1 << 16)|};
            void close()
            {
                {|#0:kfree(ring)|};
                KPtr k = kmalloc(64, GFP_KERNEL);
                kfree(k);
                KPtr v = vmalloc(64);
                vfree(v);
            }
        }
        """, Kmg("KMG0002").WithLocation(0).WithLocation(1)
            .WithMessage("memory from vmalloc at line 9 is freed with kfree: use vfree or kvfree"));

    [Fact]
    public Task SleepingKmallocAndPreemptibleCpuOfTheRuntime() => AnalyzeKernelAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                {|#1:spin_lock(lk)|};
                KPtr p = {|#0:kmalloc(64, GFP_KERNEL)|};
                KPtr q = kmalloc(64, GFP_ATOMIC);
                spin_unlock(lk);
                kfree(p);
                kfree(q);
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task SmpProcessorIdOfTheRuntime() => AnalyzeKernelAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            int f()
            {
                int cpu = get_cpu();
                int same = smp_processor_id();
                put_cpu();
                return cpu + same + {|#0:smp_processor_id()|};
            }
        }
        """, Kmg("KMG0003").WithLocation(0));
}
