using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

public class SleepInAtomicTests
{
    private static Microsoft.CodeAnalysis.Testing.DiagnosticResult Sleep(int location, int lockLocation) =>
        Kmg("KMG0001").WithLocation(location).WithLocation(lockLocation);

    [Fact]
    public Task KmallocWithGfpKernelUnderSpinlock() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void rx()
            {
                {|#1:spin_lock(lk)|};
                var p = {|#0:kmalloc(64, GFP_KERNEL)|};
                spin_unlock(lk);
                kfree(p);
            }
        }
        """,
        Sleep(0, 1).WithMessage("kmalloc with GFP_KERNEL may sleep, but spin_lock(lk) at line 11 holds an atomic section"));

    [Fact]
    public Task GfpAtomicAndCustomMaskWithoutReclaimAreClean() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void rx()
            {
                spin_lock(lk);
                var p = kmalloc(64, GFP_ATOMIC);
                var q = kmalloc(64, GFP_NOWAIT | __GFP_NOWARN);
                var r = kmalloc(64, __GFP_HIGH | __GFP_ZERO);
                mdelay(1); udelay(5);
                spin_unlock(lk);
                kfree(p); kfree(q); kfree(r);
            }
        }
        """);

    [Fact]
    public Task ModifiersKeepTheMaskSleeping() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void rx()
            {
                {|#1:spin_lock(lk)|};
                var a = {|#0:kmalloc(64, GFP_KERNEL | __GFP_NOWARN)|};
                var b = {|#2:kzalloc(64, GFP_NOFS)|};
                var c = {|#3:kmalloc(64, GFP_NOIO)|};
                spin_unlock(lk);
            }
        }
        """, Sleep(0, 1), Sleep(2, 1), Sleep(3, 1));

    [Fact]
    public Task SleepingPrimitivesUnderEachAtomicSection() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            mutex m = new();
            void f(byte[] user)
            {
                {|#1:spin_lock_irqsave(lk, out ulong flags)|};
                {|#0:msleep(10)|};
                spin_unlock_irqrestore(lk, flags);
                {|#3:preempt_disable()|};
                {|#2:vmalloc(4096)|};
                preempt_enable();
                {|#5:rcu_read_lock()|};
                {|#4:mutex_lock(m)|};
                mutex_unlock(m);
                rcu_read_unlock();
                {|#7:local_irq_disable()|};
                {|#6:copy_from_user(default, user, 4)|};
                local_irq_enable();
            }
        }
        """, Sleep(0, 1), Sleep(2, 3), Sleep(4, 5), Sleep(6, 7));

    [Fact]
    public Task MutexIsNotAtomicAndCodeAfterUnlockIsClean() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            mutex m = new();
            void f()
            {
                mutex_lock(m);
                msleep(1);
                var p = kmalloc(64, GFP_KERNEL);
                mutex_unlock(m);
                spin_lock(lk);
                spin_unlock(lk);
                msleep(1);
                kfree(p);
            }
        }
        """);

    [Fact]
    public Task UnlockSleepRelockIsClean() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f(bool again)
            {
                spin_lock(lk);
                while (again)
                {
                    spin_unlock(lk);
                    msleep(1);
                    spin_lock(lk);
                    again = false;
                }
                spin_unlock(lk);
            }
        }
        """);

    [Fact]
    public Task SleepOnOneBranchUnderLockHeldOnEveryPath() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f(bool slow, int n)
            {
                {|#1:spin_lock(lk)|};
                if (slow)
                    {|#0:msleep(1)|};
                else
                    udelay(1);
                for (int i = 0; i < n; i++)
                {
                    if (i == 3)
                        {|#2:schedule()|};
                }
                spin_unlock(lk);
            }
        }
        """, Sleep(0, 1), Sleep(2, 1));

    [Fact]
    public Task LockTakenOnOnlyOnePathIsNotReported() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f(bool locked)
            {
                if (locked)
                    spin_lock(lk);
                msleep(1);
                if (locked)
                    spin_unlock(lk);
            }
        }
        """);

    [Fact]
    public Task TrylockHoldsOnlyOnTheSuccessBranch() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int f()
            {
                if ({|#1:spin_trylock(lk)|})
                {
                    {|#0:msleep(1)|};
                    spin_unlock(lk);
                }
                else
                {
                    msleep(1);
                }
                if (!{|#3:spin_trylock(lk)|})
                {
                    msleep(2);
                    return -16;
                }
                {|#2:msleep(3)|};
                spin_unlock(lk);
                return 0;
            }
        }
        """, Sleep(0, 1), Sleep(2, 3));

    [Fact]
    public Task TryFinallyReleasesBeforeLaterSleep() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void f(int n)
            {
                {|#1:spin_lock(lk)|};
                try
                {
                    if (n > 0)
                        return;
                    {|#0:usleep_range(10, 20)|};
                }
                finally
                {
                    spin_unlock(lk);
                }
                msleep(1);
            }
        }
        """, Sleep(0, 1));

    [Fact]
    public Task EarlyReturnUnderLockLeavesLaterCodeClean() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            int f(int n)
            {
                spin_lock(lk);
                if (n < 0)
                {
                    spin_unlock(lk);
                    msleep(1);
                    return -1;
                }
                spin_unlock(lk);
                msleep(1);
                return 0;
            }
        }
        """);
}
