"""Shares of a compiler server's CPU samples (the output of `perf script`) spent in KmemGuard's frames.

A sample counts as KmemGuard's when any frame of its stack is in KmemGuard.Analyzers; it is then put
in one part by the frames between the leaf and the innermost KmemGuard frame: Roslyn building a
control-flow graph, Roslyn binding or building operations (work the driver would otherwise do for
the same bodies, moved earlier), the syntactic name index, or KmemGuard's own code (including the
allocations and casts it makes).
"""
import collections
import re
import sys

PARTS = [
    ("control-flow graphs", lambda n: "FlowAnalysis.ControlFlowGraph" in n or "GetControlFlowGraphImpl" in n),
    ("binding and operations", lambda n: "CSharp.Binder" in n or "MemberSemanticModel" in n or "OperationFactory" in n
        or "CSharp.Symbols" in n),
    ("name index", lambda n: "NameIndex" in n),
]


def threaded_samples(path):
    """(thread name, stack) per sample of `perf script` output, the stack from the leaf up."""
    thread = stack = None
    for line in open(path, errors="replace"):
        if not line.strip():
            if stack:
                yield thread, stack
            stack = None
        elif line[0] not in " \t":
            thread = " ".join(line.split()[:2])
            stack = []
        elif stack is not None:
            stack.append(line.strip())
    if stack:
        yield thread, stack


def samples(path):
    for _, stack in threaded_samples(path):
        yield stack


def method(frame):
    match = re.search(r"\] ([^\s\[\]]+::[^\s(\[]+)\(", frame)
    return match.group(1) if match else frame


def main(path):
    total = 0
    parts = collections.Counter()
    for stack in samples(path):
        total += 1
        names = [method(f) for f in stack]
        ours = [i for i, n in enumerate(names) if n.startswith("KmemGuard.Analyzers")]
        if not ours:
            continue
        part = next((p for n in names[:ours[0] + 1] for p, test in PARTS if test(n)), "KmemGuard's own code")
        parts[part] += 1
    kmemguard = sum(parts.values())
    rest = total - kmemguard
    print(f"{total} samples; KmemGuard's frames {kmemguard * 100 / total:.1f} % of them, "
          f"{kmemguard * 100 / rest:.1f} % of the rest of the build")
    for part, count in parts.most_common():
        print(f"  {part:24} {count * 100 / total:5.1f} % of all samples")


if __name__ == "__main__":
    main(sys.argv[1])
