using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>
/// A bool local that tells the paths apart: set to a constant where a lock is taken and another where it
/// is not (<c>bool locked = false; if (c) { spin_lock(lk); locked = true; } ... if (locked) spin_unlock(lk);</c>),
/// or the result of a trylock combined with another condition before it is stored.
/// </summary>
public class ConditionalLockTests
{
    [Fact]
    public Task FlagSetWhereTheLockIsTakenBalances() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;
            int count;
            int f()
            {
                bool locked = false;
                if (busy)
                {
                    spin_lock(lk);
                    locked = true;
                }

                count++;
                if (locked)
                    spin_unlock(lk);
                return 0;
            }

            int g()
            {
                var locked = true;
                if (!busy)
                    locked = false;
                else
                    spin_lock(lk);
                if (!locked)
                    return 1;
                spin_unlock(lk);
                return 0;
            }
        }
        """);

    [Fact]
    public Task SleepWhereTheFlagSaysTheLockIsHeld() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;
            void f()
            {
                bool locked = false;
                if (busy)
                {
                    {|#1:spin_lock(lk)|};
                    locked = true;
                }

                msleep(1);
                if (locked)
                {
                    {|#0:msleep(2)|};
                    spin_unlock(lk);
                }
                else
                {
                    msleep(3);
                }
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1));

    /// <summary>A loop that takes the lock once and says so in a flag: the flag's facts reach a fixpoint at the loop's head.</summary>
    [Fact]
    public Task LockTakenOnceInALoopBalances() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int f(int n)
            {
                bool held = false;
                for (int i = 0; i < n; i++)
                {
                    if (!held)
                    {
                        spin_lock(lk);
                        held = true;
                    }
                }

                if (held)
                    spin_unlock(lk);
                return 0;
            }
        }
        """);

    /// <summary>The flag is what it was on the path it came from only until the lock changes: after that it says nothing.</summary>
    [Fact]
    public Task FlagSaysNothingOnceTheLockChanged() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;
            int f()
            {
                bool locked = false;
                if (busy)
                {
                    {|#1:spin_lock(lk)|};
                    locked = true;
                }

                if (busy)
                    {|#2:spin_unlock(lk)|};
                if (locked)
                    {|#0:spin_unlock(lk)|};
                {|#3:return 0;|}
            }
        }
        """,
        Kmg("KMG0004").WithLocation(2).WithLocation(1),
        Kmg("KMG0004").WithLocation(0).WithLocation(1),
        Kmg("KMG0004").WithLocation(3).WithLocation(1));

    /// <summary>A flag never set where the lock is taken cannot release it: the lock leaks.</summary>
    [Fact]
    public Task FlagNeverSetLeaksTheLock() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool busy;
            int f()
            {
                bool locked = false;
                if (busy)
                    {|#1:spin_lock(lk)|};
                if (locked)
                    spin_unlock(lk);
                {|#0:return 0;|}
            }
        }
        """,
        Kmg("KMG0004").WithLocation(0).WithLocation(1));

    /// <summary>A flag that a lambda can set is not taken as the constant it was last assigned.</summary>
    [Fact]
    public Task FlagALambdaCanSetIsNotFollowed() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        using System;
        class Dev
        {
            spinlock_t lk = new();
            bool busy;
            Action? later;
            int f()
            {
                bool locked = false;
                later = () => locked = true;
                if (busy)
                {
                    {|#1:spin_lock(lk)|};
                    locked = true;
                }

                if (locked)
                    {|#0:spin_unlock(lk)|};
                {|#2:return 0;|}
            }
        }
        """,
        Kmg("KMG0004").WithLocation(0).WithLocation(1),
        Kmg("KMG0004").WithLocation(2).WithLocation(1));

    /// <summary>The other order was followed before narrowings: a guard that they leave it so.</summary>
    [Fact]
    public Task OtherConditionFirstThenTrylockBalances() => AnalyzeAsync<SectionImbalanceAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            bool ready;
            int f()
            {
                bool ok = ready && spin_trylock(lk);
                if (!ok)
                    return -16;
                spin_unlock(lk);
                return 0;
            }
        }
        """);
}
