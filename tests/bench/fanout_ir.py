#!/usr/bin/env python3
"""Instructions per delivery on the fan-out path, by `valgrind --tool=callgrind` (counts that
repeat on a noisy machine, unlike timings), for several herald binaries side by side.

For each binary, twice: a fresh redis-server and `herald --threads 1` under callgrind, CLIENTS
SSE subscribers on one topic, then EVENTS events of 200 bytes published with FCALL (paced, so
that every event is its own delivery: no batch), every subscriber reading all of them (checked:
in order, none missing); SIGTERM, and callgrind's total instruction count (Ir). Run once with
EVENTS and once with none; (Ir(EVENTS) - Ir(0)) / (EVENTS x CLIENTS) is the edge's instructions
per delivery, start-up and shut-down cancelled out. User space only: the kernel's send path,
the larger share of a delivery, is not counted. A benchmark: nothing is asserted.

With --cache-sim, callgrind also simulates the caches (--cache-sim=yes, the host's geometry):
D1 misses (data reads and writes missing the first-level data cache) and LL misses (the last
level: instruction and data) per delivery are reported beside Ir. Simulated misses repeat run
to run, unlike timings; they count where the per-recipient structures are touched, not what a
real miss costs. --keep leaves the callgrind files (for callgrind_annotate) and names them.

  tests/bench/fanout_ir.py --bin before=/tmp/before/herald --bin after=build/bench/herald
  tests/bench/fanout_ir.py --mode ws --cache-sim --bin before=... --bin after=...
"""

import argparse
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from wsclient import WSClient  # noqa: E402


def subscribers(port, clients, mode):
    """`clients` subscribers of topic "fan": SSE streams, or WebSockets with one subscribe."""
    if mode == "sse":
        return [harness.SSEClient(port, "/events/fan", timeout=60) for _ in range(clients)]
    subs = []
    for _ in range(clients):
        ws = WSClient(port, timeout=60)
        ws.send_json({"type": "subscribe", "topic": "fan"})
        if ws.recv_json(timeout=60).get("type") != "subscribed":
            raise RuntimeError("a WebSocket subscribe was refused")
        subs.append(ws)
    return subs


def next_id(c, mode):
    if mode == "sse":
        return harness.split_cursor(c.next_event(120).id)[0]
    return harness.split_cursor(c.recv_json(timeout=120)["id"])[0]


def run(binary, clients, events, tmp, mode="sse", cache_sim=False, ll=None):
    srv = harness.RedisServer()
    r = srv.client()
    port = harness.free_port()
    out = os.path.join(tmp, "cg.%d" % time.monotonic_ns())
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] +
                         (["--cache-sim=yes"] if cache_sim else []) +
                         (["--LL=" + ll] if cache_sim and ll else []) +
                         [binary, "--listen", "127.0.0.1:%d" % port,
                          "--redis", "redis://127.0.0.1:%d" % srv.port, "--threads", "1",
                          "--ingest", "off", "--node-id", "cg"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.wait_until(lambda: harness.port_open(port), 120, what="edge under callgrind")
        harness.wait_until(lambda: harness.http_get(port, "/readyz", timeout=30)[0] == 200, 120,
                           what="edge ready")
        subs = subscribers(port, clients, mode)
        harness.wait_live_subscribed(r, "fan", timeout=60)
        time.sleep(2)
        payload = "x" * 200
        ids = []
        for i in range(events):
            ids.append(harness.fcall_publish(r, "fan", "%05d%s" % (i, payload[5:])))
            time.sleep(0.02)
        for c in subs:
            got = [next_id(c, mode) for _ in range(events)]
            if got != ids:
                raise RuntimeError("a subscriber got %d events out of order or with a hole" %
                                   len(got))
            c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(300)
        r.close()
        srv.close()
    return callgrind_totals(out), out


def callgrind_totals(out):
    """The totals of the callgrind output file(s) `out`* (one per thread part): a dict of Ir
    and, with the cache simulation, D1 (D1mr + D1mw) and LL (ILmr + DLmr + DLmw) misses."""
    totals = {}
    for f in glob.glob(out + "*"):
        names = []
        with open(f) as fh:
            for line in fh:
                if line.startswith("events:"):
                    names = line.split()[1:]
                elif line.startswith("summary:") or line.startswith("totals:"):
                    ev = dict(zip(names, (int(v) for v in line.split()[1:])))
                    got = {"Ir": ev.get("Ir", 0)}
                    if "D1mr" in ev:
                        got["D1"] = ev["D1mr"] + ev.get("D1mw", 0)
                        got["LL"] = ev.get("ILmr", 0) + ev.get("DLmr", 0) + ev.get("DLmw", 0)
                    if got["Ir"] >= totals.get("Ir", -1):
                        totals = got
    return totals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--mode", default="sse", choices=["sse", "ws"],
                    help="subscribers over SSE (default) or WebSocket (herald.v1, one subscribe each)")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also simulate the caches: D1 and LL misses per delivery")
    ap.add_argument("--ll", metavar="SIZE,ASSOC,LINE",
                    help="with --cache-sim: the last-level cache simulated (valgrind --LL), when "
                         "the host's is not representative (a VM may report a huge one)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the callgrind files (printed) instead of only their totals")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="herald-fanout-ir-")
    keys = ["Ir", "D1", "LL"] if a.cache_sim else ["Ir"]
    deliveries = float(a.events * a.clients)
    rows = []
    for spec in a.bin:
        name, path = spec.split("=", 1)
        base, _ = run(path, a.clients, 0, tmp, a.mode, a.cache_sim, a.ll)
        full, out = run(path, a.clients, a.events, tmp, a.mode, a.cache_sim, a.ll)
        per = {k: (full.get(k, 0) - base.get(k, 0)) / deliveries for k in keys}
        rows.append((name, base, full, per))
        print("fanout_ir: %s: Ir %d with none, %d with %d x %d: %s per delivery%s" % (
            name, base["Ir"], full["Ir"], a.events, a.clients,
            ", ".join("%s %.*f" % (k, 0 if k == "Ir" else 2, per[k]) for k in keys),
            " (callgrind files: %s*)" % out if a.keep else ""), flush=True)
    print("| binary | Ir, no event | Ir, %d events x %d clients | %s |" % (
        a.events, a.clients, " | ".join("%s per delivery | vs first" % k for k in keys)))
    print("|---|---|---|%s" % ("---|---|" * len(keys)))
    for name, base, full, per in rows:
        cells = []
        for k in keys:
            first = rows[0][3][k]
            cells.append("%.*f | %s" % (0 if k == "Ir" else 2, per[k],
                                        "%.3f" % (per[k] / first) if first else "-"))
        print("| %s | %d | %d | %s |" % (name, base["Ir"], full["Ir"], " | ".join(cells)))
    if not a.keep:
        for f in glob.glob(os.path.join(tmp, "cg.*")):
            os.unlink(f)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
