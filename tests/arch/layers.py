#!/usr/bin/env python3
"""The edge's layering, checked on the object files (nm): which file calls which.

  process        main.c, watchdog.c                           may call anything below
  broker thread  the Redis side (broker*, btopic, brefill, ...)  calls handoff and shared only
  service thread the client side (service, client, transports)    calls handoff and shared only
  handoff        handoff.c: the only place the two threads meet  calls no thread's file
  (common/ is below all of them: loop-free, tested on its own)

Fails (exit 1) on a call from one thread's files into the other's, a call from handoff.c into
a thread's files, an edge file that is in no layer (a new file must be placed), or a circle of
files that call each other (directly or through others) within a layer listed in ACYCLIC: their
files call only downward (docs/architecture.md gives the order). Also fails when a declaration in an edge/ header has no doc comment (the contract:
thread, ownership, failure), and when an edge/ C file compares a result with a bare negative
number or returns one below -1 (failures are HB_E*; -1 stays lws' "close").

Usage: tests/arch/layers.py BUILD_DIR   (ctest: arch.layers)
"""
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))

LAYERS = {
    "process": {"main", "watchdog"},
    "broker": {"bconn", "blost", "bpos", "bready", "brefill", "broker", "bsub", "btopic",
               "bticket", "canary", "cluster", "cluster_canary", "cluster_life", "cluster_route", "cluster_sub", "history",
               "ingest", "ingest_lease", "ingest_sub", "library", "psconn", "rc", "rc_single",
               "rc_cluster", "rconn", "resolve", "sentinel"},
    "service": {"admit", "auth", "client", "ctimer", "cwrite", "hread", "http", "http_resp", "sdrain",
                "http_write", "listener", "lwslog", "lwstimer", "metrics", "poll", "publish", "reqcheck", "service",
                "sframes", "sse", "ticket", "ticket_answer", "topics", "usend", "ws", "transport"},
    "handoff": {"handoff"},
}
# who may call whom (besides itself and common/)
ALLOWED = {
    "process": {"broker", "service", "handoff"},
    "broker": {"handoff"},
    "service": {"handoff"},
    "handoff": set(),
}
# layers whose files must not call each other in a circle (issue 16): each thread's files call
# only downward (docs/architecture.md gives both orders)
ACYCLIC = {"process", "service", "handoff", "broker"}


def nm(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    d, u = set(), set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "TDBR":
            d.add(p[2])
        elif len(p) == 2 and p[0] == "U":
            u.add(p[1])
    return d, u


def check_layers(build):
    objdir = os.path.join(build, "CMakeFiles", "herald.dir", "edge")
    names = sorted(os.path.basename(f)[:-2] for f in glob.glob(os.path.join(SRC, "edge", "*.c")))
    layer_of = {}
    problems = []
    for n in names:
        ls = [k for k, v in LAYERS.items() if n in v]
        if not ls:
            problems.append("edge/%s.c is in no layer (tests/arch/layers.py LAYERS)" % n)
        else:
            layer_of[n] = ls[0]
    defs, uses = {}, {}
    for n in names:
        obj = os.path.join(objdir, n + ".c.o")
        if not os.path.exists(obj):
            problems.append("no object file %s (build first)" % obj)
            continue
        defs[n], uses[n] = nm(obj)
    owner = {s: n for n, d in defs.items() for s in d}
    problems += check_circles(layer_of, uses, owner)
    for n, u in sorted(uses.items()):
        for s in sorted(u):
            m = owner.get(s)
            if not m or m == n or n not in layer_of or m not in layer_of:
                continue
            a, b = layer_of[n], layer_of[m]
            if a != b and b not in ALLOWED[a]:
                problems.append("%s layer calls %s layer: edge/%s.c -> edge/%s.c (%s)" % (
                    a, b, n, m, s))
    return problems


def check_circles(layer_of, uses, owner):
    """Circles (strongly connected groups of more than one file) in the call graph of the files
    of the ACYCLIC layers, each reported with the calls that close it."""
    files = sorted(n for n in uses if layer_of.get(n) in ACYCLIC)
    edges = {n: set() for n in files}
    via = {}
    for n in files:
        for s in uses[n]:
            m = owner.get(s)
            if m and m != n and m in edges:
                edges[n].add(m)
                via.setdefault((n, m), set()).add(s)
    from callgraph import sccs  # the one Tarjan (callgraph.py imports nm() from here)
    comps = [c for c in sccs(files, edges) if len(c) > 1]
    out = []
    for c in comps:
        closing = ["%s.c -> %s.c (%s)" % (a, b, ", ".join(sorted(via[(a, b)])[:3]))
                   for a in c for b in sorted(edges[a]) if b in c]
        out.append("files that call each other in a circle: %s: %s" % (
            " ".join(x + ".c" for x in c), "; ".join(closing)))
    return out


DECL = re.compile(r"^(?:extern\s+)?[A-Za-z_][\w \*]*?\b(\w+)\s*\(")


def check_contracts():
    """Every function declared at file scope in an edge/ header has a comment just above it
    (or shares one with the declarations right before it, a block of related calls)."""
    problems = []
    for f in sorted(glob.glob(os.path.join(SRC, "edge", "*.h"))):
        lines = open(f).read().split("\n")
        depth = 0
        for i, line in enumerate(lines):
            if (depth == 0 and DECL.match(line) and "(" in line
                    and not line.startswith(("typedef", "#", "static", "return", "struct", "enum"))
                    and not line.rstrip().endswith("{")):
                k = i - 1
                while k >= 0 and lines[k].strip() == "":
                    k -= 1
                prev = lines[k].strip() if k >= 0 else ""
                # a continuation line of the previous declaration, or a documented one
                if prev.endswith("*/") or (prev and not prev.endswith((";", "}", "*/"))):
                    pass
                else:
                    problems.append("%s:%d: no contract comment: %s" % (
                        os.path.relpath(f, SRC), i + 1, line.strip()))
            depth += line.count("{") - line.count("}")
    return problems


# A result compared with, or returned as, a bare negative number other than -1 (lws' "close"),
# or compared with -1: edge/ reports failure as HB_E* (common/hb_err.h; docs/architecture.md,
# "Contracts and error returns"). Comments and strings are not looked at.
BARE_ERR = re.compile(r"[=!]=\s*-\d|\breturn\s+-(?:[2-9]|\d\d)\b")


def check_errors():
    """No edge/ C file compares a result with a bare negative number or returns one below -1."""
    problems = []
    for f in sorted(glob.glob(os.path.join(SRC, "edge", "*.c"))):
        text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), open(f).read(),
                      flags=re.S)
        for i, line in enumerate(text.split("\n")):
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line.split("//")[0])
            if BARE_ERR.search(code):
                problems.append("%s:%d: a bare error number, not HB_E*: %s" % (
                    os.path.relpath(f, SRC), i + 1, line.strip()))
    return problems


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build", "release")
    problems = check_layers(build) + check_contracts() + check_errors()
    for p in problems:
        print(p)
    print("arch: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
