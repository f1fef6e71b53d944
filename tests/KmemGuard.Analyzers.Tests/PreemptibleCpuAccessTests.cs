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
}
