using System;
using KmemGuard;
using Xunit;

namespace KmemGuard.Runtime.Tests;

public class StrideDivisorTests
{
    [Fact]
    public void Divides_exactly_for_every_stride_and_the_offsets_around_each_multiple()
    {
        var random = new Random(1234);
        for (uint d = 2; d <= 70_000; d++)
        {
            var divisor = new StrideDivisor(d);
            foreach (uint k in new uint[] { 0, 1, 2, 3, 7, 100, 4096, (4u << 20) / d, uint.MaxValue / d })
            {
                ulong multiple = (ulong)k * d;
                for (long n = (long)multiple - 1; n <= (long)multiple + 1; n++)
                    if (n >= 0 && n <= uint.MaxValue) Assert.Equal((uint)n / d, divisor.Divide((uint)n));
            }
            uint any = (uint)random.NextInt64(0, (long)uint.MaxValue + 1);
            Assert.Equal(any / d, divisor.Divide(any));
        }
    }

    [Fact]
    public void A_stride_below_two_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StrideDivisor(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StrideDivisor(1));
    }
}
