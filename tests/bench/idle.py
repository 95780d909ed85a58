#!/usr/bin/env python3
"""Idle connections: the edge's CPU and resident memory per idle SSE, WebSocket and long-poll
connection, for two herald binaries (e.g. main's and a branch's) measured one after the other
in one run.

For each binary: a fresh redis-server and herald (--threads 1 unless told otherwise) on free
loopback ports; CPU over --base seconds with no client; then per transport a client process
opens its share of --conns (18,000 in all by default, a third each unless --transports says
otherwise: SSE `GET /events/<t>`, WebSocket `GET /ws` + one subscribe, long-poll
`GET /poll/<t>` asked again from the answer's `next` after each (empty) answer at the default
25 s timeout; 100 topics), and the edge's RSS growth over that batch
divided by the batch is that transport's bytes per connection, and the CPU over --step-hold
seconds after it, less that before it, its share of the CPU; then the edge's CPU
(utime+stime from /proc/<pid>/stat) over --hold seconds with every connection idle. The client
processes answer WebSocket pings and read heartbeats (they count what the server closed), each
holds at most 6,000 sockets (the per-process descriptor limit here is 20,000); they bind to
127.0.1.x source addresses so that ephemeral ports never run out.

A benchmark, not a test: it prints a table (and --json FILE); nothing is asserted.

  tests/bench/idle.py --bin before=/path/to/main/herald --bin after=build/release/herald
"""

import argparse
import base64
import http.client
import json
import os
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

TOPICS = 100
PER_PROC_MAX = 6000
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(*a):
    print("idle:", *a, file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- client side (one process per batch: idle.py --client KIND N PORT FIRST_SRC) ----

def ws_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    hdr = bytes([0x80 | opcode])
    if n < 126:
        hdr += bytes([0x80 | n])
    elif n < 65536:
        hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Conn:
    __slots__ = ("s", "kind", "buf", "up", "i", "next")

    def __init__(self, s, kind, i):
        self.s, self.kind, self.i, self.buf, self.up, self.next = s, kind, i, b"", False, ""


def ws_frames(c):
    """Parse whole server frames from c.buf: answer pings; return False when it closed."""
    while len(c.buf) >= 2:
        b0, b1 = c.buf[0], c.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if len(c.buf) < 4:
                return True
            n, off = struct.unpack("!H", c.buf[2:4])[0], 4
        elif n == 127:
            if len(c.buf) < 10:
                return True
            n, off = struct.unpack("!Q", c.buf[2:10])[0], 10
        if len(c.buf) < off + n:
            return True
        payload, c.buf = c.buf[off:off + n], c.buf[off + n:]
        op = b0 & 0x0F
        if op == 0x9:
            c.s.sendall(ws_frame(0xA, payload))
        elif op == 0x8:
            return False
    return True


def client_main(kind, n, port, first_src):
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    conns, pending, failed, closed = [], 0, 0, 0
    srcs = ["127.0.1.%d" % (first_src + k) for k in range(8)]

    def request(i, since=""):
        t = "t%d" % (i % TOPICS)
        if kind == "sse":
            return ("GET /events/%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
                    % t).encode()
        if kind == "poll":  # the default timeout (25 s): answered empty, asked again from next
            return ("GET /poll/%s%s HTTP/1.1\r\nHost: x\r\n\r\n" % (
                t, "?since=" + since if since else "")).encode()
        key = base64.b64encode(os.urandom(16)).decode()
        return ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: herald.v1\r\n\r\n" % key).encode()

    def on_read(c):
        nonlocal pending, failed, closed
        try:
            d = c.s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            d = b""
        if not d:
            sel.unregister(c.s)
            c.s.close()
            if c.up:
                closed += 1
            else:
                pending -= 1
                failed += 1
            return
        if c.kind == "sse":
            if not c.up:
                c.up = d.startswith(b"HTTP/1.1 200")
                pending -= 1
                failed += not c.up
            return  # heartbeats, discarded
        c.buf += d
        if c.kind == "ws" and not c.up:
            if b"\r\n\r\n" not in c.buf:
                return
            head, c.buf = c.buf.split(b"\r\n\r\n", 1)
            pending -= 1
            if not head.startswith(b"HTTP/1.1 101"):
                failed += 1
                return
            c.up = True
            c.s.sendall(ws_frame(0x1, json.dumps(
                {"type": "subscribe", "topic": "t%d" % (c.i % TOPICS)}).encode()))
        if c.kind == "ws" and not ws_frames(c):
            closed += 1
            sel.unregister(c.s)
            c.s.close()
        elif c.kind == "poll":  # whole answers: ask again on the same connection
            while b"\r\n\r\n" in c.buf:
                head, rest = c.buf.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                n = int(m.group(1)) if m else 0
                if len(rest) < n:
                    break
                try:  # as a client does: on from the answer's cursor
                    c.next = json.loads(rest[:n])["next"] or c.next
                except (ValueError, KeyError):
                    pass
                c.buf = rest[n:]
                c.s.sendall(request(c.i, c.next))

    i = 0
    while i < n or pending:
        while i < n and pending < 200:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((srcs[i % len(srcs)], 0))
            s.connect(("127.0.0.1", port))
            s.sendall(request(i))
            s.setblocking(False)
            c = Conn(s, kind, i)
            conns.append(c)
            sel.register(s, selectors.EVENT_READ, c)
            if kind == "poll":  # no answer until an event or the timeout: sent is up
                c.up = True
            else:
                pending += 1
            i += 1
            if kind == "poll" and i % 200 == 0:
                break  # paced like the others: a burst would overflow the listen backlog
        for key, _ in sel.select(1.0 if pending else 0.05):
            on_read(key.data)
    print("ready %d %d" % (sum(c.up for c in conns) - closed, failed), flush=True)
    signal.signal(signal.SIGUSR1, lambda *_: print("closed %d" % closed, flush=True))
    while True:
        for key, _ in sel.select(1.0):
            on_read(key.data)


# ---- controller ----

procs = []


def spawn(argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("timed out waiting for " + what)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / CLK  # utime, stime


def rss(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE


def metric_conns(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for m in re.finditer(r'^herald_connections\{transport="(\w+)"\} (\d+)', body, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def publish_one_each(rport, port):
    """One event on every topic (FCALL herald_publish, once the edge loaded the library): idle
    topics have a stream, so a long-poller's `next` is a cursor, as it is for a real client."""
    def ready():
        try:
            return urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port,
                                          timeout=5).status == 200
        except OSError:
            return False
    wait_until(ready, 30, "herald ready")
    with socket.create_connection(("127.0.0.1", rport), 5) as r:
        out = b""
        for t in range(TOPICS):
            args = [b"FCALL", b"herald_publish", b"1", b"t%d" % t, b"x"]
            out += b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x)
                                                   for x in args)
        r.sendall(out)
        buf, replies = b"", 0
        while replies < TOPICS:
            d = r.recv(65536)
            if not d:
                raise RuntimeError("redis closed")
            buf += d
            while b"\r\n" in buf:
                line, rest = buf.split(b"\r\n", 1)
                if line[:1] == b"-":
                    raise RuntimeError("publish failed: %r" % line)
                if line[:1] == b"$":  # a bulk string: its line follows
                    if b"\r\n" not in rest:
                        break
                    rest = rest.split(b"\r\n", 1)[1]
                buf, replies = rest, replies + 1


def measure(name, binary, a, tmp):
    res = {"name": name, "bin": binary}
    rport, port = free_port(), free_port()
    redis = spawn(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
    wait_until(lambda: socket.create_connection(("127.0.0.1", rport), 1).close() is None, 10,
               "redis")
    logf = open(os.path.join(tmp, name + ".log"), "wb")
    herald = spawn([binary, "--listen", "127.0.0.1:%d" % port, "--redis",
                    "redis://127.0.0.1:%d" % rport, "--threads", str(a.threads),
                    "--max-connections", "100000",
                    "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=logf,
                   preexec_fn=raise_nofile)
    wait_until(lambda: metric_conns(port) is not None, 20, "herald /metrics")
    publish_one_each(rport, port)
    pid = herald.pid
    time.sleep(1)
    c0 = cpu_s(pid)
    time.sleep(a.base)
    res["cpu_base_pct"] = 100 * (cpu_s(pid) - c0) / a.base
    clients = []
    per = a.conns // len(a.kinds)
    prev = rss(pid)
    res["rss_start"] = prev
    for kind in a.kinds:
        got = 0
        for j in range(0, per, PER_PROC_MAX):
            n = min(PER_PROC_MAX, per - j)
            p = spawn([sys.executable, os.path.abspath(__file__), "--client", kind, str(n),
                       str(port), str(1 + 8 * len(clients))], stdout=subprocess.PIPE, text=True)
            clients.append(p)
            line = p.stdout.readline().split()
            if not line or line[0] != "ready":
                raise RuntimeError("%s client failed: %r" % (kind, line))
            got += int(line[1])
            if int(line[2]):
                log(name, kind, "refused or failed:", line[2])
        wait_until(lambda: metric_conns(port).get(kind, 0) >= got, 60, kind + " connections")
        time.sleep(a.settle)
        now = rss(pid)
        res[kind] = {"conns": got, "rss_bytes_per_conn": (now - prev) / max(got, 1)}
        c0 = cpu_s(pid)  # this transport's share: the CPU with it minus that before it
        time.sleep(a.step_hold)
        res[kind]["cpu_pct_with"] = 100 * (cpu_s(pid) - c0) / a.step_hold
        log(name, kind, got, "connections, %.0f B resident each" % ((now - prev) / max(got, 1)))
        prev = now
    res["conns"] = sum(res[k]["conns"] for k in a.kinds)
    res["rss_total_delta"] = prev - res["rss_start"]
    c0 = cpu_s(pid)
    time.sleep(a.hold)
    res["cpu_idle_pct"] = 100 * (cpu_s(pid) - c0) / a.hold
    closed = 0
    for p in clients:
        p.send_signal(signal.SIGUSR1)
        closed += int(p.stdout.readline().split()[1])
    res["closed_by_server"] = closed
    res["still_open"] = sum(metric_conns(port).values())
    log(name, "CPU %.2f %% of a core idle with %d connections (%.2f %% with none), "
        "%d closed by the server" % (res["cpu_idle_pct"], res["conns"], res["cpu_base_pct"],
                                     closed))
    for p in clients + [herald, redis]:
        stop(p)
    logf.close()
    return res


def table(results, a):
    kib = lambda v: "%.2f" % (v / 1024)
    rows = [("", ) + tuple(r["name"] for r in results)]
    rows.append(("connections open (%s)" % "/".join(a.kinds),) + tuple(
        "/".join("%d" % r[k]["conns"] for k in a.kinds) for r in results))
    rows.append(("edge CPU, no client (% of a core)",) + tuple(
        "%.2f" % r["cpu_base_pct"] for r in results))
    rows.append(("edge CPU, all idle, %d s (%% of a core)" % a.hold,) + tuple(
        "%.2f" % r["cpu_idle_pct"] for r in results))
    for k, before in zip(a.kinds, [None] + a.kinds[:-1]):
        rows.append(("  of which %s, %d s (%% of a core)" % (k, a.step_hold),) + tuple(
            "%.2f" % (r[k]["cpu_pct_with"] - (r[before]["cpu_pct_with"] if before else
                                               r["cpu_base_pct"])) for r in results))
    for k in a.kinds:
        rows.append(("RSS per idle %s connection (KiB)" % k,) + tuple(
            kib(r[k]["rss_bytes_per_conn"]) for r in results))
    rows.append(("RSS growth, all connections (MiB)",) + tuple(
        "%.1f" % (r["rss_total_delta"] / 1048576) for r in results))
    rows.append(("closed by the server during the hold",) + tuple(
        str(r["closed_by_server"]) for r in results))
    out = ["| " + " | ".join(r) + " |" for r in rows]
    out.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        kind, n, port, src = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        client_main(kind, n, port, src)
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True, metavar="NAME=PATH",
                    help="a herald binary to measure (repeat: measured in this order)")
    # 18,000: at the 20,000 descriptors a process may have here, the edge serves at most 18,864
    # clients (herald_connection_limit: the rest of RLIMIT_NOFILE is its reserve and sockets
    # kept for requests)
    ap.add_argument("--conns", type=int, default=18000,
                    help="connections, shared evenly by the transports")
    ap.add_argument("--transports", default="sse,ws,poll",
                    help="which transports, in this order (comma-separated: sse, ws, poll)")
    ap.add_argument("--threads", type=int, default=1, help="herald --threads")
    ap.add_argument("--base", type=float, default=10, help="seconds of CPU with no client")
    ap.add_argument("--hold", type=float, default=30, help="seconds of CPU with all idle")
    ap.add_argument("--step-hold", type=float, default=30,
                    help="seconds of CPU after each transport's batch (its share)")
    ap.add_argument("--settle", type=float, default=3, help="seconds before reading the RSS")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    a.kinds = [k for k in a.transports.split(",") if k]
    if not a.kinds or any(k not in ("sse", "ws", "poll") for k in a.kinds):
        ap.error("--transports: a comma-separated list of sse, ws, poll")
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="herald-idle-") as tmp:
            for b in a.bin:
                name, _, path = b.partition("=")
                results.append(measure(name, path, a, tmp))
    finally:
        for p in procs:
            stop(p)
    print(table(results, a))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
