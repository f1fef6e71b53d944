using System.Collections.Generic;
using System.Text;

namespace KmemGuard.Analyzers.Corpus;

/// <summary>What a generated corpus holds, and the diagnostics its seeded bugs must produce.</summary>
internal sealed record GeneratedCorpus(IReadOnlyList<(string Path, string Text)> Files, IReadOnlyDictionary<string, int> ExpectedDiagnostics, int Lines);

/// <summary>
/// Writes driver-style C#: per file a device with locks, an irq handler, a timer, a tasklet and a
/// work item, allocation and teardown paths, per-CPU statistics, call chains within the file and
/// into the next file, and filler request paths with loops, switches and try/finally. With
/// <c>seedBugs</c>, every eighth file gets one bug of each rule in turn.
/// </summary>
internal static class CorpusGenerator
{
    private const int RequestPathsPerFile = 5;

    public static GeneratedCorpus Generate(int files, bool seedBugs)
    {
        var result = new List<(string, string)> { ("StandInKernel.cs", StandInKernel.Source) };
        var expected = new Dictionary<string, int> { ["KMG0001"] = 0, ["KMG0002"] = 0, ["KMG0003"] = 0, ["KMG0004"] = 0 };
        int lines = 0;
        for (int i = 0; i < files; i++)
        {
            string? bug = seedBugs ? (i % 8) switch { 1 => "KMG0001", 3 => "KMG0002", 5 => "KMG0003", 7 => "KMG0004", _ => null } : null;
            if (bug is not null)
                expected[bug]++;
            string text = File(i, files, bug);
            lines += CountLines(text);
            result.Add(($"Driver{i:D4}.cs", text));
        }

        return new GeneratedCorpus(result, expected, lines);
    }

    private static int CountLines(string text)
    {
        int n = 1;
        foreach (char c in text)
        {
            if (c == '\n')
                n++;
        }

        return n;
    }

    private static string File(int i, int files, string? bug)
    {
        string next = i + 1 < files ? $"Helpers{i + 1}.alloc_raw(n, gfp)" : "alloc_raw(n, gfp)";
        var s = new StringBuilder();
        s.Append(StandInKernel.Usings.Replace("namespace KmemGuard.Testing;", "namespace KmemGuard.Testing.Corpus;"));
        s.AppendLine($$"""
            public sealed class Driver{{i}}
            {
                private const int RingSize = {{4096 + i * 64}};
                private readonly spinlock_t lock_ = new();
                private readonly mutex cfg_lock = new();
                private readonly timer_list watchdog = new();
                private readonly tasklet_struct rx_tasklet = new();
                private readonly work_struct reset_work = new();
                private readonly int[] stats = new int[8];
                private KPtr ring;
                private KPtr scratch;
                private ulong pages;
                private int pending;

                public int probe()
                {
                    ring = vmalloc(RingSize);
                    if (ring == NULL)
                        return -12;
                    scratch = kzalloc(256, GFP_KERNEL);
                    pages = __get_free_pages(GFP_KERNEL, 2);
                    timer_setup(watchdog, watchdog_fn, 0);
                    tasklet_init(rx_tasklet, rx_bh, 0);
                    INIT_WORK(reset_work, reset_fn);
                    return request_irq({{i % 64}}, irq_handler, 0, "drv{{i}}", this);
                }

                private int irq_handler(int irq, object? dev)
                {
                    spin_lock(lock_);
                    KPtr buf = Helpers{{i}}.alloc_buf(64, GFP_ATOMIC);
                    pending++;
                    spin_unlock(lock_);
                    kfree(buf);
                    stats[smp_processor_id() % 8]++;
                    return 1;
                }

                private void watchdog_fn(timer_list t)
                {
                    KPtr probe_buf = kmalloc(32, GFP_ATOMIC | __GFP_NOWARN);
                    mdelay(1);
                    kfree(probe_buf);
                }

                private void rx_bh(ulong data)
                {
                    spin_lock(lock_);
                    pending = 0;
                    spin_unlock(lock_);
                }

                private void reset_fn(work_struct w)
                {
                    mutex_lock(cfg_lock);
                    msleep(10);
                    Helpers{{i}}.refill(this);
                    mutex_unlock(cfg_lock);
                }

                public int xmit(int len)
                {
                    if (len <= 0)
                        return -22;
                    spin_lock_irqsave(lock_, out ulong flags);
                    if (len > RingSize)
                    {
                        spin_unlock_irqrestore(lock_, flags);
                        return -7;
                    }
            {{(bug == "KMG0004" ? "        if (len == 1)\n            return -16;\n" : "")}}        KPtr pkt = kmalloc(len, GFP_ATOMIC);
            {{(bug == "KMG0001" ? "        Helpers" + i + ".refill(this);\n" : "")}}        pending++;
                    spin_unlock_irqrestore(lock_, flags);
                    kfree(pkt);
                    return 0;
                }

                public void count(int slot)
                {
            {{(bug == "KMG0003" ? "        stats[smp_processor_id() % 8] += slot;\n" : "")}}        int cpu = get_cpu();
                    stats[(cpu + slot) % 8]++;
                    put_cpu();
                }

                public void remove()
                {
                    {{(bug == "KMG0002" ? "kfree(ring);" : "vfree(ring);")}}
                    kfree(scratch);
                    free_pages(pages, 2);
                }
            """);
        for (int k = 0; k < RequestPathsPerFile; k++)
            s.AppendLine(RequestPath(k));
        s.AppendLine("}");
        s.AppendLine($$"""

            public static class Helpers{{i}}
            {
                public static KPtr alloc_buf(int n, gfp_t gfp) => alloc_leaf(n, gfp);

                public static KPtr alloc_leaf(int n, gfp_t gfp) => {{next}};

                public static KPtr alloc_raw(int n, gfp_t gfp) => kmalloc(n, gfp);

                public static void refill(Driver{{i}} dev) => refill_1(dev, 1);

                private static void refill_1(Driver{{i}} dev, int depth) => refill_2(dev, depth + 1);

                private static void refill_2(Driver{{i}} dev, int depth) => refill_3(dev, depth + 1);

                private static void refill_3(Driver{{i}} dev, int depth)
                {
                    KPtr buf = alloc_buf(128 * depth, GFP_KERNEL);
                    kfree(buf);
                }
            }
            """);
        return s.ToString();
    }

    private static string RequestPath(int k) => $$"""
            public int request_{{k}}(int[] work, bool urgent)
            {
                int done = 0;
                spin_lock(lock_);
                try
                {
                    for (int j = 0; j < work.Length; j++)
                    {
                        switch (work[j] % 4)
                        {
                            case 0:
                                done += j;
                                break;
                            case 1:
                                udelay(1);
                                break;
                            default:
                                done--;
                                break;
                        }
                    }
                }
                finally
                {
                    spin_unlock(lock_);
                }

                if (urgent && spin_trylock(lock_))
                {
                    pending += done;
                    spin_unlock(lock_);
                }

                KPtr tmp = Helpers0.alloc_buf(16 + {{k}}, urgent ? GFP_ATOMIC : GFP_KERNEL);
                kfree(tmp);
                return done;
            }
        """;
}
