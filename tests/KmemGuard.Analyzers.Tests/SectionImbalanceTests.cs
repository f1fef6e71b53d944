using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

public class SectionImbalanceTests
{
    [Fact]
    public Task LockNotReleasedOnEarlyReturn() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int f(int n)
            {
                {|#1:spin_lock(lk)|};
                if (n < 0)
                    {|#0:return -22;|}
                spin_unlock(lk);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1)
            .WithMessage("spin_lock(lk) at line 11 is still held when f() returns here: call spin_unlock(lk) first"));

    [Fact]
    public Task BalancedOnEveryPathIsClean() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            mutex m = new();
            int f(int n)
            {
                spin_lock_irqsave(lk, out ulong flags);
                if (n < 0)
                {
                    spin_unlock_irqrestore(lk, flags);
                    return -22;
                }
                spin_unlock_irqrestore(lk, flags);
                mutex_lock(m);
                try
                {
                    if (n == 0)
                        return 1;
                }
                finally
                {
                    mutex_unlock(m);
                }
                for (int i = 0; i < n; i++)
                {
                    int cpu = get_cpu();
                    put_cpu();
                }
                if (spin_trylock(lk))
                    spin_unlock(lk);
                rcu_read_lock();
                rcu_read_unlock();
                return 0;
            }
        }
        """);

    /// <summary>An expression body has no return statement or closing brace: the report points at its expression.</summary>
    [Fact]
    public Task ExpressionBodyIsReportedAtItsExpression() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            int a() => {|#0:get_cpu()|};
        }
        """,
        Kmg("KMG0004").WithLocation(0).WithLocation(0).WithMessage("get_cpu() at line 8 is still held when a() returns here: call put_cpu() first"));

    [Fact]
    public Task EachKindAtTheEndOfTheMethod() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            mutex m = new();
            void a()
            {
                int cpu = {|#1:get_cpu()|};
            {|#0:}|}
            void b()
            {
                {|#3:preempt_disable()|};
            {|#2:}|}
            void c()
            {
                {|#5:rcu_read_lock()|};
            {|#4:}|}
            void d(bool x)
            {
                {|#7:mutex_lock(m)|};
                if (x)
                    mutex_unlock(m);
            {|#6:}|}
        }
        """,
        Kmg("KMG0004").WithLocation(0).WithLocation(1).WithMessage("get_cpu() at line 11 is still held when a() returns here: call put_cpu() first"),
        Kmg("KMG0004").WithLocation(2).WithLocation(3),
        Kmg("KMG0004").WithLocation(4).WithLocation(5),
        Kmg("KMG0004").WithLocation(6).WithLocation(7));

    [Fact]
    public Task ReleaseOnOnlySomePaths() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            void f(bool x)
            {
                if (x)
                    {|#1:preempt_disable()|};
                {|#0:preempt_enable()|};
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1));

    [Fact]
    public Task AnnotatedHelpersMayReturnHoldingTheLock() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            [EntersSection(SectionKind.Spinlock, LockParameter = "d")]
            static void lock_dev(Dev d) => spin_lock(d.lk);
            [LeavesSection(SectionKind.Spinlock, LockParameter = "d")]
            static void unlock_dev(Dev d) => spin_unlock(d.lk);
            static void release_only(Dev d) => spin_unlock(d.lk);

            void f()
            {
                lock_dev(this);
                unlock_dev(this);
                spin_lock(lk);
                release_only(this);
            }
        }
        """);

    [Fact]
    public Task UnannotatedHelperThatReturnsHoldingIsReportedInsideAndBalancesTheCaller() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            static void grab(Dev d)
            {
                {|#1:spin_lock(d.lk)|};
            {|#0:}|}

            void f()
            {
                grab(this);
                spin_unlock(lk);
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1));

    [Fact]
    public Task LambdasAreTheirOwnBodies() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f()
            {
                Action a = () =>
                {
                    {|#1:spin_lock(lk)|};
                {|#0:}|};
                spin_lock(lk);
                a();
                spin_unlock(lk);
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1));
}
