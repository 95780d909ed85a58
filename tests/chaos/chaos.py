#!/usr/bin/env python3
"""Chaos run: Redis + 3 edges on loopback, a steady publisher (FCALL herald_publish and raw
PUBLISH), N SSE clients that always reconnect with their last id to a random edge, and a chaos
loop that SIGKILLs and restarts edges, drains them with SIGTERM, restarts Redis with its data
(SHUTDOWN SAVE) and stalls clients. At the end everything is brought back, the clients catch
up, and each client's record is compared with what Redis stored:

    published  FCALLs acknowledged + raw PUBLISHes sent (with how many had no subscriber)
    stored     entries in the topics' streams at the end (history is never trimmed here)
    delivered  events received by clients, summed (distinct per client)
    gaps       herald.gap notices received, summed
    silent     stored events a client should have had (after its first event) that it never
               received and that no gap notice covered
    dups       events a client received more than once
    reorders   events that arrived after a later one

Exits 1 when silent, dups or reorders is non-zero, a payload was stored twice, or an edge
wrote a sanitizer report.
Usage: tests/chaos/chaos.py [--duration S] [--clients N] [--rate R] [--seed X]
Needs HERALD_BIN (default build/release/herald). Python standard library only.
"""

import argparse
import json
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
os.environ.setdefault("HERALD_BIN", os.path.join(HERE, "..", "..", "build", "release", "herald"))

import harness  # noqa: E402
from harness import Herald, RedisClient, RedisError, RedisServer  # noqa: E402

TOPICS = ["chaos.a", "chaos.b", "chaos.c", "chaos.d"]
EDGE_ARGS = ["--heartbeat", "1", "--retry-ms", "500", "--lease-ms", "1000", "--threads", "2",
             "--history-max", "1000000", "--client-queue-max", "128", "--history-batch", "50",
             "--topic-linger", "2", "--drain-timeout", "3", "--log-level", "warn"]


def parse_id(cursor):
    sid, _, epoch = cursor.partition("_")
    ms, _, seq = sid.partition("-")
    return (int(ms), int(seq)), epoch


# --------------------------------------------------------------------------------------------
# publishers
# --------------------------------------------------------------------------------------------

class Publisher(threading.Thread):
    """Publishes at `rate`/s round-robin over TOPICS, either with FCALL herald_publish (the
    acknowledged ids are kept) or with raw PUBLISH (the receiver counts are kept)."""

    def __init__(self, redis, raw, rate, stop):
        super().__init__(daemon=True)
        self.redis, self.raw, self.rate, self.stop = redis, raw, rate, stop
        self.acked = 0         # FCALL: acknowledged; raw: PUBLISH returned
        self.no_receiver = 0   # raw only: PUBLISH reached nobody
        self.failed = 0
        self.n = 0

    def run(self):
        r = None
        start = time.monotonic()
        kind = "r" if self.raw else "f"
        while not self.stop.is_set():
            topic = TOPICS[self.n % len(TOPICS)]
            payload = "%s-%d" % (kind, self.n)
            try:
                if r is None:
                    r = RedisClient(self.redis.port, timeout=1.0)
                if self.raw:
                    if r.publish(topic, payload) == 0:
                        self.no_receiver += 1
                else:
                    harness.fcall_publish(r, topic, payload)
                self.acked += 1
            except (OSError, ConnectionError, RedisError):
                self.failed += 1
                if r is not None:
                    r.close()
                    r = None
            self.n += 1
            delay = start + self.n / self.rate - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)  # pacing
        if r is not None:
            r.close()


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------

class Client:
    """An EventSource-like client: reads one topic, and whenever its connection ends it
    reconnects to a random live edge after a short jittered delay with Last-Event-ID."""

    def __init__(self, idx, topic, rng):
        self.idx, self.topic, self.rng = idx, topic, rng
        self.sock = None
        self.buf = b""
        self.head = None
        self.cursor = None          # last id received (full cursor)
        self.records = []           # ("ev", (ms, seq), epoch, data) / ("gap", reason)
        self.next_connect = 0.0
        self.stalled_until = 0.0
        self.connects = 0
        self.refused = 0

    def connect(self, port, sel):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1024)
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
            req = "GET /events/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" % (
                self.topic)
            if self.cursor:
                req += "Last-Event-ID: %s\r\n" % self.cursor
            s.sendall((req + "\r\n").encode())
        except OSError:
            s.close()
            self.refused += 1
            self.next_connect = time.monotonic() + self.rng.uniform(0.1, 0.3)
            return False
        s.setblocking(False)
        self.sock, self.buf, self.head = s, b"", None
        self.connects += 1
        sel.register(s, selectors.EVENT_READ, self)
        return True

    def drop(self, sel, delay=None):
        if self.sock is not None:
            try:
                sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None
        self.next_connect = time.monotonic() + (delay if delay is not None
                                                else self.rng.uniform(0.25, 0.75))

    def feed(self, chunk):
        """Returns False when the stream is over (EOF or a non-200 answer)."""
        if not chunk:
            return False
        self.buf += chunk
        if self.head is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return True
            self.head, self.buf = self.buf[:i], self.buf[i + 4:]
            if not self.head.startswith(b"HTTP/1.1 200"):
                return False
        blocks = self.buf.split(b"\n\n")
        self.buf = blocks.pop()
        for block in blocks:
            ev_id = ev_name = None
            data = []
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    continue
                field, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if field == b"id":
                    ev_id = value.decode()
                elif field == b"event":
                    ev_name = value.decode()
                elif field == b"data":
                    data.append(value)
            if not data:
                continue
            if ev_name == "herald.gap":
                self.records.append(("gap", json.loads(b"\n".join(data))["reason"]))
            elif ev_id:
                sid, epoch = parse_id(ev_id)
                self.records.append(("ev", sid, epoch, b"\n".join(data)))
                self.cursor = ev_id
        return True

    def last_id(self):
        for r in reversed(self.records):
            if r[0] == "ev":
                return r[1]
        return None


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

class Chaos:

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.sel = selectors.DefaultSelector()
        self.log = []
        self.counts = {"edge_kill": 0, "edge_term": 0, "redis_restart": 0, "stall": 0}
        self.redis_down_until = None
        self.edge_back = {}          # edge index -> monotonic time to restart it

    def note(self, what):
        line = "%6.1fs %s" % (time.monotonic() - self.t0, what)
        self.log.append(line)
        if self.args.verbose:
            print(line, flush=True)

    def live_edges(self):
        return [i for i, h in enumerate(self.edges) if h.alive() and i not in self.edge_back]

    # -- chaos actions --

    def redis_stop(self):
        with self.redis.client() as c:
            c.sock.sendall(RedisClient.encode(["SHUTDOWN", "SAVE"]))
            try:
                c.read_reply()
            except (ConnectionError, OSError):
                pass
        self.redis.proc.wait(10)
        self.redis.stop()

    def act(self):
        now = time.monotonic()
        choice = self.rng.choice(["edge_kill", "edge_kill", "edge_term", "redis_restart",
                                  "stall", "stall"])
        live = self.live_edges()
        if choice in ("edge_kill", "edge_term") and len(live) >= 2:
            i = self.rng.choice(live)
            h = self.edges[i]
            if choice == "edge_kill":
                h.kill(signal.SIGKILL)
            else:
                h.kill(signal.SIGTERM)
            self.edge_back[i] = now + self.rng.uniform(0.5, 3.0)
            self.counts[choice] += 1
            self.note("%s %s" % (choice, h.node_id))
        elif choice == "redis_restart" and self.redis_down_until is None:
            self.redis_stop()
            self.redis_down_until = now + self.rng.uniform(0.5, 3.0)
            self.counts[choice] += 1
            self.note("redis down (SHUTDOWN SAVE)")
        elif choice == "stall":
            c = self.rng.choice(self.clients)
            c.stalled_until = now + self.rng.uniform(1.0, 6.0)
            if c.sock is not None:
                try:
                    self.sel.unregister(c.sock)
                except (KeyError, ValueError):
                    pass
            self.counts[choice] += 1
            self.note("stall client %d" % c.idx)

    def recover(self, final=False):
        now = time.monotonic()
        if self.redis_down_until is not None and (final or now >= self.redis_down_until):
            self.redis.start()
            self.redis_down_until = None
            self.note("redis up")
        for i, t in list(self.edge_back.items()):
            if final or now >= t:
                h = self.edges[i]
                if h.proc is not None and h.proc.poll() is None:
                    try:
                        h.proc.wait(0 if not final else 10)
                    except Exception:
                        continue
                h.start(wait=False)
                del self.edge_back[i]
                self.note("edge %s restarted" % h.node_id)
        for c in self.clients:
            if c.stalled_until and (final or now >= c.stalled_until):
                c.stalled_until = 0.0
                if c.sock is not None:
                    self.sel.register(c.sock, selectors.EVENT_READ, c)

    # -- client I/O --

    def pump(self, timeout):
        now = time.monotonic()
        live = self.live_edges()
        for c in self.clients:
            if c.sock is None and not c.stalled_until and now >= c.next_connect and live:
                c.connect(self.edges[self.rng.choice(live)].port, self.sel)
        for key, _ in self.sel.select(timeout):
            c = key.data
            try:
                for _ in range(16):
                    chunk = c.sock.recv(65536)
                    if not c.feed(chunk):
                        c.drop(self.sel)
                        break
            except BlockingIOError:
                pass
            except OSError:
                c.drop(self.sel)

    # -- main --

    def run(self):
        a = self.args
        self.t0 = time.monotonic()
        self.redis = RedisServer()
        self.edges = [Herald(self.redis.port, "chaos-%d" % (i + 1), EDGE_ARGS) for i in range(3)]
        self.clients = [Client(i, TOPICS[i % len(TOPICS)], random.Random(self.rng.random()))
                        for i in range(a.clients)]
        stop = threading.Event()
        pubs = [Publisher(self.redis, False, a.rate, stop), Publisher(self.redis, True, a.rate,
                                                                       stop)]
        # Every client connected (and every edge subscribed) before publishing starts.
        end = time.monotonic() + 20
        while any(c.head is None for c in self.clients) and time.monotonic() < end:
            self.pump(0.05)
        with self.redis.client() as r:
            for t in TOPICS:
                harness.wait_live_subscribed(r, t, n=1)
        for p in pubs:
            p.start()
        self.note("publishing at %d/s FCALL + %d/s raw, %d clients" % (a.rate, a.rate, a.clients))

        next_act = time.monotonic() + 2.0
        stop_at = time.monotonic() + a.duration
        while time.monotonic() < stop_at:
            self.pump(0.02)
            self.recover()
            if time.monotonic() >= next_act:
                self.act()
                next_act = time.monotonic() + self.rng.uniform(0.5, 2.5)

        # Bring everything back, stop publishing, let the clients catch up.
        self.recover(final=True)
        end = time.monotonic() + 30
        while len(self.live_edges()) < 3 and time.monotonic() < end:
            self.pump(0.05)
        for h in self.edges:
            harness.wait_until(lambda: h.readyz() == 200, 30, what="%s ready" % h.node_id)
        time_settle = time.monotonic()
        harness.wait_until(lambda: all(p.acked > 0 for p in pubs), 10, what="publishers")
        stop.set()
        for p in pubs:
            p.join(10)
        with self.redis.client() as r:
            # raw PUBLISHes still being ingested: wait until the stream lengths stop moving
            prev = None
            end = time.monotonic() + 10
            while time.monotonic() < end:
                cur = [r.cmd("XLEN", harness.stream_key(t)) for t in TOPICS]
                if cur == prev:
                    break
                prev = cur
                t_wait = time.monotonic() + 0.5
                while time.monotonic() < t_wait:
                    self.pump(0.05)
            stored = {t: [(parse_id(eid)[0], f["d"]) for eid, f in harness.xrange(r, t)]
                      for t in TOPICS}
            epochs = {t: (r.cmd("GET", "herald:{%s}:epoch" % t) or b"").decode() for t in TOPICS}
        last = {t: stored[t][-1][0] if stored[t] else None for t in TOPICS}
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if all(c.last_id() == last[c.topic] for c in self.clients):
                break
            self.pump(0.05)
        self.note("settled in %.1fs" % (time.monotonic() - time_settle))
        return self.report(pubs, stored, epochs)

    def report(self, pubs, stored, epochs):
        fcall, raw = pubs
        total = {"published": fcall.acked + raw.acked, "stored": sum(len(v) for v in
                                                                     stored.values()),
                 "delivered": 0, "gaps": 0, "silent": 0, "dups": 0, "reorders": 0}
        worst = []
        for c in self.clients:
            s_ids = [sid for sid, _ in stored[c.topic]]
            seen = {}
            prev = None
            intervals = []          # (after, before): ids strictly between were signalled
            gap_open = False
            first = None
            for rec in c.records:
                if rec[0] == "gap":
                    total["gaps"] += 1
                    gap_open = True
                    continue
                sid = rec[1]
                if first is None:
                    first = sid
                if sid in seen:
                    total["dups"] += 1
                elif prev is not None and sid < prev:
                    total["reorders"] += 1
                seen[sid] = seen.get(sid, 0) + 1
                if gap_open:
                    intervals.append((prev, sid))
                    gap_open = False
                prev = sid if prev is None or sid > prev else prev
            total["delivered"] += len(seen)
            if first is None:
                continue
            missing = [x for x in s_ids if x >= first and x not in seen]
            silent = [x for x in missing
                      if not any((a is None or a < x) and x < b for a, b in intervals)]
            total["silent"] += len(silent)
            if silent:
                worst.append((c.idx, c.topic, len(silent), silent[:3], c.connects))
        payloads = [d for t in TOPICS for _, d in stored[t]]
        raw_stored = [d for d in payloads if d.startswith(b"r-")]
        raw_lost = raw.acked - len(set(raw_stored))
        stored_twice = len(payloads) - len(set(payloads))
        fcall_lost = fcall.acked - len({d for d in payloads if d.startswith(b"f-")})
        print()
        print("chaos: %.0fs, %d clients, seed %s; actions %s" % (
            self.args.duration, len(self.clients), self.args.seed, self.counts))
        print("chaos: FCALL acknowledged %d (failed %d); raw PUBLISH sent %d (failed %d, %d "
              "reached no subscriber), raw not stored %d; acknowledged FCALLs not stored %d; "
              "payloads stored twice %d" % (
                  fcall.acked, fcall.failed, raw.acked, raw.failed, raw.no_receiver, raw_lost,
                  fcall_lost, stored_twice))
        print("chaos: client connects %d, refused %d; epochs %s" % (
            sum(c.connects for c in self.clients), sum(c.refused for c in self.clients),
            sorted(set(epochs.values()))))
        print("published %(published)d / stored %(stored)d / delivered %(delivered)d / gaps "
              "signalled %(gaps)d / silent losses %(silent)d / duplicates %(dups)d / "
              "reorders %(reorders)d" % total)
        for w in worst[:5]:
            print("  client %d (%s): %d silent, first %r, %d connects" % w)
        bad = []
        for h in self.edges:
            rep = h.sanitizer_report()
            if rep:
                bad.append("edge %s sanitizer report:\n%s" % (h.node_id, rep[:4000]))
        for b in bad:
            print(b)
        if self.args.verbose or total["silent"] or total["dups"] or total["reorders"]:
            print("\n".join(self.log[-60:]))
        return 1 if (total["silent"] or total["dups"] or total["reorders"] or stored_twice or
                     bad) else 0

    def close(self, keep_logs):
        for c in self.clients if hasattr(self, "clients") else []:
            c.drop(self.sel)
        for h in getattr(self, "edges", []):
            h.stop(timeout=5)
        if getattr(self, "redis", None):
            self.redis.close()
        for h in getattr(self, "edges", []):
            if keep_logs:
                print("log of %s: %s" % (h.node_id, h.log_path))
            else:
                import shutil
                shutil.rmtree(h.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of chaos (60)")
    ap.add_argument("--clients", type=int, default=40, help="SSE clients (40)")
    ap.add_argument("--rate", type=int, default=100,
                    help="publishes per second, for each of FCALL and raw PUBLISH (100)")
    ap.add_argument("--seed", default=str(int(time.time())), help="random seed")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the chaos timeline")
    args = ap.parse_args()
    if not os.access(harness.HERALD_BIN, os.X_OK):
        print("chaos: HERALD_BIN %r is not an executable" % harness.HERALD_BIN, file=sys.stderr)
        return 2
    ch = Chaos(args)
    rc = 2
    try:
        rc = ch.run()
    finally:
        ch.close(keep_logs=rc != 0)
    return rc


if __name__ == "__main__":
    sys.exit(main())
