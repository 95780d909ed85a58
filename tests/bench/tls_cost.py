#!/usr/bin/env python3
"""What the edge's own TLS (--tls-cert/--tls-key) costs the edge, side by side with plain HTTP:
resident memory per idle SSE connection, edge CPU per connection set up (TLS handshake
included), and edge CPU per delivered event while N clients receive a stream of events.

    HERALD_BIN=build/herald PYTHONPATH=tests/integration python3 tests/bench/tls_cost.py \\
        [--conns 500] [--events 200] [--size 200]

Edge CPU and RSS come from /proc of the edge process; the Python clients' own cost is not
counted. Loopback only; not part of tests/run.sh. Compare the ratios of one run."""

import argparse
import json
import os
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import harness
from harness import Herald, RedisServer, wait_until

KEY = "bench-key"


def proc_cpu(pid):
    """utime + stime of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def connect(port, ctx, topic):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(("GET /events/%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" %
               topic).encode())
    head = b""
    while b"retry:" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed before the stream started: %r" % head)
        head += chunk
    s.setblocking(False)
    return s


def run(tls, args, certdir):
    srv = RedisServer()
    extra = ["--threads", "1", "--publish-key", KEY, "--log-level", "warn",
             "--client-queue-max", str(max(4096, args.events * 2))]
    ctx = None
    if tls:
        extra += ["--tls-cert", os.path.join(certdir, "cert.pem"),
                  "--tls-key", os.path.join(certdir, "key.pem")]
        ctx = ssl.create_default_context(cafile=os.path.join(certdir, "cert.pem"))

    class Edge(Herald):
        def readyz(self):
            if ctx is None:
                return super().readyz()
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=2),
                                server_hostname="localhost")
            try:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return int(s.recv(64).split()[1])
            finally:
                s.close()

    h = Edge(srv.port, "bench-tls" if tls else "bench-plain", extra)
    socks = []
    try:
        pid = h.proc.pid
        time.sleep(0.5)
        rss0, cpu0 = proc_rss(pid), proc_cpu(pid)
        for _ in range(args.conns):
            socks.append(connect(h.port, ctx, "bench"))
        time.sleep(0.5)
        rss1, cpu1 = proc_rss(pid), proc_cpu(pid)
        r = srv.client()
        harness.wait_live_subscribed(r, "bench", 1)
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        payload = "x" * args.size
        want = args.events * args.conns
        got = 0
        cpu2 = proc_cpu(pid)
        for i in range(args.events):
            harness.fcall_publish(r, "bench", payload)
        end = time.monotonic() + 120
        counts = {s: 0 for s in socks}
        bufs = {s: b"" for s in socks}
        while got < want and time.monotonic() < end:
            for key, _ in sel.select(1.0):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue
                if not data:
                    sel.unregister(s)
                    continue
                b = bufs[s] + data
                cut = b.rfind(b"\n\n") + 2  # count whole events only (no retry:, comments)
                n = b[:cut].count(b"\ndata: ") if cut > 1 else 0
                counts[s] += n
                got += n
                bufs[s] = b[cut:] if cut > 1 else b
        cpu3 = proc_cpu(pid)
        if got < want:
            print("warning: %d of %d events arrived" % (got, want), file=sys.stderr)
        r.close()
        return {
            "rss_per_conn": (rss1 - rss0) / args.conns,
            "cpu_per_conn_us": (cpu1 - cpu0) / args.conns * 1e6,
            "cpu_per_delivery_us": (cpu3 - cpu2) / max(got, 1) * 1e6,
            "delivered": got,
        }
    finally:
        for s in socks:
            s.close()
        h.stop()
        srv.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args()
    certdir = tempfile.mkdtemp(prefix="herald-tls-bench-")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], cwd=certdir,
                       check=True, capture_output=True)
        plain = run(False, args, certdir)
        tls = run(True, args, certdir)
    finally:
        shutil.rmtree(certdir, ignore_errors=True)
    print("%d SSE connections, %d events of %d bytes, one service thread (RSA-2048 cert)" % (
        args.conns, args.events, args.size))
    print("%-24s %12s %12s %8s" % ("", "plain", "tls", "tls/plain"))
    for k, unit in (("rss_per_conn", "B"), ("cpu_per_conn_us", "us"),
                    ("cpu_per_delivery_us", "us")):
        p, t = plain[k], tls[k]
        print("%-24s %10.1f%-2s %10.1f%-2s %8.2f" % (k, p, unit, t, unit, t / p if p else 0))
    print(json.dumps({"plain": plain, "tls": tls}))


if __name__ == "__main__":
    main()
