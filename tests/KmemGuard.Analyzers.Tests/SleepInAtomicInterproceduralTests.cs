using System.Linq;
using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>KMG0001 through source methods: chains, GFP passed down, delegates, ops tables, virtual calls.</summary>
public class SleepInAtomicInterproceduralTests
{
    [Fact]
    public Task ChainOfTwoShowsThePath() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            KPtr buf;
            void rx()
            {
                {|#1:spin_lock(lk)|};
                {|#0:refill()|};
                spin_unlock(lk);
            }

            void refill() => buf = {|#2:kmalloc(128, GFP_KERNEL)|};
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1).WithLocation(2)
            .WithMessage("kmalloc with GFP_KERNEL may sleep, but spin_lock(lk) at line 12 holds an atomic section: reached via rx() → refill() → kmalloc"));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public Task ChainsOneToSixDeep(int depth)
    {
        var helpers = new System.Text.StringBuilder();
        for (int i = 1; i < depth; i++)
            helpers.AppendLine($"    static void level{i}() => level{i + 1}();");
        helpers.AppendLine($"    static void level{depth}() {{ {{|#2:msleep(1)|}}; }}");
        string chain = string.Concat(Enumerable.Range(1, depth).Select(i => $"level{i}() → "));
        return AnalyzeAsync<SleepInAtomicAnalyzer>($$"""
            class Dev
            {
                static spinlock_t lk = new();
                static void top()
                {
                    {|#1:spin_lock(lk)|};
                    {|#0:level1()|};
                    spin_unlock(lk);
                }
            {{helpers}}
            }
            """,
            Kmg("KMG0001").WithLocation(0).WithLocation(1).WithLocation(2)
                .WithMessage($"msleep may sleep, but spin_lock(lk) at line 11 holds an atomic section: reached via top() → {chain}msleep"));
    }

    [Fact]
    public Task GfpPassedDownDecidesAtEachCallSite() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            KPtr alloc_buf(int n, gfp_t gfp) => kmalloc(n, gfp);
            KPtr alloc_twice(gfp_t flags) => alloc_buf(64, flags);

            void f()
            {
                spin_lock(lk);
                var a = alloc_buf(64, GFP_ATOMIC);
                var b = alloc_twice(GFP_ATOMIC | __GFP_NOWARN);
                spin_unlock(lk);
                var c = alloc_buf(64, GFP_KERNEL);
                {|#1:spin_lock(lk)|};
                var d = {|#0:alloc_twice(GFP_KERNEL)|};
                spin_unlock(lk);
            }
        }
        """, IgnoreExtra(Kmg("KMG0001").WithLocation(0).WithLocation(1))
            .WithMessage("kmalloc with GFP_KERNEL may sleep, but spin_lock(lk) at line 19 holds an atomic section: reached via f() → alloc_twice() → alloc_buf() → kmalloc"));

    [Fact]
    public Task HelperThatReturnsHoldingALockMakesTheCallerAtomic() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            [EntersSection(SectionKind.Spinlock, LockParameter = "d")]
            static void lock_dev(Dev d) => spin_lock(d.lk);
            [LeavesSection(SectionKind.Spinlock, LockParameter = "d")]
            static void unlock_dev(Dev d) => spin_unlock(d.lk);
            static void grab(Dev d) => spin_lock(d.lk);
            static void drop(Dev d) => spin_unlock(d.lk);

            void f()
            {
                {|#1:lock_dev(this)|};
                {|#0:msleep(1)|};
                unlock_dev(this);
                msleep(1);
                {|#3:grab(this)|};
                {|#2:msleep(1)|};
                drop(this);
                msleep(1);
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1),
        Kmg("KMG0001").WithLocation(2).WithLocation(3));

    [Fact]
    public Task OpsTableTargetsAndInterfaceImplementationsAreFollowed() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Ops
        {
            public Action<int>? start;
            public Action<int>? stop;
        }

        interface IChannel { void Flush(); }
        class SlowChannel : IChannel { public void Flush() => msleep(10); }
        class FastChannel : IChannel { public void Flush() => udelay(1); }

        abstract class Base { public abstract void Poll(); }
        class Derived : Base { public override void Poll() => schedule(); }

        class Dev
        {
            static readonly Ops ops = new Ops { start = dev_start, stop = dev_stop };
            spinlock_t lk = new();
            static void dev_start(int n) { var p = kmalloc(n, GFP_KERNEL); }
            static void dev_stop(int n) { }

            void f(IChannel ch, Base b)
            {
                {|#1:spin_lock(lk)|};
                {|#0:ops.start!(1)|};
                ops.stop!(1);
                {|#2:ch.Flush()|};
                {|#3:b.Poll()|};
                spin_unlock(lk);
            }
        }
        """,
        IgnoreExtra(Kmg("KMG0001").WithLocation(0).WithLocation(1)),
        IgnoreExtra(Kmg("KMG0001").WithLocation(2)),
        IgnoreExtra(Kmg("KMG0001").WithLocation(3)));

    [Fact]
    public Task LambdasStoredInOpsTablesAreFollowed() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Ops
        {
            public Action<Dev>? rx;
            public Action<Dev>? tx;
            public Func<Dev, int>? poll;
            public Action<Dev>? stop;
        }

        class Dev
        {
            static readonly Ops ops = new Ops();
            Action<Dev> reset = d => { var p = {|#4:kmalloc(8, GFP_KERNEL)|}; };
            Action<Dev> quiet = d => udelay(1);
            spinlock_t lk = new();

            static void setup()
            {
                ops.rx = (d) => { var p = {|#2:kmalloc(64, GFP_KERNEL)|}; };
                ops.tx = d => kmalloc(64, GFP_ATOMIC);
                install();
                Action later = () => ops.stop = d => {|#8:schedule()|};

                void install() => ops.poll = delegate (Dev d) { {|#6:msleep(1)|}; return 0; };
            }

            void f()
            {
                {|#1:spin_lock(lk)|};
                {|#0:ops.rx!(this)|};
                ops.tx!(this);
                {|#3:reset(this)|};
                quiet(this);
                {|#5:ops.poll!(this)|};
                {|#7:ops.stop!(this)|};
                spin_unlock(lk);
                ops.rx!(this);
            }
        }
        """,
        Kmg("KMG0001").WithLocation(0).WithLocation(1).WithLocation(2)
            .WithMessage("kmalloc with GFP_KERNEL may sleep, but spin_lock(lk) at line 33 holds an atomic section: reached via f() → lambda at line 23 → kmalloc"),
        Kmg("KMG0001").WithLocation(3).WithLocation(1).WithLocation(4),
        Kmg("KMG0001").WithLocation(5).WithLocation(1).WithLocation(6),
        Kmg("KMG0001").WithLocation(7).WithLocation(1).WithLocation(8));

    [Fact]
    public Task RecursionTerminates() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            spinlock_t lk = new();
            void a(int n) { if (n > 0) b(n - 1); }
            void b(int n) { if (n > 0) a(n - 1); else msleep(1); }
            void c(int n) { if (n > 0) c(n - 1); }
            void f()
            {
                {|#1:spin_lock(lk)|};
                {|#0:a(3)|};
                c(3);
                spin_unlock(lk);
            }
        }
        """, IgnoreExtra(Kmg("KMG0001").WithLocation(0).WithLocation(1)));

    [Fact]
    public Task CalleeInAnotherFile() => AnalyzeSourcesAsync<SleepInAtomicAnalyzer>(new[]
    {
        Prelude.Usings + """
        partial class Dev
        {
            spinlock_t lk = new();
            void rx()
            {
                {|#1:spin_lock(lk)|};
                {|#0:Helpers.refill(this)|};
                spin_unlock(lk);
            }
        }
        """,
        Prelude.Usings + """
        static class Helpers
        {
            public static void refill(Dev d) => {|#2:copy_from_user(default, new byte[4], 4)|};
        }
        """,
    }, Kmg("KMG0001").WithLocation(0).WithLocation(1).WithLocation(2));
}
