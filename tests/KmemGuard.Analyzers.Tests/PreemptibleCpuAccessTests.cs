using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

public class PreemptibleCpuAccessTests
{
    [Fact]
    public Task SmpProcessorIdWhilePreemptible() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            int[] counts = new int[4];
            void f() => counts[{|#0:smp_processor_id()|}]++;
        }
        """, Kmg("KMG0003").WithLocation(0).WithMessage(
            "smp_processor_id() needs preemption disabled, but f() can be preempted and migrated to another CPU here: use get_cpu()/put_cpu(), preempt_disable()/preempt_enable() or per_cpu(v, cpu) with an explicit CPU"));

    [Fact]
    public Task CleanUnderEveryProtection() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            int[] counts = new int[4];
            spinlock_t lk = new();
            void f()
            {
                int cpu = get_cpu();
                counts[smp_processor_id()]++;
                put_cpu();
                preempt_disable();
                counts[smp_processor_id()]++;
                preempt_enable();
                spin_lock(lk);
                counts[smp_processor_id()]++;
                spin_unlock(lk);
                local_irq_disable();
                counts[smp_processor_id()]++;
                local_irq_enable();
                counts[per_cpu(counts, 2)]++;
            }
        }
        """);

    [Fact]
    public Task AfterPutCpuAndUnderRcuOnlyItIsPreemptible() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            void f()
            {
                int cpu = get_cpu();
                put_cpu();
                int again = {|#0:smp_processor_id()|};
                rcu_read_lock();
                int inside = {|#1:smp_processor_id()|};
                rcu_read_unlock();
            }
        }
        """, Kmg("KMG0003").WithLocation(0), Kmg("KMG0003").WithLocation(1));

    [Fact]
    public Task CallbacksAndAnnotatedHelpersAreNotPreemptible() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            timer_list t = new();
            [RequiresPreemptionDisabled]
            static int this_cpu_slot() => smp_processor_id() * 2;

            int handler(int irq, object? dev) => smp_processor_id();

            void f()
            {
                request_irq(3, handler, 0, "d", null);
                timer_setup(t, timer => smp_processor_id(), 0);
                preempt_disable();
                this_cpu_slot();
                preempt_enable();
                {|#0:this_cpu_slot()|};
                INIT_WORK(new work_struct(), w => {|#1:smp_processor_id()|});
            }
        }
        """, Kmg("KMG0003").WithLocation(0), Kmg("KMG0003").WithLocation(1));

    private const string Advice = ": use get_cpu()/put_cpu(), preempt_disable()/preempt_enable() or per_cpu(v, cpu) with an explicit CPU";

    [Fact]
    public Task HelperIsReportedAtItsPreemptibleCallers() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            int[] counts = new int[4];
            int slot() => {|#2:smp_processor_id()|} * 2;
            int outer() => slot() + 1;

            void pinned()
            {
                preempt_disable();
                counts[slot()]++;
                counts[outer()]++;
                preempt_enable();
                int cpu = get_cpu();
                counts[outer()] += cpu;
                put_cpu();
            }

            void preemptible()
            {
                counts[{|#0:slot()|}]++;
                counts[{|#1:outer()|}]++;
            }
        }
        """,
        Kmg("KMG0003").WithLocation(0).WithLocation(2).WithMessage(
            "smp_processor_id() needs preemption disabled, but preemptible() can be preempted and migrated to another CPU here (reached via preemptible() → slot() → smp_processor_id)" + Advice),
        Kmg("KMG0003").WithLocation(1).WithLocation(2).WithMessage(
            "smp_processor_id() needs preemption disabled, but preemptible() can be preempted and migrated to another CPU here (reached via preemptible() → outer() → slot() → smp_processor_id)" + Advice));

    [Fact]
    public Task HelpersOnlyCalledPinnedAreClean() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        class Dev
        {
            int[] counts = new int[4];
            spinlock_t lk = new();
            int slot() => smp_processor_id() * 2;
            void bump() => counts[slot()]++;

            void f()
            {
                spin_lock(lk);
                bump();
                spin_unlock(lk);
                local_irq_disable();
                counts[slot()]++;
                local_irq_enable();
            }
        }
        """);

    [Fact]
    public Task PublicApiAndUncalledMethodsAreReportedInside() => AnalyzeAsync<PreemptibleCpuAccessAnalyzer>("""
        public class Stats
        {
            static int[] counts = new int[4];
            public static int slot() => {|#0:smp_processor_id()|};
            public static void use() => counts[slot()]++;
            protected int forDerived() => {|#1:smp_processor_id()|};
            static int orphan() => {|#2:smp_processor_id()|};
            int viaForDerived() => forDerived();
            static int walk(int n) => n > 0 ? walk(n - 1) : {|#5:smp_processor_id()|};

            void local()
            {
                counts[{|#3:next()|}]++;
                int next() => {|#4:smp_processor_id()|};
            }
        }
        """,
        Kmg("KMG0003").WithLocation(0), Kmg("KMG0003").WithLocation(1), Kmg("KMG0003").WithLocation(2), Kmg("KMG0003").WithLocation(5),
        Kmg("KMG0003").WithLocation(3).WithLocation(4).WithMessage(
            "smp_processor_id() needs preemption disabled, but local() can be preempted and migrated to another CPU here (reached via local() → next() → smp_processor_id)" + Advice));
}
