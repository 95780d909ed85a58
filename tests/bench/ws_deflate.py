#!/usr/bin/env python3
"""What permessage-deflate costs a Herald edge: WebSocket fan-out with and without it.

One private redis-server on a free loopback port, then for every round a fresh edge
(`--threads 1`, so its VmHWM belongs to that round alone), N raw-socket WebSocket clients
(subprotocol herald.v1) that either offer `permessage-deflate; client_max_window_bits` or do
not, all subscribed to one topic. E events (about 200-byte JSON-ish payloads that repeat their
keys and some values) are published through `FCALL herald_publish 1 <topic> <payload>`,
pipelined in small batches at a fixed pace on a raw socket, and the run waits until every
client got every event. Every message is checked: a client that sees anything but the next
event in publish order (a gap, a duplicate, a reorder, a gap notice, an error, a close) stops
the benchmark with an error, and at the end each client's chain of event IDs must equal the
chain of IDs Redis returned to the publisher.

Rounds are interleaved (off, on, off, on, ...) because the machine may be shared and noisy;
the report gives the median of each mode and the ratio on/off.

Measured over the delivery phase (first publish to last event at the last client):
  edge CPU       utime+stime of the edge process (/proc/<pid>/stat), all threads
  wire bytes     bytes the clients read from their sockets (WebSocket frames, no TCP/IP)
  peak RSS       VmHWM of the edge (/proc/<pid>/status) at the end of the round
  load generator CPU of this process (clients + publisher, one thread), to show whether the
                 generator rather than the edge was the bottleneck (near 100% of a core: it was)

    python3 tests/bench/ws_deflate.py                    # 200 clients, 2000 events, 3+3 rounds
    python3 tests/bench/ws_deflate.py --clients 50 --events 500 --rounds 1 --no-readme

Python 3 standard library only; it reuses tests/integration/harness.py (processes, RESP) and
wsclient.py (the handshake). Loopback only.
"""

import argparse
import datetime
import json
import os
import platform
import random
import resource
import selectors
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

import harness  # noqa: E402
import wsclient  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
OFFER = "permessage-deflate; client_max_window_bits"
README = os.path.join(HERE, "README.md")
SECTION = "## permessage-deflate"


class BenchError(AssertionError):
    """The run is not valid (a lost, duplicated or reordered event, a dead edge, ...)."""


# ------------------------------------------------------------------------------------------
# /proc
# ------------------------------------------------------------------------------------------

def proc_cpu(pid):
    """utime+stime of a process (all threads), seconds."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError("no %s in /proc/%d/status" % (key, pid))


def self_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------------------------------
# Payloads
# ------------------------------------------------------------------------------------------

SYMS = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK", "WAYNE", "WONKA"]
VENUES = ["XNAS", "XNYS", "BATS", "ARCX"]
WORDS = ["fill", "partial", "open", "auction", "close", "odd-lot", "block", "sweep", "cross"]


def make_payloads(n, size, seed):
    """n distinct ASCII payloads of exactly `size` bytes: a JSON object whose keys repeat in
    every event, a few values drawn from small sets, some numbers and a random hex id (so
    deflate has both redundancy and entropy to work with)."""
    rng = random.Random(seed)
    t0 = 1767225600000
    out = []
    for i in range(n):
        head = ('{"seq":%d,"kind":"trade","sym":"%s","venue":"%s","side":"%s","price":%.2f,'
                '"qty":%d,"ts":%d,"trade_id":"%016x","note":"' % (
                    i, rng.choice(SYMS), rng.choice(VENUES), rng.choice(("buy", "sell")),
                    rng.uniform(10, 500), rng.randrange(1, 100) * 100,
                    t0 + i * 7 + rng.randrange(7), rng.getrandbits(64)))
        note = ""
        while len(head) + len(note) + 2 < size:
            note += rng.choice(WORDS) + " "
        body = head + note[:size - len(head) - 2] + '"}'
        if len(body) != size:
            raise BenchError("payload size %d, want %d: head too long" % (len(body), size))
        out.append(body)
    return out


# ------------------------------------------------------------------------------------------
# Publisher: pipelined FCALLs on a raw socket, replies parsed incrementally
# ------------------------------------------------------------------------------------------

class Publisher:
    def __init__(self, port, topic):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.topic = topic.encode()
        self.buf = bytearray()
        self.ids = []
        self.crc = 0

    def send(self, payloads):
        self.sock.sendall(b"".join(harness.RedisClient.encode(
            [b"FCALL", b"herald_publish", b"1", self.topic, p.encode()]) for p in payloads))

    def on_readable(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise BenchError("redis closed the publisher connection")
        self.buf += chunk
        b = self.buf
        pos = 0
        while True:
            i = b.find(b"\r\n", pos)
            if i < 0:
                break
            t = b[pos]
            if t == 0x24:  # '$'
                n = int(b[pos + 1:i])
                if n < 0:
                    raise BenchError("FCALL herald_publish returned nil")
                if len(b) < i + 2 + n + 2:
                    break
                sid = bytes(b[i + 2:i + 2 + n])
                self.ids.append(sid)
                self.crc = zlib.crc32(sid, self.crc)
                pos = i + 2 + n + 2
            else:
                raise BenchError("unexpected reply to FCALL herald_publish: %r" % (
                    bytes(b[pos:i])[:200],))
        del b[:pos]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------------------------------
# Subscriber: a WebSocket client whose handshake is wsclient's, then a lean frame reader
# ------------------------------------------------------------------------------------------

class Subscriber:
    __slots__ = ("idx", "ws", "sock", "buf", "inflater", "no_ctx", "frag", "frag_rsv1",
                 "n", "crc", "epoch", "wire", "app", "zframes", "frames", "done")

    def __init__(self, idx, ws):
        self.idx = idx
        self.ws = ws
        self.sock = ws.sock
        self.buf = bytearray(ws._buf)  # bytes after the last message wsclient parsed
        self.inflater = ws._inflater
        self.no_ctx = bool(ws.deflate and ws._no_ctx)
        self.frag = None
        self.frag_rsv1 = False
        self.n = 0          # events received
        self.crc = 0        # crc32 chain of the stream IDs received
        self.epoch = None
        self.wire = 0       # bytes read from the socket
        self.app = 0        # message bytes after inflate
        self.zframes = 0    # data frames with RSV1 (compressed)
        self.frames = 0     # data frames
        self.done = False

    def fail(self, what):
        raise BenchError("client %d after %d events: %s" % (self.idx, self.n, what))

    def feed(self, chunk, now, run):
        self.wire += len(chunk)
        buf = self.buf
        buf += chunk
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            h = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                h = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                h = 10
            if b1 & 0x80:
                self.fail("masked frame from the server")
            end = pos + h + n
            if end > size:
                break
            payload = bytes(buf[pos + h:end])
            pos = end
            op = b0 & 0x0F
            if op == wsclient.OP_TEXT or op == wsclient.OP_CONT:
                self.frames += 1
                if op == wsclient.OP_TEXT:
                    if self.frag is not None:
                        self.fail("new message inside a fragmented one")
                    self.frag_rsv1 = bool(b0 & 0x40)
                    if self.frag_rsv1:
                        self.zframes += 1
                    if b0 & 0x80:
                        self.message(payload, now, run)
                    else:
                        self.frag = [payload]
                else:
                    if self.frag is None:
                        self.fail("continuation without a message")
                    self.frag.append(payload)
                    if b0 & 0x80:
                        data = b"".join(self.frag)
                        self.frag = None
                        self.message(data, now, run)
            elif op == wsclient.OP_PING:
                self.sock.sendall(wsclient.encode_frame(wsclient.OP_PONG, payload))
            elif op == wsclient.OP_PONG:
                pass
            elif op == wsclient.OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.fail("server closed the connection (code %r, %r)" % (code, payload[2:]))
            else:
                self.fail("unexpected opcode %#x" % op)
        if pos:
            del buf[:pos]

    def message(self, data, now, run):
        if self.frag_rsv1:
            if self.inflater is None:
                self.fail("RSV1 set without permessage-deflate")
            data = self.inflater.decompress(data + b"\x00\x00\xff\xff")
            if self.no_ctx:
                self.inflater = zlib.decompressobj(-15)
        self.app += len(data)
        m = json.loads(data)
        k = self.n
        if m.get("type") != "event":
            self.fail("expected event %d, got %r" % (k, m))
        if self.done:
            self.fail("an event after the last one (duplicate?): %r" % (m,))
        got = m.get("data")
        if got != run.payloads[k]:
            seq = None
            try:
                seq = json.loads(got)["seq"]
            except (TypeError, ValueError, KeyError):
                pass
            kind = "gap" if isinstance(seq, int) and seq > k else "duplicate or reorder"
            self.fail("%s: expected seq %d, got seq %r (%r)" % (kind, k, seq, m))
        cursor = m.get("id") or ""
        sid, _, epoch = cursor.rpartition("_")
        if not sid:
            self.fail("malformed cursor %r" % cursor)
        if self.epoch is None:
            self.epoch = epoch
        elif epoch != self.epoch:
            self.fail("epoch changed from %r to %r" % (self.epoch, epoch))
        self.crc = zlib.crc32(sid.encode(), self.crc)
        run.lat.append(now - run.sent_at[k])
        self.n = k + 1
        if self.n == run.events:
            self.done = True
            run.done += 1
            run.last_at = now


# ------------------------------------------------------------------------------------------
# One round
# ------------------------------------------------------------------------------------------

class Round:
    pass


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def run_round(args, redis, payloads, index, deflate, log):
    mode = "on" if deflate else "off"
    # same length in both modes, so the messages are the same size before compression
    topic = "bench-deflate-r%d-%s" % (index, "pmd" if deflate else "raw")
    edge = harness.Herald(redis.port, "bench-edge", ["--threads", "1"] + args.edge_arg)
    subs = []
    pub = None
    try:
        pid = edge.proc.pid
        rss_idle = proc_status_kb(pid, "VmRSS")
        extensions = set()
        wss = []
        for i in range(args.clients):
            ws = wsclient.WSClient(edge.port, deflate=deflate, timeout=20)
            wss.append(ws)
            if ws.protocol != "herald.v1":
                raise BenchError("client %d: subprotocol %r" % (i, ws.protocol))
            if ws.deflate != deflate:
                raise BenchError("client %d: offered deflate=%s, negotiated %r" % (
                    i, deflate, ws.extensions))
            extensions.add(ws.extensions)
        for i, ws in enumerate(wss):
            ws.send_json({"type": "subscribe", "topic": topic, "id": i})
        for i, ws in enumerate(wss):
            m = ws.recv_json(20)
            if m != {"type": "subscribed", "topic": topic, "id": i}:
                raise BenchError("client %d: expected subscribed, got %r" % (i, m))
            if ws._messages:
                raise BenchError("client %d: unexpected messages %r" % (i, ws.pending()))
            subs.append(Subscriber(i, ws))
        with redis.client() as r:
            harness.wait_live_subscribed(r, topic, 1, timeout=20)
        rss_subscribed = proc_status_kb(pid, "VmRSS")

        run = Round()
        run.events = args.events
        run.payloads = payloads
        run.sent_at = [0.0] * args.events
        run.lat = []
        run.done = 0
        run.last_at = None
        pub = Publisher(redis.port, topic)
        sel = selectors.DefaultSelector()
        for s in subs:
            sel.register(s.sock, selectors.EVENT_READ, s)
        sel.register(pub.sock, selectors.EVENT_READ, None)
        interval = args.batch / float(args.rate)
        sent = 0
        max_late = 0.0

        cpu_edge0 = proc_cpu(pid)
        cpu_redis0 = proc_cpu(redis.proc.pid)
        cpu_self0 = self_cpu()
        t0 = time.monotonic()
        next_send = t0
        hard_end = t0 + args.events / float(args.rate) + args.timeout
        last_check = t0
        while run.done < len(subs) or len(pub.ids) < args.events:
            now = time.monotonic()
            if sent < args.events and now >= next_send:
                max_late = max(max_late, now - next_send)
                k = min(args.batch, args.events - sent)
                for j in range(sent, sent + k):
                    run.sent_at[j] = now
                pub.send(payloads[sent:sent + k])
                sent += k
                next_send += interval
            if now > hard_end:
                behind = sorted(subs, key=lambda s: s.n)[:5]
                raise BenchError(
                    "not every client got every event within %.0fs: %d/%d clients done, "
                    "%d/%d published (%d replies); slowest: %s" % (
                        hard_end - t0, run.done, len(subs), sent, args.events, len(pub.ids),
                        ", ".join("client %d at %d" % (s.idx, s.n) for s in behind)))
            if now - last_check > 1.0:
                last_check = now
                if not edge.alive():
                    raise BenchError("the edge died during delivery:\n%s" % edge.log())
            timeout = max(0.0, next_send - now) if sent < args.events else 0.5
            for key, _ in sel.select(timeout):
                s = key.data
                if s is None:
                    pub.on_readable()
                    continue
                try:
                    chunk = s.sock.recv(262144)
                except OSError as e:
                    s.fail("socket error %r" % (e,))
                if not chunk:
                    s.fail("connection closed by the edge")
                s.feed(chunk, time.monotonic(), run)
        t1 = time.monotonic()
        cpu_edge = proc_cpu(pid) - cpu_edge0
        cpu_redis = proc_cpu(redis.proc.pid) - cpu_redis0
        cpu_self = self_cpu() - cpu_self0
        hwm = proc_status_kb(pid, "VmHWM")
        rss_end = proc_status_kb(pid, "VmRSS")

        # nothing more may arrive (a duplicate), and every ID chain must match Redis's
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            for key, _ in sel.select(0.05):
                s = key.data
                if s is None:
                    pub.on_readable()
                    continue
                chunk = s.sock.recv(262144)
                if not chunk:
                    s.fail("connection closed by the edge")
                s.feed(chunk, time.monotonic(), run)
        sel.close()
        if len(pub.ids) != args.events:
            raise BenchError("%d FCALL replies for %d events" % (len(pub.ids), args.events))
        for s in subs:
            if s.n != args.events or s.crc != pub.crc:
                raise BenchError("client %d: %d events, ID chain %s the published one" % (
                    s.idx, s.n, "matches" if s.crc == pub.crc else "differs from"))
            if s.frag is not None:
                s.fail("a fragmented message was left open")
        if not edge.alive():
            raise BenchError("the edge died:\n%s" % edge.log())

        deliveries = len(subs) * args.events
        rd = Round()
        rd.index = index
        rd.mode = mode
        rd.extensions = sorted(x or "(none)" for x in extensions)
        rd.wall = t1 - t0
        rd.publish_span = (run.sent_at[-1] - t0) if args.events else 0.0
        rd.max_late = max_late
        rd.cpu_edge = cpu_edge
        rd.cpu_per_1k = cpu_edge * 1000.0 / (deliveries / 1000.0)  # ms per 1,000 deliveries
        rd.edge_util = cpu_edge / rd.wall * 100.0
        rd.cpu_self = cpu_self
        rd.self_util = cpu_self / rd.wall * 100.0
        rd.cpu_redis = cpu_redis
        rd.wire_per_event = sum(s.wire for s in subs) / float(deliveries)
        rd.app_per_event = sum(s.app for s in subs) / float(deliveries)
        rd.zframes = sum(s.zframes for s in subs)
        rd.frames = sum(s.frames for s in subs)
        rd.hwm_mib = hwm / 1024.0
        rd.rss_idle_mib = rss_idle / 1024.0
        rd.rss_subscribed_mib = rss_subscribed / 1024.0
        rd.rss_end_mib = rss_end / 1024.0
        rd.lat_p50 = percentile(run.lat, 50) * 1000.0
        rd.lat_p99 = percentile(run.lat, 99) * 1000.0
        rd.drain = (run.last_at - run.sent_at[-1]) * 1000.0
        log("round %d deflate=%-3s edge %.2fs CPU (%.2f ms/1k deliveries, %.0f%% of a core), "
            "%.1f B/event/client on the wire (%.1f B after inflate, %d/%d frames compressed), "
            "VmHWM %.1f MiB, wall %.2fs, latency p50 %.1f ms p99 %.1f ms, "
            "load generator %.2fs CPU (%.0f%%), redis %.2fs" % (
                index, mode, rd.cpu_edge, rd.cpu_per_1k, rd.edge_util, rd.wire_per_event,
                rd.app_per_event, rd.zframes, rd.frames, rd.hwm_mib, rd.wall, rd.lat_p50,
                rd.lat_p99, rd.cpu_self, rd.self_util, rd.cpu_redis))
        return rd
    finally:
        for s in subs:
            try:
                s.sock.setblocking(True)
                s.ws.close()
            except OSError:
                pass
        if pub is not None:
            pub.close()
        code = edge.stop()
        if code not in (0, None):
            sys.stderr.write("edge exited with %r:\n%s\n" % (code, edge.log()))
        rep = edge.sanitizer_report()
        if rep:
            sys.stderr.write(rep)
        shutil.rmtree(edge.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------

METRICS = [
    # (attribute, label, format)
    ("cpu_edge", "edge CPU, delivery phase (s)", "%.2f"),
    ("cpu_per_1k", "edge CPU per 1,000 deliveries (ms)", "%.3f"),
    ("edge_util", "edge CPU / wall time (% of one core)", "%.0f"),
    ("wire_per_event", "bytes on the wire per event per client", "%.1f"),
    ("app_per_event", "message bytes per event per client (after inflate)", "%.1f"),
    ("hwm_mib", "edge peak RSS, VmHWM (MiB)", "%.1f"),
    ("rss_subscribed_mib", "edge RSS with clients subscribed, before publishing (MiB)", "%.1f"),
    ("wall", "delivery phase wall time (s)", "%.2f"),
    ("cpu_self", "load generator CPU (s)", "%.2f"),
    ("self_util", "load generator CPU / wall time (% of one core)", "%.0f"),
    ("cpu_redis", "redis-server CPU (s)", "%.2f"),
]


def paired_ratios(rounds, attr):
    """on/off of `attr` for each round (each on round against the off round just before)."""
    out = []
    for r in rounds:
        if r.mode == "on":
            off = [x for x in rounds if x.mode == "off" and x.index == r.index]
            if off and getattr(off[0], attr):
                out.append(getattr(r, attr) / getattr(off[0], attr))
    return out


def headline(args, rounds):
    def med(mode, attr):
        return statistics.median(getattr(r, attr) for r in rounds if r.mode == mode)
    cpu = med("on", "cpu_per_1k") / med("off", "cpu_per_1k")
    wire = med("off", "wire_per_event") / med("on", "wire_per_event")
    extra = med("on", "hwm_mib") - med("off", "hwm_mib")
    return ("In short (medians): with %d subscribers, permessage-deflate multiplied the edge's "
            "CPU per delivery by %.2f (%.1f us more per delivery), cut the bytes on the wire "
            "by a factor of %.1f, and added %.1f MiB of peak RSS (about %.0f KiB per "
            "connection)." % (
                args.clients, cpu, med("on", "cpu_per_1k") - med("off", "cpu_per_1k"), wire,
                extra, extra * 1024.0 / args.clients))


def summary_table(rounds):
    off = [r for r in rounds if r.mode == "off"]
    on = [r for r in rounds if r.mode == "on"]
    lines = ["| median of %d+%d rounds | deflate off | deflate on | on / off |" % (len(off), len(on)),
             "| --- | ---: | ---: | ---: |"]
    for attr, label, fmt in METRICS:
        a = statistics.median(getattr(r, attr) for r in off)
        b = statistics.median(getattr(r, attr) for r in on)
        ratio = ("%.2f" % (b / a)) if a else "n/a"
        lines.append("| %s | %s | %s | %s |" % (label, fmt % a, fmt % b, ratio))
    return "\n".join(lines)


def rounds_table(rounds):
    lines = ["| round | deflate | edge CPU (s) | ms / 1k deliveries | B / event / client | "
             "VmHWM (MiB) | wall (s) | p99 (ms) | load gen CPU (%) |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rounds:
        lines.append("| %d | %s | %.2f | %.3f | %.1f | %.1f | %.2f | %.1f | %.0f |" % (
            r.index, r.mode, r.cpu_edge, r.cpu_per_1k, r.wire_per_event, r.hwm_mib, r.wall,
            r.lat_p99, r.self_util))
    return "\n".join(lines)


def sh(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return "unknown (%s)" % e


def environment(args):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        built = datetime.datetime.fromtimestamp(os.path.getmtime(harness.HERALD_BIN),
                                                datetime.timezone.utc)
        built = built.strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        built = "unknown"
    lws = sh(["pkg-config", "--modversion", "libwebsockets"]).rstrip("-") or "4.1.6"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "load": sh(["cat", "/proc/loadavg"]),
        "herald": args.herald_rev,
        "built": built,
        "redis": sh([harness.REDIS_SERVER, "--version"]),
        "lws": lws,
        "python": platform.python_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def report(args, env, rounds, command):
    ext_on = sorted({x for r in rounds if r.mode == "on" for x in r.extensions})
    zf = sum(r.zframes for r in rounds if r.mode == "on")
    fr = sum(r.frames for r in rounds if r.mode == "on")
    out = [SECTION, "",
           "`tests/bench/ws_deflate.py`: one edge (`--threads 1 %s`), %d WebSocket clients on "
           "one topic, %d events of %d bytes published with pipelined "
           "`FCALL herald_publish` at %d events/s (batches of %d), every event checked at "
           "every client (order, no gap, ID chain equal to what Redis returned). Rounds "
           "interleaved off, on, off, on, ...; a fresh edge per round. Edge CPU is "
           "utime+stime from `/proc/<pid>/stat` over the delivery phase (first publish to "
           "last event at the last client); wire bytes are what the clients read from their "
           "sockets (frames included, TCP/IP not); peak RSS is the edge's VmHWM." % (
               " ".join(args.edge_arg), args.clients, args.events, args.size, args.rate,
               args.batch),
           "",
           "Offer `Sec-WebSocket-Extensions: %s`; the edge answered `%s` (%d of %d data "
           "frames compressed). Without the offer the 101 carries no extension." % (
               OFFER, "`, `".join(ext_on), zf, fr),
           "",
           headline(args, rounds),
           "",
           summary_table(rounds),
           "",
           "Per-round ratios on/off (each on round against the off round just before it): "
           "edge CPU per delivery %s; peak RSS %s." % (
               ", ".join("%.2f" % x for x in paired_ratios(rounds, "cpu_per_1k")),
               ", ".join("%.2f" % x for x in paired_ratios(rounds, "hwm_mib"))),
           "",
           "The load generator is one thread: near 100%% of a core it, not the edge, would set "
           "the pace. The p99 column below is publish-to-client latency (it includes the "
           "Python clients' own parsing, inflating and JSON work); it is not a result, only a "
           "sign of a disturbed round: on a shared machine a neighbour's burst makes the edge "
           "fall behind for a while (the wall time grows past the %g s publishing schedule), "
           "which hardly moves CPU per delivery but dominates latency." % (
               args.events / float(args.rate)),
           "",
           "Every round:",
           "",
           rounds_table(rounds),
           "",
           "- command (from the repository root): `%s`" % command,
           "- machine: %s CPUs (`nproc`), %s, Linux %s; load average at the end `%s`" % (
               env["nproc"], env["cpu"], env["kernel"], env["load"]),
           "- versions: herald `%s` (`git describe --dirty` when the run started; binary "
           "built %s, RelWithDebInfo), %s, libwebsockets %s, zlib %s (client side: "
           "Python %s)" % (env["herald"], env["built"], env["redis"], env["lws"], env["zlib"],
                           env["python"]),
           "- date: %s" % env["date"],
           ""]
    return "\n".join(out)


def write_readme(section):
    head = ("# Benchmarks\n\n"
            "Measurements of the edge on loopback. Each script prints its table and rewrites its "
            "own section below; the numbers come from a shared, noisy machine, so compare the "
            "ratios of one run rather than absolute figures across runs.\n\n")
    try:
        with open(README) as f:
            text = f.read()
    except FileNotFoundError:
        text = head
    lines = text.split("\n")
    start = next((i for i, l in enumerate(lines) if l.strip() == SECTION), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        rest = "\n".join(lines[end:])
        text = "\n".join(lines[:start]) + ("\n" if start else "") + section + \
            ("\n" + rest if rest else "")
    with open(README, "w") as f:
        f.write(text.rstrip("\n") + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200, help="WebSocket clients (200)")
    ap.add_argument("--events", type=int, default=2000, help="events per round (2000)")
    ap.add_argument("--size", type=int, default=200, help="payload bytes (200)")
    ap.add_argument("--rate", type=int, default=200, help="events published per second (200)")
    ap.add_argument("--batch", type=int, default=10, help="FCALLs per pipelined batch (10)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each mode (3)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds allowed after the publishing schedule ends (60)")
    ap.add_argument("--seed", type=int, default=1, help="payload generator seed (1)")
    ap.add_argument("--herald", default=os.path.join(SRC, "build-bench", "herald"),
                    help="edge binary (build-bench/herald)")
    ap.add_argument("--edge-arg", action="append", default=None,
                    help="extra edge argument, repeatable (default: --ingest off, so the "
                         "raw-ingest PSUBSCRIBE * does not add the same work to both modes)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite tests/bench/README.md")
    args = ap.parse_args()
    if args.edge_arg is None:
        args.edge_arg = ["--ingest", "off"]
    if args.clients < 1 or args.events < 1 or args.rounds < 1 or args.rate < 1 or args.batch < 1:
        ap.error("--clients, --events, --rounds, --rate and --batch must be positive")
    harness.HERALD_BIN = os.path.abspath(args.herald)
    if not os.access(harness.HERALD_BIN, os.X_OK):
        ap.error("%s is not executable; build it with cmake -S . -B build-bench "
                 "-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERALD_TESTS=OFF && "
                 "cmake --build build-bench" % harness.HERALD_BIN)
    need = args.clients + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 4096)), hard))

    args.herald_rev = sh(["git", "-C", SRC, "describe", "--always", "--dirty", "--abbrev=12"])
    argv0 = os.path.relpath(os.path.abspath(sys.argv[0]), SRC)
    command = "python3 " + shlex.join([argv0] + sys.argv[1:])
    log = harness.log
    payloads = make_payloads(args.events, args.size, args.seed)
    log("ws_deflate: %d clients, %d events x %d bytes at %d/s, %d rounds of each mode, edge %s" % (
        args.clients, args.events, args.size, args.rate, args.rounds, harness.HERALD_BIN))
    rounds = []
    redis = harness.RedisServer()
    try:
        for i in range(args.rounds):
            for deflate in (False, True):
                rounds.append(run_round(args, redis, payloads, i + 1, deflate, log))
    finally:
        redis.close()
    env = environment(args)
    section = report(args, env, rounds, command)
    print()
    print(section)
    if not args.no_readme:
        write_readme(section)
        log("wrote %s" % os.path.relpath(README, SRC))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        sys.stderr.write("ws_deflate: FAILED: %s\n" % e)
        sys.exit(1)
