#!/usr/bin/env python3
"""What one long-poll cycle costs the edge, for several herald binaries side by side: system
calls (strace -c) and user-space instructions (valgrind --tool=callgrind).

A cycle is what an idle long-poller makes the edge do every --poll timeout: the answer when the
timeout passes (no event), then the client's next request with the cursor it was given (parse,
subscribe, the history read through the broker) and the wait. CLIENTS keep-alive pollers on 5
topics (each topic has one stored event, so cursors are real), each asking CYCLES times with
timeout=1, their first requests spread over a second (idle pollers do not all ask in one loop
turn).

- syscalls: `herald --threads 1 --ingest off` runs free; strace -c -f attaches for --trace
  seconds while the pollers cycle; each system call's count is divided by the requests received
  (recvfrom) in that window.
- Ir: the edge under callgrind, once with CYCLES and once with 1 cycle per client; the
  difference over CLIENTS x (CYCLES - 1) is the instructions per cycle, start-up, connects and
  shut-down cancelled out. User space only.

A benchmark: nothing is asserted. Every answer is checked to be a 200 with a `next` cursor.

  tests/bench/poll_cost.py --bin before=/tmp/before/herald --bin after=build/bench/herald
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
sys.path.insert(0, HERE)
import fanout_ir  # noqa: E402

TOPICS = 5


def poller(port, topic, cycles, errors, delay=0.0):
    """One keep-alive long-poller: `cycles` requests, each from the last answer's `next`,
    the first after `delay` seconds."""
    nxt = ""
    time.sleep(delay)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            for _ in range(cycles):
                q = "/poll/%s?timeout=1%s" % (topic, "&since=" + nxt if nxt else "")
                s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % q).encode())
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("closed by the edge")
                    buf += chunk
                head, body = buf.split(b"\r\n\r\n", 1)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError("answer: %r" % head[:40])
                n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(body) < n:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("closed mid-answer")
                    body += chunk
                nxt = json.loads(body)["next"]
                if not nxt:
                    raise RuntimeError("an answer without a next cursor")
    except Exception as e:  # reported, and the run fails
        errors.append(repr(e))


def run_pollers(port, clients, cycles):
    errors = []
    # spread over one timeout, as idle pollers are: not all in one loop turn
    ts = [threading.Thread(target=poller, args=(port, "pc%d" % (i % TOPICS), cycles, errors,
                                                i / float(clients)))
          for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError("%d pollers failed: %s" % (len(errors), errors[0]))


def start(binary, wrap=()):
    srv = harness.RedisServer()
    r = srv.client()
    port = harness.free_port()
    p = subprocess.Popen(list(wrap) + [binary, "--listen", "127.0.0.1:%d" % port, "--redis",
                                       "redis://127.0.0.1:%d" % srv.port, "--threads", "1",
                                       "--ingest", "off", "--node-id", "pc"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    harness.wait_until(lambda: harness.port_open(port), 120, what="the edge listening")
    harness.wait_until(lambda: harness.http_get(port, "/readyz", timeout=30)[0] == 200, 120,
                       what="the edge ready")
    for t in range(TOPICS):  # the edge loaded the function library
        harness.fcall_publish(r, "pc%d" % t, "x")
    return srv, r, p, port


def stop(srv, r, p):
    p.send_signal(signal.SIGTERM)
    p.wait(300)
    r.close()
    srv.close()


def syscalls(binary, clients, trace_s, tmp):
    """{syscall: calls per cycle}, measured on a free-running edge."""
    srv, r, p, port = start(binary)
    out = os.path.join(tmp, "strace.%d" % time.monotonic_ns())
    try:
        th = threading.Thread(target=run_pollers, args=(port, clients, int(trace_s) + 6))
        th.start()
        time.sleep(2)
        subprocess.run(["timeout", str(trace_s), "strace", "-c", "-f", "-p", str(p.pid), "-o",
                        out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        th.join()
    finally:
        stop(srv, r, p)
    calls = {}
    with open(out) as fh:
        for line in fh:
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls[f[-1]] = int(f[3])
    reqs = calls.get("recvfrom") or calls.get("recvmsg") or calls.get("read")
    return {k: v / float(reqs) for k, v in calls.items()}, reqs


def instructions(binary, clients, cycles, tmp):
    out = os.path.join(tmp, "cg.%d" % time.monotonic_ns())
    srv, r, p, port = start(binary, ["valgrind", "--tool=callgrind",
                                     "--callgrind-out-file=" + out])
    try:
        run_pollers(port, clients, cycles)
        time.sleep(1)
    finally:
        stop(srv, r, p)
    return fanout_ir.callgrind_totals(out)["Ir"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=8, help="per client, under callgrind")
    ap.add_argument("--trace", type=float, default=5, help="seconds of strace per binary")
    a = ap.parse_args()
    for tool in ("strace", "valgrind"):
        if not shutil.which(tool):
            sys.exit("poll_cost: %s is needed (apt-get install %s)" % (tool, tool))
    tmp = tempfile.mkdtemp(prefix="herald-poll-cost-")
    rows = []
    for spec in a.bin:
        name, path = spec.split("=", 1)
        per, reqs = syscalls(path, a.clients, a.trace, tmp)
        base = instructions(path, a.clients, 1, tmp)
        full = instructions(path, a.clients, a.cycles, tmp)
        ir = (full - base) / float(a.clients * (a.cycles - 1))
        rows.append((name, per, ir))
        print("poll_cost: %s: %d requests traced, %.2f system calls and %.0f Ir per cycle" % (
            name, reqs, sum(per.values()), ir), flush=True)
    names = sorted({k for _, per, _ in rows for k in per if max(
        p.get(k, 0) for _, p, _ in rows) >= 0.05})
    print("| per long-poll cycle | " + " | ".join(n for n, _, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    print("| user-space instructions (Ir) | " + " | ".join("%.0f" % ir for _, _, ir in rows) +
          " |")
    print("| system calls | " + " | ".join("%.2f" % sum(p.values()) for _, p, _ in rows) + " |")
    for k in names:
        print("| `%s` | " % k + " | ".join("%.2f" % p.get(k, 0) for _, p, _ in rows) + " |")


if __name__ == "__main__":
    main()
