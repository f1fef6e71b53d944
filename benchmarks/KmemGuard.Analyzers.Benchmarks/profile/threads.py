"""Where a compiler server's CPU samples go, by thread, for two profiles of the same builds with and without KmemGuard.

    threads.py WITH.txt WITHOUT.txt BUILDS

The difference per build is what KmemGuard costs in all threads: its own frames on the thread-pool
threads that run analyzer callbacks, the analyzer driver's work for its callbacks, and the garbage
collector's and the JIT's threads, which share.py does not see (their stacks have no KmemGuard frame).
Both files are `perf script` output of profile-server.sh, with the same number of profiled builds.
"""
import collections
import sys

from share import method, threaded_samples


def kind(thread, names):
    if thread.startswith(".NET TP"):
        if any(n.startswith("KmemGuard.Analyzers") for n in names):
            return "thread pool: KmemGuard's frames"
        if any("AnalyzerDriver" in n or "AnalyzerExecutor" in n for n in names):
            return "thread pool: analyzer driver and other analyzers"
        return "thread pool: other"
    if thread.startswith(".NET Server") or thread.startswith(".NET BGC"):
        return "garbage collector"
    if thread.startswith(".NET Tiered"):
        return "JIT (tiered recompilation)"
    if thread.startswith(".NET Long"):
        return "compiler (long-running tasks)"
    return "other threads"


def count(path):
    counts = collections.Counter()
    for thread, stack in threaded_samples(path):
        counts[kind(thread, [method(f) for f in stack])] += 1
    return counts


def main(with_path, without_path, builds):
    with_counts, without_counts = count(with_path), count(without_path)
    print("| threads | with KmemGuard (samples per build) | without | difference |")
    print("|---|---|---|---|")
    for part in sorted(set(with_counts) | set(without_counts)):
        a, b = with_counts[part] / builds, without_counts[part] / builds
        print(f"| {part} | {a:,.0f} | {b:,.0f} | {a - b:+,.0f} |")
    a, b = sum(with_counts.values()) / builds, sum(without_counts.values()) / builds
    print(f"| all | {a:,.0f} | {b:,.0f} | {a - b:+,.0f} ({(a - b) / b:+.1%}) |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
