#!/usr/bin/env python3
"""The performance targets in one run: Herald against the one-send floor server and nchan at a
fixed load (SSE and WebSocket), memory and CPU per idle connection on every transport, and
write coalescing on and off at a hot topic, every figure from this one invocation, and a table
of ratios at the end.

  1. fixed load, SSE then WebSocket: 2,000 subscribers on one topic at 25 events/s of 200 B
     (50,000 deliveries/s offered), servers interleaved over --repeat rounds, each run with a
     fresh redis-server: herald (--threads 1), floor (tests/bench/floorsrv: one send(2) per
     delivery, no queue, no ingest), nchan (nginx + nchan with Redis storage, published over
     HTTP; left out with --no-nchan). Deliveries per core-second = deliveries / (server CPU +
     Redis CPU) over the measured seconds (latency.py).
  2. coalescing: 2,000 subscribers x 100 events/s over SSE, --write-delay-ms 0 and 50.
  3. idle: tests/bench/idle.py with 18,000 connections, a third each SSE, WebSocket, long-poll
     (a long-poller asks again every 25 s: a request each time), then 18,000 held streams
     alone, half SSE, half WebSocket (each costs a heartbeat or a ping every 25 s).

Each loadgen run checks every subscriber's sequence (gaps, duplicates, reordering, missing
tail): the table counts those. A benchmark: nothing is asserted, the exit status is 0 whenever
every run produced figures.

  tests/bench/targets.py --loadgen build/bench/tests/bench/loadgen \\
      --floorsrv build/bench/tests/bench/floorsrv --herald build/bench/herald [--pin]

--pin: every fixed-load run placed the same way (latency.py --pin); unpinned, one server's two
rounds differed by up to 1.6x on this 2-core VM.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import latency  # noqa: E402


def fixed(a, mode, conns, rate, servers, warmup, tmp):
    """latency.run() for each server, rounds interleaved: {name: [row, ...]}."""
    ns = argparse.Namespace(loadgen=a.loadgen, floorsrv=a.floorsrv, mode=mode, conns=conns,
                            rate=rate, duration=a.duration, warmup=warmup, generators=1,
                            perf="", perf_dir="build/bench", pin=a.pin)
    out = {name: [] for name, _ in servers}
    for rnd in range(a.repeat):
        for name, spec in servers:
            try:
                row = latency.run(ns, name, spec, tmp)
            except Exception as e:  # reported in the table as a missing figure
                bench.log("%s %s round %d failed: %s" % (mode, name, rnd + 1, e))
                continue
            bench.log("%s %s round %d: p50 %.2f p99 %.2f ms, %.0f deliveries per core-s, "
                      "gen %.2f, seq errors %d" % (mode, name, rnd + 1, row["p50"], row["p99"],
                                                   row["per_core_s"], row["gen_frac"],
                                                   row["bad"]))
            out[name].append(row)
    return out


def ratio_text(rows_a, rows_b):
    """Per round: a's deliveries per core-second over b's, 'r1, r2 (median m)'."""
    rs = [x["per_core_s"] / y["per_core_s"] for x, y in zip(rows_a, rows_b) if y["per_core_s"]]
    if not rs:
        return "-", None
    return "%s (median %.2f)" % (", ".join("%.2f" % r for r in rs), statistics.median(rs)), \
        statistics.median(rs)


def lat_text(rows):
    return ", ".join("%.1f / %.1f" % (x["p50"], x["p99"]) for x in rows) or "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--floorsrv", required=True)
    ap.add_argument("--herald", required=True, help="the herald binary (a Release build)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of each fixed-load run")
    ap.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    ap.add_argument("--no-nchan", action="store_true", help="leave nchan out")
    ap.add_argument("--no-idle", action="store_true", help="leave the idle measurement out")
    ap.add_argument("--json", help="write every row here")
    ap.add_argument("--pin", action="store_true",
                    help="fixed-load runs as latency.py --pin: server and Redis on CPU 0, the "
                         "generator on CPU 1 (the idle run is not pinned)")
    a = ap.parse_args()
    cpus = os.sched_getaffinity(0)
    if a.pin:
        if not {0, 1} <= cpus:
            ap.error("--pin needs CPUs 0 and 1")
        os.sched_setaffinity(0, {1})
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    tmp = tempfile.mkdtemp(prefix="herald-targets-")
    t0 = time.time()
    servers = [("herald", a.herald), ("floor", "floor")]
    if not a.no_nchan:
        servers.append(("nchan", "nchan"))
    res = {"sse": fixed(a, "sse", 2000, 25, servers, 4, tmp),
           "ws": fixed(a, "ws", 2000, 25, servers, 4, tmp),
           "coalesce": fixed(a, "sse", 2000, 100, [
               ("d0", a.herald), ("d50", a.herald + ":--write-delay-ms,50")], 6, tmp)}
    idle = held = None
    os.sched_setaffinity(0, cpus)  # idle.py places its own processes
    if not a.no_idle:
        out = os.path.join(tmp, "idle.json")
        argv = [sys.executable, os.path.join(HERE, "idle.py"), "--bin", "herald=" + a.herald,
                "--hold", "60", "--json", out]
        if subprocess.call(argv) == 0:
            with open(out) as f:
                idle = json.load(f)[0]
        if subprocess.call(argv + ["--transports", "sse,ws"]) == 0:
            with open(out) as f:
                held = json.load(f)[0]
    bench.cleanup()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"fixed": res, "idle": idle, "held": held}, f, indent=1, default=str)

    rows = []
    for mode in ("sse", "ws"):
        r = res[mode]
        txt, med = ratio_text(r["herald"], r["floor"])
        rows.append(("%s: deliveries per core-s, Herald / floor, 2,000 x 25/s" % mode.upper(),
                     txt, ">= 1.0", med is not None and med >= 1.0))
        rows.append(("%s: p50 / p99 ms, Herald (per round)" % mode.upper(),
                     lat_text(r["herald"]), "no worse than floor", None))
        rows.append(("%s: p50 / p99 ms, floor (per round)" % mode.upper(),
                     lat_text(r["floor"]), "", None))
        if r.get("nchan"):
            txt, med = ratio_text(r["herald"], r["nchan"])
            rows.append(("%s: deliveries per core-s, Herald / nchan" % mode.upper(), txt, "",
                         None))
    txt, med = ratio_text(res["coalesce"]["d50"], res["coalesce"]["d0"])
    rows.append(("coalescing: deliveries per core-s, --write-delay-ms 50 / 0, 2,000 x 100/s",
                 txt, ">= 3 (asked at 2,000 x 1,000/s)", med is not None and med >= 3))
    rows.append(("coalescing: p50 / p99 ms with 50 (per round)",
                 lat_text(res["coalesce"]["d50"]), "p99 <= delay + 5 ms over D = 0", None))
    rows.append(("coalescing: p50 / p99 ms with 0 (per round)",
                 lat_text(res["coalesce"]["d0"]), "", None))
    if idle:
        for k, name in (("sse", "SSE"), ("ws", "WebSocket"), ("poll", "long-poll")):
            kib = idle[k]["rss_bytes_per_conn"] / 1024
            rows.append(("RSS per idle %s connection (KiB), %d open" % (name, idle[k]["conns"]),
                         "%.2f" % kib, "<= 2", kib <= 2))
        rows.append(("edge CPU, %d idle connections, a third long-polls (%% of a core)" %
                     idle["conns"], "%.2f (SSE %.2f, WebSocket %.2f, long-poll %.2f)" % (
                         idle["cpu_idle_pct"], idle["sse"]["cpu_pct_with"] - idle["cpu_base_pct"],
                         idle["ws"]["cpu_pct_with"] - idle["sse"]["cpu_pct_with"],
                         idle["poll"]["cpu_pct_with"] - idle["ws"]["cpu_pct_with"]),
                     "< 1 (18,000)", idle["cpu_idle_pct"] < 1))
    if held:
        rows.append(("edge CPU, %d idle SSE + WebSocket streams (%% of a core)" % held["conns"],
                     "%.2f" % held["cpu_idle_pct"], "< 1 (18,000)", held["cpu_idle_pct"] < 1))
    bad = sum(x["bad"] + x["closed"] for g in res.values() for rs in g.values() for x in rs)
    runs = sum(len(rs) for g in res.values() for rs in g.values())
    rows.append(("gaps, duplicates, reorders, missing tails, clients closed", "%d in %d runs" % (
        bad, runs), "0", bad == 0))
    print("targets.py: %d s, %s, load average now %s" % (
        time.time() - t0, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        open("/proc/loadavg").read().split()[0]))
    print("| measure | this run | target | |")
    print("|---|---|---|---|")
    for what, got, target, ok in rows:
        print("| %s | %s | %s | %s |" % (what, got, target,
                                        "" if ok is None else ("met" if ok else "**not met**")))


if __name__ == "__main__":
    main()
