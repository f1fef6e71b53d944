using System.Threading.Tasks;
using Xunit;
using static KmemGuard.Analyzers.Tests.Verifier;

namespace KmemGuard.Analyzers.Tests;

/// <summary>
/// The compilation index binds the uses of a private member only inside its own type's declarations.
/// These are the places such a use can hide: the other part of a partial type, a nested type, and a
/// type of another name whose private member shares the name.
/// </summary>
public class PrivateMemberScopeTests
{
    [Fact]
    public Task HandlerRegisteredInAnotherPartOfItsType() => AnalyzeSourcesAsync<SleepInAtomicAnalyzer>(new[]
    {
        Prelude.Usings + """
        partial class Dev
        {
            private int handler(int irq, object? dev)
            {
                {|#0:msleep(1)|};
                return 1;
            }
        }
        """,
        Prelude.Usings + """
        partial class Dev
        {
            int probe() => {|#1:request_irq(17, handler, 0, "dev", this)|};
        }
        """,
    }, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task HandlerRegisteredFromANestedType() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Dev
        {
            private static int handler(int irq, object? dev)
            {
                {|#0:msleep(1)|};
                return 1;
            }

            class Setup
            {
                int probe() => {|#1:request_irq(17, handler, 0, "dev", null)|};
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task SameNamedPrivateHandlerOfAnotherTypeIsNotRegistered() => AnalyzeAsync<SleepInAtomicAnalyzer>("""
        class Registered
        {
            private int handler(int irq, object? dev)
            {
                {|#0:msleep(1)|};
                return 1;
            }

            int probe() => {|#1:request_irq(17, handler, 0, "dev", this)|};
        }

        class NeverRegistered
        {
            private int handler(int irq, object? dev)
            {
                msleep(1);
                return 1;
            }
        }
        """, Kmg("KMG0001").WithLocation(0).WithLocation(1));

    [Fact]
    public Task PrivateFieldsOfTheSameNameKeepTheirOwnOrigins() => AnalyzeSourcesAsync<MismatchedFreeAnalyzer>(new[]
    {
        Prelude.Usings + """
        class Ring
        {
            private KPtr buf;
            void probe() => buf = {|#1:vmalloc(4096)|};
            void remove() => {|#0:kfree(buf)|};
        }
        """,
        Prelude.Usings + """
        class Scratch
        {
            private KPtr buf;
            void probe() => buf = kmalloc(64, GFP_KERNEL);
            void remove() => kfree(buf);
        }
        """,
    }, IgnoreExtra(Kmg("KMG0002").WithLocation(0)));

    [Fact]
    public Task PrivateFieldAssignedInAnotherPart() => AnalyzeSourcesAsync<MismatchedFreeAnalyzer>(new[]
    {
        Prelude.Usings + """
        partial class Dev
        {
            private KPtr buf;
            void remove() => {|#0:kfree(buf)|};
        }
        """,
        Prelude.Usings + """
        partial class Dev
        {
            void probe() => buf = vmalloc(4096);
        }
        """,
    }, IgnoreExtra(Kmg("KMG0002").WithLocation(0)));
}
