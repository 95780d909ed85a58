#!/usr/bin/env python3
"""The edge's file-level call graph, from the object files' symbol tables (nm): file A calls
file B when A references a function or object B defines. Prints the groups of files that call
each other in a circle (strongly connected components of more than one file), each with the
calls that close it, and which edge files call which. Exit 0 always: a report, not a gate.

Usage: tests/arch/callgraph.py [BUILD_DIR]   (default build/release; needs nm)
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layers import nm as symbols  # noqa: E402  (defined, used symbols of an object file)


def sccs(nodes, edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
    objdir = os.path.join(build, "CMakeFiles", "herald.dir", "edge")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "edge")
    files = sorted(f for f in os.listdir(objdir)  # objects of files that still exist
                   if f.endswith(".c.o") and os.path.exists(os.path.join(src, f[:-2])))
    defs, uses = {}, {}
    for f in files:
        defs[f[:-2]], uses[f[:-2]] = symbols(os.path.join(objdir, f))
    owner = {}
    for f, d in defs.items():
        for s in d:
            owner[s] = f
    edges = defaultdict(set)
    via = defaultdict(set)
    for f, u in uses.items():
        for s in u:
            g = owner.get(s)
            if g and g != f:
                edges[f].add(g)
                via[(f, g)].add(s)
    comps = [c for c in sccs(sorted(defs), edges) if len(c) > 1]
    print("edge files: %d; call edges between them: %d; circles: %d" % (
        len(defs), sum(len(v) for v in edges.values()), len(comps)))
    for c in comps:
        print("\ncircle of %d files: %s" % (len(c), " ".join(c)))
        for a in c:
            for b in sorted(edges[a]):
                if b in c:
                    print("  %s -> %s: %s" % (a, b, ", ".join(sorted(via[(a, b)])[:6])))


if __name__ == "__main__":
    main()
