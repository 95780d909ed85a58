"""A subscriber that stops reading and reads again gets every event exactly once, in order.

This targets the edge's "send at once" path (edge/cwrite.c push_now): the last live event of a
broker batch is send(2)-ed straight to each subscriber's socket; what the socket does not take
goes to libwebsockets, which sends it on POLLOUT, and later events wait in the client's queue.
The edge caps the kernel send buffer (--send-buffer) and its queue bounds are far above what is
sent, so nobody is cut off. One paused subscriber (SO_RCVBUF 4096, MSS 536) and NORMAL ones
that read all the time share a topic; events of PAYLOAD bytes (an index, then a hash-chain body
of their own) are published one at a time, so that each is its own broker batch.

Phase 1: PAUSED_N events while the paused client reads nothing; the normal ones get them all.
Then the choke is measured: what the kernel holds for the paused client (/proc/net/tcp) and the
frames queued in the edge (herald_client_queue_frames); the edge holds everything else. Phase
2: LIVE_N more; the paused client reads its backlog, then reads in fits (stops; reads all it
can, or trickles), so its socket fills and drains many times while events keep coming. Then
every subscriber has exactly the published events (stream ids, data), in order, none twice,
none missing, every frame parsed strictly (SSE: an id and a data line; WebSocket: unmasked FIN
text frames of event objects), and the same bytes after event 0 as the paused client.

Every case runs for SSE and WebSocket and for each edge variant in VARIANTS: `--io-uring off`
(one send(2) per delivery) and the default (auto: batched through io_uring where the kernel
allows). PAUSED_VARIANTS=auto (or off, or auto,off) limits the variants run; default: all.
Measured against edge copies with a bug: losing the remainder lws is handed, taking it from
the wrong offset or handing it twice fails every case; sending a later event before lws'
remainder fails about 9 cases in 10, sending one at once ahead of queued ones about half.
"""

import hashlib
import json
import os
import re
import socket
import threading
import time

import harness
from harness import HeraldTestCase, split_cursor, wait_live_subscribed
from wsclient import WSClient

ALL_VARIANTS = [("off", ["--io-uring", "off"]), ("auto", [])]
_only = [v for v in os.environ.get("PAUSED_VARIANTS", "").replace(",", " ").split() if v]
VARIANTS = [v for v in ALL_VARIANTS if not _only or v[0] in _only]
assert VARIANTS, "PAUSED_VARIANTS=%r names none of %r" % (_only, [v[0] for v in ALL_VARIANTS])
NORMAL = 5
PAYLOAD = 3000          # bytes: an SSE frame stays under 4 KiB (the direct path's limit)
PAUSED_N = 120          # events while the paused client reads nothing (about 365 KB)
LIVE_N = 200            # events while it reads in fits
RATE = 150              # events per second, one FCALL each: one event per broker batch
SEND_BUFFER = 16384
RCVBUF = 4096
EDGE_ARGS = ["--send-buffer", str(SEND_BUFFER), "--client-queue-max", "100000",
             "--client-queue-bytes", str(256 << 20), "--heartbeat", "3600",
             "--ws-ping-interval", "0"]


def payload(i):
    body = b"".join(hashlib.sha256(b"%d:%d" % (i, k)).hexdigest().encode() for k in range(48))
    return (b"ev-%04d-" % i + body)[:PAYLOAD]


def stall(sock):
    """The paused client's socket: a small receive buffer and MSS (set before connecting)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)


def in_kernel(edge_port, client_port):
    """Bytes the kernel holds on the way to a client: the send queue of the edge's socket plus
    the receive queue of the client's (/proc/net/tcp: tx_queue:rx_queue, hex)."""
    q = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            ends = (int(p[1].split(":")[1], 16), int(p[2].split(":")[1], 16))
            q[ends] = [int(x, 16) for x in p[4].split(":")]
    return q[(edge_port, client_port)][0] + q[(client_port, edge_port)][1]


class Sub:
    """One subscriber on a raw socket. `buf` holds every byte after the response head (SSE) or
    the handshake (WebSocket); parse() takes complete frames from it strictly, adding
    (cursor, data bytes, start offset, end offset) to `events`."""

    def __init__(self, port, kind, topic, since, tune=None, heartbeats=False):
        self.kind, self.topic = kind, topic
        # heartbeats: SSE `: hb` blocks allowed between frames, their offsets kept here
        self.heartbeats = [] if heartbeats else None
        self.buf, self.pos, self.events, self.closed = bytearray(), 0, [], False
        self.subscribed = kind == "sse"
        if kind == "sse":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if tune:
                tune(self.sock)
            self.sock.settimeout(10 * harness.SCALE)
            self.sock.connect(("127.0.0.1", port))
            self.sock.sendall(("GET /events/%s?lastEventId=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Accept: text/event-stream\r\n\r\n" % (topic, since)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = self.sock.recv(4096)
                assert chunk, "closed before the response head: %r" % head
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert b"chunked" not in head.lower(), head
            self.buf += rest
        else:
            ws = WSClient(port, tune=tune)
            self.sock = ws.sock
            self.buf += ws._buf
            ws.send_json({"type": "subscribe", "topic": topic, "since": since})
        self.port = self.sock.getsockname()[1]
        self.parse()

    def parse(self):
        while not self.closed:
            end = self._sse() if self.kind == "sse" else self._ws()
            if end is None:
                return
            self.pos = end

    def _sse(self):
        i = self.buf.find(b"\n\n", self.pos)
        if i < 0:
            return None
        block = bytes(self.buf[self.pos:i])
        lines = block.split(b"\n")
        at = "SSE block at byte %d: %r" % (self.pos, block[:120])
        assert b"\r" not in block, at
        if not self.events and len(lines) == 1 and re.match(rb"retry: \d+$", lines[0]):
            return i + 2
        if self.heartbeats is not None and block == b": hb":
            self.heartbeats.append(self.pos)
            return i + 2
        assert len(lines) == 2 and lines[0].startswith(b"id: ") and \
            lines[1].startswith(b"data: "), at
        split_cursor(lines[0][4:].decode())
        self.events.append((lines[0][4:].decode(), lines[1][6:], self.pos, i + 2))
        return i + 2

    def _ws(self):
        b, p = self.buf, self.pos
        if len(b) - p < 2:
            return None
        assert b[p] == 0x81 and not b[p + 1] & 0x80, "frame head %r at byte %d" % (
            bytes(b[p:p + 2]), p)
        n, h = b[p + 1], 2
        if n == 126:
            n, h = (int.from_bytes(b[p + 2:p + 4], "big"), 4) if len(b) - p >= 4 else (0, 0)
        elif n == 127:
            n, h = (int.from_bytes(b[p + 2:p + 10], "big"), 10) if len(b) - p >= 10 else (0, 0)
        if not h or len(b) - p < h + n:
            return None
        try:
            m = json.loads(bytes(b[p + h:p + h + n]).decode("utf-8"))
        except ValueError as e:
            raise AssertionError("frame at byte %d: %s: %r" % (p, e, bytes(b[p:p + h + 200])))
        if not self.subscribed:
            assert m == {"type": "subscribed", "topic": self.topic}, m
            self.subscribed = True
        else:
            assert sorted(m) == ["data", "id", "topic", "type"] and m["type"] == "event" and \
                m["topic"] == self.topic, m
            split_cursor(m["id"])
            self.events.append((m["id"], m["data"].encode(), p, p + h + n))
        return p + h + n

    def read(self, seconds, limit=1 << 30):
        """Read and parse what arrives within `seconds` (not scaled), at most about `limit`
        bytes; False once closed."""
        end, n = time.monotonic() + seconds, 0
        while not self.closed and time.monotonic() < end and n < limit:
            self.sock.settimeout(max(0.001, end - time.monotonic()))
            try:
                chunk = self.sock.recv(min(65536, limit))
                n += len(chunk)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buf += chunk
            self.parse()
        return not self.closed

    def read_until(self, n, timeout, stop=None):
        end = harness.deadline(timeout)
        while len(self.events) < n and time.monotonic() < end and not (stop and stop.is_set()):
            if not self.read(min(0.2, max(0.0, end - time.monotonic()))):
                break
        return len(self.events) >= n


class PausedReader(HeraldTestCase):

    def run_case(self, kind, variant):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", EDGE_ARGS + variant)
        topic = "paused.%s" % kind
        marker = harness.fcall_publish(r, topic, "marker")
        subs = [Sub(h.port, kind, topic, marker) for _ in range(NORMAL)]
        subs.append(Sub(h.port, kind, topic, marker, tune=stall))
        self._closers += [s.sock for s in subs]
        paused, normal = subs[-1], subs[:-1]
        wait_live_subscribed(r, topic)
        payloads = [payload(i) for i in range(1 + PAUSED_N + LIVE_N)]
        ids = [harness.fcall_publish(r, topic, payloads[0])]
        for s in subs:   # everyone live and at event 0: nothing else is sent before phase 1
            self.assertTrue(s.read_until(1, 10), "%s: no event 0" % kind)
            self.assertEqual((len(s.events), len(s.buf)), (1, s.pos), "more than event 0")
            s.mark = s.pos
        mark, total = paused.mark, len(payloads)
        stop, terr = threading.Event(), []
        self.addCleanup(stop.set)

        def reader(s):
            try:
                s.read_until(total, 60, stop)
            except Exception as e:  # reported by the main thread
                terr.append(e)
        threads = [threading.Thread(target=reader, args=(s,), daemon=True) for s in normal]
        for t in threads:
            t.start()

        # Phase 1: the paused client reads nothing.
        errs = []
        t0 = time.monotonic()
        harness.paced_publisher(srv.port, topic, payloads[1:1 + PAUSED_N], RATE, ids,
                                errs).join(30 * harness.SCALE)
        self.assertEqual(errs, [])
        harness.wait_until(lambda: terr or all(len(s.events) > PAUSED_N for s in normal), 20,
                           what="normal subscribers served during the pause")
        self.assertEqual(terr, [], "a normal subscriber")
        self.assertEqual(len(paused.buf), mark, "the paused client read nothing")
        seen = []

        def queued():  # sampled every 250 ms: two equal samples in a row
            seen.append(harness.scrape(h.port).get("herald_client_queue_frames", 0.0))
            return len(seen) > 1 and seen[-1] == seen[-2] and seen[-1] > 0 and seen[-1]
        q = int(harness.wait_until(queued, 10, interval=0.3, what="the paused client's queue"))

        def kernel():  # the same twice in a row: settled
            a = in_kernel(h.port, paused.port)
            time.sleep(0.05)
            return a == in_kernel(h.port, paused.port) and (a,)
        k = harness.wait_until(kernel, 5, what="settled socket queues")[0]

        # Phase 2: more events; the paused client reads its backlog while they come, then
        # reads in fits until the publisher is done: it stops for 100 ms (its socket fills:
        # partial and refused sends again, later events queue), then reads all it can for
        # 25 ms, or trickles (up to 1500 bytes every 3 ms, about the publisher's rate) so the
        # socket fills and drains by part of a frame while events arrive.
        th = harness.paced_publisher(srv.port, topic, payloads[1 + PAUSED_N:], RATE, ids, errs)
        end = harness.deadline(60)
        cycles, fills = 0, []
        while len(paused.events) < total and not paused.closed and time.monotonic() < end:
            if len(paused.events) + 2 < len(ids) and not cycles or not th.is_alive():
                paused.read(0.05)   # the backlog first; the rest once all is published
                continue
            cycles += 1
            if cycles % 2:
                time.sleep(0.1)
                kb = in_kernel(h.port, paused.port)
                if kb > k // 2:   # its socket filled up again: where the bytes sent end
                    fills.append(len(paused.buf) + kb)
                paused.read(0.025)
            else:
                for _ in range(30):
                    paused.read(0.003, 1500)
                    time.sleep(0.003)
        th.join(10 * harness.SCALE)
        for t in threads:
            t.join(10 * harness.SCALE)
        self.assertEqual((errs, terr), ([], []))
        elapsed = time.monotonic() - t0

        want = [(i, p) for i, p in zip(ids, payloads)]
        time.sleep(0.3)   # nothing more may come
        for n, s in enumerate([paused] + normal):   # the paused one first: its own message
            name = "normal %d" % n if n else "paused"
            s.read(0.01)
            self.assertFalse(s.closed, "%s subscriber was closed" % name)
            got = [(split_cursor(c)[0], d) for c, d, _, _ in s.events]
            self.assertEqual(len(got), len(want), "%s: event count" % name)
            for i, (g, w) in enumerate(zip(got, want)):
                self.assertEqual(g, w, "%s subscriber, event %d of %d" % (name, i, total))
            self.assertEqual(s.pos, len(s.buf), "%s: a partial frame at the end" % name)
            self.assertEqual(bytes(s.buf[s.mark:]), bytes(paused.buf[mark:]),
                             "%s: the same bytes as the paused client after event 0" % name)
        m = harness.scrape(h.port)
        self.assertEqual(m.get("herald_slow_disconnects_total", 0.0), 0.0, m)
        self.assertEqual(m.get("herald_queue_drops_total", 0.0), 0.0, m)

        # It was choked. Of the phase-1 bytes, the kernel held k (both socket queues, at most
        # about 2 x SEND_BUFFER + 2 x RCVBUF after the kernel's doubling); the edge held the
        # rest, which is only possible once a send to this socket took part of a frame (the
        # rest going to lws) or nothing. Of that, q whole frames sat in the edge's queue: the
        # events after the choke, which must come out after what lws held and in order.
        ev1 = paused.events[1:1 + PAUSED_N]
        phase1 = ev1[-1][3] - mark
        held = phase1 - k
        qbytes = sum(e[3] - e[2] for e in ev1[len(ev1) - q:]) if q <= len(ev1) else -1
        cut = [e for e in ev1 if e[2] < mark + k < e[3]]
        inside = sum(any(e[2] < f < e[3] for e in paused.events) for f in fills)
        self.assertLess(k, phase1 // 4, "the kernel held most of the phase-1 bytes")
        self.assertGreaterEqual(q, 1, "no event waited in the edge's queue")
        self.assertLessEqual(qbytes, held, "queued frames the kernel already had (q=%d)" % q)
        self.assertGreaterEqual(qbytes, 0, "more frames queued (%d) than events" % q)
        harness.log(
            "%s %s: %d events x %d B in %.1fs; paused: phase 1 %d B, kernel %d B (%s), lws %d B, "
            "queue %d frames / %d B; phase 2: %d read fits, %d after its socket filled again (%d "
            "ending inside a frame); io_uring sends %s; all %d subscribers exact" % (
                kind, " ".join(variant) or "(default)", total, PAYLOAD, elapsed, phase1, k,
                "ends inside a frame: a partial send" if cut else "at a frame boundary",
                held - qbytes, q, qbytes, cycles, len(fills), inside,
                "%d" % m["herald_io_uring_sends_total"] if "herald_io_uring_sends_total" in m
                else "n/a", len(subs)))


for _name, _args in VARIANTS:
    for _kind in ("sse", "ws"):
        def _test(self, kind=_kind, args=_args):
            self.run_case(kind, list(args))
        _test.__name__ = "test_%s_%s" % (_kind, _name)
        _test.__doc__ = "%s, edge args %r: paused reader exact" % (_kind, _args)
        setattr(PausedReader, _test.__name__, _test)


if __name__ == "__main__":
    harness.main()
