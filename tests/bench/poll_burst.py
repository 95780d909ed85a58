#!/usr/bin/env python3
"""A burst of long-poll answers: what the edge spends when one event answers N waiting polls at
once (a publish to a topic that many long-pollers wait on), for several herald binaries side by
side.

For each binary: a fresh redis-server and `herald --threads 1`; N keep-alive long-poll clients
(one client process, --conns of them, 6,000 at most: the descriptor limit) wait on topic
`burst`; then --rounds times: one event is published (FCALL herald_publish), every client reads
its answer (checked: that event, once) and asks again from the answer's `next`, and once all
N wait again the next round starts. The edge's CPU (utime+stime from /proc) over the rounds
divided by rounds x N is its cost per answered poll, request included; the wall time from the
publish to the last answer is the burst's latency. A benchmark: nothing is asserted.

  tests/bench/poll_burst.py --bin before=/tmp/base/herald --bin after=build/bench/herald
"""

import argparse
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import idle  # noqa: E402  (spawn, stop, free_port, wait_until, cpu_s)


def log(*a):
    print("poll_burst:", *a, file=sys.stderr, flush=True)


def fcall_publish(rport, topic, data):
    args = [b"FCALL", b"herald_publish", b"1", topic, data]
    cmd = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in args)
    with socket.create_connection(("127.0.0.1", rport), 5) as r:
        r.sendall(cmd)
        reply = r.recv(4096)
    if reply[:1] == b"-":
        raise RuntimeError("publish failed: %r" % reply)


class Poller:
    __slots__ = ("s", "buf", "next", "got")

    def __init__(self, s):
        self.s, self.buf, self.next, self.got = s, b"", "", 0


def ask(p):
    q = "/poll/burst?timeout=60" + ("&since=" + p.next if p.next else "")
    p.s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % q).encode())


def answers(p):
    """Whole answers in p.buf: yields each one's JSON body."""
    while True:
        head_end = p.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = p.buf[:head_end].decode("latin-1").lower()
        n = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        if len(p.buf) < head_end + 4 + n:
            return
        body = p.buf[head_end + 4:head_end + 4 + n]
        p.buf = p.buf[head_end + 4 + n:]
        yield json.loads(body)


def measure(name, binary, a, tmp):
    rport, port = idle.free_port(), idle.free_port()
    redis = idle.spawn(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                        "--dir", tmp], stdout=subprocess.DEVNULL)
    idle.wait_until(lambda: socket.create_connection(("127.0.0.1", rport), 1).close() or True,
                    10, "redis")
    edge = idle.spawn([binary, "--listen", "127.0.0.1:%d" % port, "--redis",
                       "redis://127.0.0.1:%d" % rport, "--threads", "1", "--max-connections",
                       "100000", "--log-level", "warn"])
    try:
        idle.publish_one_each(rport, port)  # streams exist: cursors are real
        fcall_publish(rport, b"burst", b"first")
        sel = selectors.DefaultSelector()
        polls = []
        for i in range(a.conns):
            s = socket.create_connection(("127.0.0.1", port), 10)
            s.setblocking(False)
            p = Poller(s)
            polls.append(p)
            sel.register(s, selectors.EVENT_READ, p)
        for p in polls:  # without since: each waits for the next event
            ask(p)
        time.sleep(a.settle)
        pid = edge.pid
        c0, lat = idle.cpu_s(pid), []
        for r in range(a.rounds):
            data = b"round-%d" % r
            t0 = time.time()
            fcall_publish(rport, b"burst", data)
            pending = len(polls)
            while pending:
                for key, _ in sel.select(30):
                    p = key.data
                    d = p.s.recv(1 << 16)
                    if not d:
                        raise RuntimeError("the edge closed a poll")
                    p.buf += d
                    for ans in answers(p):
                        ev = ans["events"]
                        if len(ev) != 1 or ev[0]["data"] != data.decode():
                            raise RuntimeError("round %d: answer %r" % (r, ans))
                        p.next, p.got = ans["next"], p.got + 1
                        pending -= 1
            lat.append(time.time() - t0)
            for p in polls:
                ask(p)
            time.sleep(a.settle)
        cpu = idle.cpu_s(pid) - c0
        for p in polls:
            p.s.close()
        res = {"conns": a.conns, "rounds": a.rounds, "cpu_s": cpu,
               "us_per_answer": 1e6 * cpu / (a.rounds * a.conns),
               "burst_ms_median": 1000 * sorted(lat)[len(lat) // 2],
               "burst_ms_max": 1000 * max(lat)}
        log(name, json.dumps(res))
        return res
    finally:
        idle.stop(edge)
        idle.stop(redis)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds after every poll asked again, before the next publish")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.conns > 6000:
        ap.error("--conns: at most 6000")
    res = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in a.bin:
            name, path = spec.split("=", 1)
            res.append((name, measure(name, path, a, tmp)))
    print("| %d long-polls answered at once, %d rounds | %s |" % (
        a.conns, a.rounds, " | ".join(n for n, _ in res)))
    print("|---|" + "---|" * len(res))
    print("| edge CPU per answered poll (us) | %s |" % " | ".join(
        "%.1f" % r["us_per_answer"] for _, r in res))
    print("| publish to last answer, median / max (ms) | %s |" % " | ".join(
        "%.0f / %.0f" % (r["burst_ms_median"], r["burst_ms_max"]) for _, r in res))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in idle.procs:
            idle.stop(p)
