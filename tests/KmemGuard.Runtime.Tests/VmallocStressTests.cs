using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using KmemGuard;
using Xunit;
using static KmemGuard.Kernel;

namespace KmemGuard.Runtime.Tests;

public class VmallocStressTests
{
    private sealed class Held
    {
        public KPtr Addr;
        public int Size;
        public byte Seed;
    }

    private static void Fill(Held h)
    {
        Span<byte> bytes = h.Addr.AsSpan(h.Size);
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(h.Seed + i * 31);
    }

    private static bool Verify(Held h)
    {
        ReadOnlySpan<byte> bytes = h.Addr.AsSpan(h.Size);
        for (int i = 0; i < bytes.Length; i++)
            if (bytes[i] != (byte)(h.Seed + i * 31)) return false;
        return h.Addr[0] == h.Seed && h.Addr[h.Size - 1] == (byte)(h.Seed + (h.Size - 1) * 31);
    }

    [Fact]
    public void Four_threads_vmalloc_write_verify_and_vfree_and_every_page_comes_back()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 4 });
        long freeAtStart = m.PageAllocator.FreePages;
        var remaining = new List<Held>[4];
        int corrupt = 0;
        using var start = new Barrier(4);
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var rng = new Random(1000 + t);
            var held = new List<Held>();
            start.SignalAndWait();
            for (int op = 0; op < 1000; op++)
            {
                int choice = rng.Next(10);
                if (choice < 4 || held.Count == 0)
                {
                    int size = 1 + rng.Next(5 * PAGE_SIZE);
                    KPtr v = rng.Next(2) == 0 ? vmalloc(size) : vzalloc(size);
                    Assert.False(v.IsNull);
                    var h = new Held { Addr = v, Size = size, Seed = (byte)rng.Next(256) };
                    Fill(h);
                    held.Add(h);
                }
                else if (choice < 7)
                {
                    if (!Verify(held[rng.Next(held.Count)])) Interlocked.Increment(ref corrupt);
                }
                else
                {
                    int i = rng.Next(held.Count);
                    if (!Verify(held[i])) Interlocked.Increment(ref corrupt);
                    vfree(held[i].Addr);
                    held.RemoveAt(i);
                }
            }
            remaining[t] = held;
        })).ToArray();
        foreach (Thread th in threads) th.Start();
        foreach (Thread th in threads) th.Join();

        Assert.Equal(0, corrupt);
        Held[] live = remaining.SelectMany(h => h).ToArray();
        long heldPages = live.Sum(h => (h.Size + PAGE_SIZE - 1) / PAGE_SIZE);
        Assert.Equal(freeAtStart, m.PageAllocator.FreePages + heldPages);
        Assert.Equal(live.Length, m.Vmalloc.Space.LiveCount);
        Assert.Equal(live.Length, m.RenderVmallocinfo().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(heldPages, m.RenderVmallocinfo().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Sum(line => long.Parse(line.Split(" pages=")[1].Split(' ')[0])));
        Assert.Empty(m.Reports);

        foreach (Held h in live)
        {
            Assert.True(Verify(h));
            vfree(h.Addr);
        }
        Assert.Equal(freeAtStart, m.PageAllocator.FreePages);
        Assert.Equal(0, m.Vmalloc.Space.LiveCount);
        Assert.Equal(1, m.Vmalloc.Space.FreeRangeCount);
        Assert.Equal("", m.RenderVmallocinfo());
    }

    private sealed class Scratch : IMmioDevice
    {
        private readonly ulong[] _words = new ulong[512];

        public ulong Read(ulong offset, int size) => _words[offset / 8];

        public void Write(ulong offset, int size, ulong value) => _words[offset / 8] = value;
    }

    [Fact]
    public void Four_threads_mix_per_cpu_allocations_and_ioremap_and_everything_is_given_back()
    {
        using Machine m = Machine.Boot(new MachineOptions { MemoryBytes = 64L << 20, Cpus = 4 });
        for (int d = 0; d < 4; d++) m.MapDevice(0xfe00_0000UL + (ulong)d * 0x1000, 0x1000, new Scratch());
        int wrong = 0;
        using var start = new Barrier(4);
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var rng = new Random(2000 + t);
            start.SignalAndWait();
            for (int op = 0; op < 300; op++)
            {
                PerCpu<long> counter = alloc_percpu<long>()!;
                PerCpu raw = __alloc_percpu(1 + rng.Next(512), 1 << rng.Next(7))!;
                for (int cpu = 0; cpu < 4; cpu++)
                {
                    if (per_cpu_ptr(counter, cpu) != 0 || per_cpu_ptr(raw, cpu)[0] != 0) Interlocked.Increment(ref wrong);
                    per_cpu_ptr(counter, cpu) = t * 1000 + op;
                    per_cpu_ptr(raw, cpu)[0] = 0xEE;
                }
                IoMem regs = ioremap(0xfe00_0000UL + (ulong)t * 0x1000, 0x1000);
                iowrite64((ulong)op, regs + 8 * (op % 512));
                if (readq(regs + 8 * (op % 512)) != (ulong)op) Interlocked.Increment(ref wrong);
                for (int cpu = 0; cpu < 4; cpu++)
                    if (per_cpu_ptr(counter, cpu) != t * 1000 + op) Interlocked.Increment(ref wrong);
                iounmap(regs);
                free_percpu(raw);
                free_percpu(counter);
            }
        })).ToArray();
        foreach (Thread th in threads) th.Start();
        foreach (Thread th in threads) th.Join();
        Assert.Equal(0, wrong);
        Assert.Empty(m.Reports);
        Assert.Empty(m.PerCpuAreas.ScanAreas());
        Assert.Equal(0, m.Ioremap.Space.LiveCount);
        Assert.Equal(1, m.Ioremap.Space.FreeRangeCount);
        Assert.Equal("", m.ReadProc("/proc/vmallocinfo"));
    }
}
