using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>KMG0001 in callbacks, lambdas and local functions.</summary>
public class SleepInAtomicContextTests
{
    [Fact]
    public Task IrqHandlerLambdaIsHardIrqContext() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            int probe()
            {
                return {|#1:request_irq(17, (irq, dev) =>
                {
                    var p = {|#0:kmalloc(32, GFP_KERNEL)|};
                    var q = kmalloc(32, GFP_ATOMIC);
                    return 1;
                }, 0, "dev", null)|};
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1)
            .WithMessage("kmalloc with GFP_KERNEL may sleep, but it runs as a hard-irq handler registered by request_irq (line 10)"));

    [Fact]
    public Task IrqHandlerMethodGroupStartsInHardIrqContext() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            int handler(int irq, object? dev)
            {
                {|#0:msleep(1)|};
                return 1;
            }

            int probe() => {|#1:request_irq(17, handler, 0, "dev", this)|};
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task TimerAndTaskletCallbacksAreSoftIrq() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            timer_list t = new();
            tasklet_struct ts = new();
            void setup()
            {
                {|#1:timer_setup(t, timer => {|#0:msleep(1)|}, 0)|};
                {|#3:tasklet_init(ts, data => { var p = {|#2:vmalloc(100)|}; }, 0)|};
                void tick(timer_list timer) => {|#4:schedule()|};
                {|#5:timer_setup(t, tick, 0)|};
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1),
        Kmg("KMG0001").WithLocation(2).WithLocation(3),
        Kmg("KMG0001").WithLocation(4).WithLocation(5));

    [Fact]
    public Task WorkItemsAndPlainLambdasMaySleep() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            work_struct w = new();
            spinlock_t lk = new();
            void setup()
            {
                INIT_WORK(w, work => { msleep(10); var p = kmalloc(10, GFP_KERNEL); });
                spin_lock(lk);
                Action later = () => msleep(1);
                void helper() { msleep(1); }
                spin_unlock(lk);
                later();
                helper();
            }
        }
        """);

    [Fact]
    public Task LambdaHasItsOwnSectionState() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void setup()
            {
                Action a = () =>
                {
                    {|#1:spin_lock(lk)|};
                    {|#0:msleep(1)|};
                    spin_unlock(lk);
                };
                int local()
                {
                    {|#3:preempt_disable()|};
                    {|#2:msleep(1)|};
                    preempt_enable();
                    return 0;
                }
                a();
                local();
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1),
        Kmg("KMG0001").WithLocation(2).WithLocation(3));

    [Fact]
    public Task CallingALocalFunctionThatSleepsUnderLock() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                {|#1:spin_lock(lk)|};
                {|#0:wait()|};
                spin_unlock(lk);
                void wait() => {|#2:msleep(5)|};
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1).WithLocation(2)
            .WithMessage("msleep may sleep, but spin_lock(lk) at line 11 holds an atomic section: reached via f() → wait() → msleep"));
}
