using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>
/// A source helper that returns a trylock's result, without annotations: its callers hold the lock
/// where it returned true, named in their own terms.
/// </summary>
public class TrylockHelperTests
{
    [Fact]
    public Task LockIsHeldWhereTheHelperReturnedTrue() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            public spinlock_t lk = new();
        }

        static class Locks
        {
            public static bool try_lock_dev(Dev d) => spin_trylock(d.lk);
        }

        class User
        {
            void tested(Dev dev)
            {
                if ({|#1:Locks.try_lock_dev(dev)|})
                {
                    {|#0:msleep(1)|};
                    spin_unlock(dev.lk);
                }
                else
                {
                    msleep(2);
                }
                msleep(3);
            }

            int stored(Dev dev)
            {
                bool ok = {|#3:Locks.try_lock_dev(dev)|};
                if (!ok)
                {
                    msleep(1);
                    return -16;
                }
                {|#2:msleep(2)|};
                spin_unlock(dev.lk);
                return 0;
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1)
            .WithMessage("msleep may sleep, but try_lock_dev(dev) at line 20 holds an atomic section"),
        Kmg("KMG0001").WithLocation(2).WithLocation(3));

    [Fact]
    public Task HelperKeepingTheResultInALocalOrReturningFalseEarly() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool ready;

            bool try_lock()
            {
                if (!ready)
                    return false;
                bool ok = spin_trylock(lk);
                return ok;
            }

            void use()
            {
                if (!{|#1:try_lock()|})
                    return;
                {|#0:msleep(1)|};
                spin_unlock(lk);
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task HelperThroughAnotherHelper() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool inner() => spin_trylock(lk);
            bool outer() => inner();

            void use()
            {
                if ({|#1:outer()|})
                {
                    {|#0:schedule()|};
                    spin_unlock(lk);
                }
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task UnlockOnlyWhereTheHelperSucceededIsBalanced() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool try_lock() => spin_trylock(lk);

            int poll()
            {
                if (!try_lock())
                    return -11;
                spin_unlock(lk);
                return 0;
            }
        }
        """);

    [Fact]
    public Task ReturnPathWithoutUnlockIsReported() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;
            bool try_lock() => spin_trylock(lk);

            int poll()
            {
                if (!{|#1:try_lock()|})
                    return -11;
                if (busy)
                    {|#0:return -16;|}
                spin_unlock(lk);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1));

    [Fact]
    public Task HelperThatReturnsSomethingElseToo() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool fast;

            bool maybe_lock()
            {
                if (fast)
                    return true;
                return spin_trylock(lk);
            }

            void use()
            {
                if (maybe_lock())
                    msleep(1);
            }
        }
        """);

    [Fact]
    public Task HelperOnALockTheCallerCannotName() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            static bool try_lock(spinlock_t l) => spin_trylock(l);
            spinlock_t pick() => lk;

            void use()
            {
                if (try_lock(pick()))
                    msleep(1);
            }
        }
        """);

    [Fact]
    public Task HelperThatTakesTheLockAndReturnsTrue() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            public spinlock_t lk = new();
            public int users;

            public static bool get_dev(Dev d)
            {
                if (!spin_trylock(d.lk))
                    return false;
                d.users++;
                return true;
            }

            static void use(Dev dev)
            {
                if (!{|#1:get_dev(dev)|})
                {
                    msleep(1);
                    return;
                }
                {|#0:msleep(2)|};
                spin_unlock(dev.lk);
                msleep(3);
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task HelperThatTakesTheLockIsBalancedAndItsCallersAreChecked() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;

            bool get_dev()
            {
                if (!spin_trylock(lk))
                    return false;
                if (busy)
                {
                    spin_unlock(lk);
                    return false;
                }
                return true;
            }

            int poll()
            {
                if (!{|#1:get_dev()|})
                    return -11;
                if (busy)
                    {|#0:return -16;|}
                spin_unlock(lk);
                return 0;
            }
        }
        """, Kmg("KMG0004").WithLocation(0).WithLocation(1));

    [Fact]
    public Task ReturningTrueWithTheLockIsAnImbalanceWhenFalseHoldsItToo() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;

            bool always()
            {
                {|#1:spin_lock(lk)|};
                {|#0:return true;|}
            }

            bool sometimes()
            {
                {|#3:spin_lock(lk)|};
                if (busy)
                    {|#4:return false;|}
                {|#2:return true;|}
            }
        }
        """,
        Kmg("KMG0004").WithLocation(0).WithLocation(1),
        Kmg("KMG0004").WithLocation(2).WithLocation(3),
        Kmg("KMG0004").WithLocation(4).WithLocation(3));
}
