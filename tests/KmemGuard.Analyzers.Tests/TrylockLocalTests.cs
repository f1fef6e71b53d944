using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>A trylock's result stored in a bool local or field: the lock is held only where it is true.</summary>
public class TrylockLocalTests
{
    private static Microsoft.CodeAnalysis.Testing.DiagnosticResult Sleep(int call, int lk) =>
        Kmg("KMG0001").WithLocation(call).WithLocation(lk);

    [Fact]
    public Task SleepIsReportedOnlyWhereTheLocalIsTrue() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int early()
            {
                bool ok = {|#1:spin_trylock(lk)|};
                if (!ok)
                {
                    msleep(1);
                    return -16;
                }
                {|#0:msleep(2)|};
                spin_unlock(lk);
                msleep(3);
                return 0;
            }

            void branch()
            {
                bool ok = {|#3:spin_trylock(lk)|};
                if (ok)
                {
                    {|#2:msleep(1)|};
                    spin_unlock(lk);
                }
                else
                {
                    msleep(2);
                }
            }

            void comparedWithFalse()
            {
                bool ok = {|#5:spin_trylock(lk)|};
                if (ok == false)
                {
                    msleep(1);
                    return;
                }
                {|#4:msleep(2)|};
                spin_unlock(lk);
                ok = {|#9:spin_trylock(lk)|};
                if (ok is false)
                    return;
                {|#8:msleep(3)|};
                spin_unlock(lk);
            }

            void conjunction(bool busy)
            {
                bool ok = {|#7:spin_trylock(lk)|};
                if (ok && busy)
                    {|#6:msleep(1)|};
                if (!ok)
                    msleep(2);
                if (ok)
                    spin_unlock(lk);
            }
        }
        """, Sleep(0, 1), Sleep(2, 3), Sleep(4, 5), Sleep(6, 7), Sleep(8, 9));

    [Fact]
    public Task ReassignedLocalNoLongerSaysTheLockIsHeld() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            spinlock_t other = new();
            void reassigned(bool idle)
            {
                bool ok = spin_trylock(lk);
                ok = idle;
                if (ok)
                    msleep(1);
            }

            void retaken()
            {
                bool ok = spin_trylock(lk);
                if (ok)
                    spin_unlock(lk);
                ok = {|#1:spin_trylock(other)|};
                if (ok)
                {
                    {|#0:msleep(1)|};
                    spin_unlock(other);
                }
            }
        }
        """, Sleep(0, 1));

    [Fact]
    public Task AnnotatedWrapperStoredInALocal() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            [EntersSectionIfTrue(SectionKind.Spinlock, LockParameter = "d")]
            static bool dev_trylock(Dev d) => spin_trylock(d.lk);

            void f()
            {
                bool locked = {|#1:dev_trylock(this)|};
                if (!locked)
                    return;
                {|#0:msleep(1)|};
                spin_unlock(lk);
            }
        }
        """, Sleep(0, 1));

    [Fact]
    public Task FailedBranchIsNotAnImbalance() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int early()
            {
                bool ok = spin_trylock(lk);
                if (!ok)
                    return -16;
                udelay(1);
                spin_unlock(lk);
                return 0;
            }

            void testedTwice(int n)
            {
                bool ok = spin_trylock(lk);
                if (ok)
                    udelay(1);
                n++;
                if (ok)
                    spin_unlock(lk);
            }

            int forgotten(int n)
            {
                bool ok = {|#1:spin_trylock(lk)|};
                if (!ok)
                    return -16;
                if (n < 0)
                    {|#0:return -22;|}
                spin_unlock(lk);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1)
            .WithMessage("spin_trylock(lk) at line 31 is still held when forgotten() returns here: call spin_unlock(lk) first"));

    [Fact]
    public Task AssignedInsideTheCondition() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool held;
            int early()
            {
                bool ok;
                if (!(ok = {|#1:spin_trylock(lk)|}))
                {
                    msleep(1);
                    return -16;
                }
                {|#0:msleep(2)|};
                spin_unlock(lk);
                msleep(3);
                return 0;
            }

            void comparedAndField()
            {
                bool ok;
                if ((ok = {|#3:spin_trylock(lk)|}) == true)
                {
                    {|#2:msleep(1)|};
                    spin_unlock(lk);
                }
                if (held = {|#5:spin_trylock(lk)|})
                {
                    {|#4:msleep(2)|};
                    spin_unlock(lk);
                }
                msleep(3);
            }
        }
        """, Sleep(0, 1), Sleep(2, 3), Sleep(4, 5));

    [Fact]
    public Task AssignedInsideTheConditionBalances() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int early()
            {
                bool ok;
                if (!(ok = spin_trylock(lk)))
                    return -16;
                udelay(1);
                spin_unlock(lk);
                return 0;
            }

            void testedAgain(int n)
            {
                bool ok;
                if ((ok = spin_trylock(lk)) == false)
                    udelay(1);
                n++;
                if (ok)
                    spin_unlock(lk);
            }

            int forgotten(int n)
            {
                bool ok;
                if (!(ok = {|#1:spin_trylock(lk)|}))
                    return -16;
                if (n < 0)
                    {|#0:return -22;|}
                spin_unlock(lk);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1)
            .WithMessage("spin_trylock(lk) at line 32 is still held when forgotten() returns here: call spin_unlock(lk) first"));

    [Fact]
    public Task MutexTrylockOfTheRuntime() => AnalyzeKernelAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            mutex m = new();
            int f(int n)
            {
                bool ok = {|#1:mutex_trylock(m)|};
                if (ok == false)
                    return -16;
                if (n < 0)
                    {|#0:return -22;|}
                mutex_unlock(m);
                return 0;
            }

            int g()
            {
                bool ok = mutex_trylock(m);
                if (!ok)
                    return -16;
                mutex_unlock(m);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1));

    [Fact]
    public Task KeptInAFieldAndTestedLater() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            public spinlock_t lk = new();
            public bool held;

            int own()
            {
                if (!(held = {|#1:spin_trylock(lk)|}))
                {
                    msleep(1);
                    return -16;
                }
                {|#0:msleep(2)|};
                if (held)
                    spin_unlock(lk);
                msleep(3);
                return 0;
            }

            static void other(Dev d)
            {
                d.held = {|#3:spin_trylock(d.lk)|};
                if (d.held)
                {
                    {|#2:msleep(1)|};
                    spin_unlock(d.lk);
                }
                msleep(2);
            }
        }
        """, Sleep(0, 1), Sleep(2, 3));

    [Fact]
    public Task FieldTrylockBalancesAndIsForgottenWithItsObject() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            public spinlock_t lk = new();
            public bool held;

            void testedAgain(int n)
            {
                if (!(held = spin_trylock(lk)))
                    udelay(1);
                n++;
                if (held)
                    spin_unlock(lk);
            }

            static void reassigned(Dev dev, Dev next)
            {
                dev.held = spin_trylock(dev.lk);
                dev = next;
                if (dev.held)
                    udelay(1);
            }
        }
        """);

    /// <summary>
    /// <c>ok = spin_trylock(lk) &amp;&amp; ready</c> is false also where the lock was taken and ready is
    /// false: the early return leaks it there, and that return is reported. Where ok is true the lock
    /// is held, so the unlock there is clean.
    /// </summary>
    [Fact]
    public Task CombinedResultLeaksTheLockWhenTheOtherPartIsFalse() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool ready;
            int f()
            {
                bool ok = {|#1:spin_trylock(lk)|} && ready;
                if (!ok)
                    {|#0:return -16;|}
                spin_unlock(lk);
                return 0;
            }
        }
        """,
        Kmg("KMG0004").WithLocation(0).WithLocation(1));
}
