"""Redis Sentinel failover under load.

A primary, one replica and three sentinels (each on a free loopback port with its own temp
dir); two edges on `--redis sentinel://...`; SSE subscribers on both edges for a topic fed by
HTTP publish and one fed by raw PUBLISH. While both publish, the replica's link to the primary
is cut (so the primary acknowledges events the replica never gets, as asynchronous replication
allows), then the primary is SIGKILLed and the sentinels promote the replica.

Asserted: both edges follow the new master (/metrics, log); every client's events are in order
with no duplicate; every event stored on the new master reached every subscriber, or a gap
notice was sent to that subscriber at that place in its stream (no silent hole); the lost
events were signalled; raw PUBLISHes received by every ingest edge are stored once, in order;
a client resuming with its Last-Event-ID on the other edge gets exactly what it missed.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import (REDIS_SERVER, HeraldTestCase, RedisClient, RedisError, RedisServer,
                     SSEClient, http_get, split_cursor, wait_until, xrange)

MASTER = "herald-m"
KEY = "sentinel-test-key"
HTTP_TOPIC = "sn-http"
RAW_TOPIC = "sn-raw"
HTTP_RATE = 40  # publishes per second (alternating edges)
RAW_RATE = 80


class SentinelNode(RedisServer):
    """redis-server --sentinel with its own config file (Sentinel rewrites it)."""

    def __init__(self, primary_port):
        self.primary_port = primary_port
        super().__init__()

    def _spawn(self, port):
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (port, self.dir))
            f.write("sentinel monitor %s 127.0.0.1 %d 2\n" % (MASTER, self.primary_port))
            f.write("sentinel down-after-milliseconds %s 1000\n" % MASTER)
            f.write("sentinel failover-timeout %s 5000\n" % MASTER)
            f.write("sentinel parallel-syncs %s 1\n" % MASTER)
        return self._popen([REDIS_SERVER, conf, "--sentinel"])


def info_field(c, section, field):
    raw = c.cmd("INFO", section).decode()
    m = re.search(r"^%s:(.*)\r?$" % re.escape(field), raw, re.M)
    return m.group(1).strip() if m else None


def metric(port, name):
    """{labels: value} of one metric family from /metrics."""
    status, _, body = http_get(port, "/metrics", timeout=5)
    if status != 200:
        return {}
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"^%s(\{[^}]*\})? (\d+)$" % re.escape(name), line)
        if m:
            out[m.group(1) or ""] = int(m.group(2))
    return out


class FakeSentinel:
    """A stand-in sentinel on a free loopback port: answers SENTINEL get-master-addr-by-name
    with `self.addr` ((host, port), or None for "unknown master"), accepts SUBSCRIBE and never
    publishes anything, as a sentinel whose +switch-master message got lost. With `confirm`
    False it never answers SUBSCRIBE (a sentinel that hangs); `names` has every CLIENT SETNAME."""

    def __init__(self, addr, confirm=True):
        self.addr = addr
        self.confirm = confirm
        self.queries = 0
        self.subscribed = 0
        self.names = []
        self.watchers = []
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _bulk(b):
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def _serve(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line.startswith(b"*"):
                    return
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:n])
                cmd = [a.lower() for a in args[:2]]
                if cmd[:1] == [b"ping"]:
                    c.sendall(b"+PONG\r\n")
                elif cmd == [b"sentinel", b"get-master-addr-by-name"]:
                    self.queries += 1
                    a = self.addr if args[2:] == [MASTER.encode()] else None
                    c.sendall(b"*2\r\n" + self._bulk(a[0].encode()) +
                              self._bulk(str(a[1]).encode()) if a else b"$-1\r\n")
                elif cmd == [b"client", b"setname"]:
                    self.names.append(args[2].decode())
                    c.sendall(b"+OK\r\n")
                elif cmd[:1] == [b"subscribe"]:
                    self.subscribed += 1
                    self.watchers.append(c)
                    if self.confirm:
                        c.sendall(b"*3\r\n" + self._bulk(b"subscribe") + self._bulk(args[1]) +
                                  b":1\r\n")
                else:
                    c.sendall(b"-ERR unknown command\r\n")
        except (OSError, ValueError):
            return

    def announce(self, text):
        """Publish `text` on +switch-master to every subscriber."""
        msg = (b"*3\r\n" + self._bulk(b"message") + self._bulk(b"+switch-master") +
               self._bulk(text.encode()))
        for c in list(self.watchers):
            try:
                c.sendall(msg)
            except OSError:
                pass

    def drop_watchers(self):
        """Close every subscribed connection, as a sentinel restarting would."""
        for c in list(self.watchers):
            self.watchers.remove(c)
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.srv.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class Reader:
    """One SSE subscriber read on its own thread: every event (data and gap) in arrival order."""

    def __init__(self, edge, topic, headers=None):
        self.edge = edge
        self.topic = topic
        self.client = SSEClient(edge.port, "/events/" + topic, headers)
        self.events = []
        self.arrived = []  # monotonic arrival time of each event
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                e = self.client.next_event(0.3)
            except AssertionError:
                if self.client.closed:
                    return
                continue
            with self.lock:
                self.events.append(e)
                self.arrived.append(time.monotonic())

    def data_events(self):
        with self.lock:
            return [e for e in self.events if e.type != "herald.gap"]

    def has(self, payload):
        with self.lock:
            return any(e.data == payload for e in self.events)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.client.close()


class SentinelFailover(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.readers = []
        self.finished = False

    def tearDown(self):
        for rd in self.readers:
            rd.close()
        if not self.finished:  # the test body did not reach its end: show every log
            for h in self._heralds:
                harness.log("\n===== log of %s =====\n%s" % (h.node_id, h.log()))
            for r in self._redises:
                harness.log("\n===== %s :%s =====\n%s" % (
                    type(r).__name__, r.port, harness._tail(r.log_path, 6000)))
        super().tearDown()

    def node(self, node):
        self._redises.append(node)  # stopped (and its log dumped on failure) by tearDown
        return node

    def reader(self, edge, topic, headers=None):
        rd = Reader(edge, topic, headers)
        self.readers.append(rd)
        return rd

    def master_of(self, sentinels):
        for s in sentinels:
            try:
                with RedisClient(s.port, timeout=1) as c:
                    a = c.cmd("SENTINEL", "get-master-addr-by-name", MASTER)
                    if a:
                        return int(a[1])
            except (OSError, RedisError, ConnectionError):
                continue
        return None

    def test_failover_under_load(self):
        primary = self.node(RedisServer())
        replica = self.node(RedisServer(extra=["--replicaof", "127.0.0.1", str(primary.port)]))
        with replica.client() as rc:
            wait_until(lambda: info_field(rc, "replication", "master_link_status") == "up", 20,
                       what="the replica in sync")
        sentinels = [self.node(SentinelNode(primary.port)) for _ in range(3)]
        for s in sentinels:  # each knows the replica and the two other sentinels
            with s.client() as sc:
                wait_until(lambda: len(sc.cmd("SENTINEL", "replicas", MASTER)) == 1 and
                           len(sc.cmd("SENTINEL", "sentinels", MASTER)) == 2, 30,
                           what="sentinel :%d discovering its peers" % s.port)

        url = "sentinel://%s/%s" % (",".join("127.0.0.1:%d" % s.port for s in sentinels), MASTER)
        args = ["--redis", url, "--publish-key", KEY, "--history-max", "100000",
                "--lease-ms", "1000", "--heartbeat", "1"]
        e1 = self.edge(primary, "edge-1", args)
        e2 = self.edge(primary, "edge-2", args)
        edges = [e1, e2]
        for e in edges:
            self.assertEqual(metric(e.port, "herald_redis_master"),
                             {'{addr="127.0.0.1:%d"}' % primary.port: 1})

        readers = {(e.node_id, t): self.reader(e, t) for e in edges
                   for t in (HTTP_TOPIC, RAW_TOPIC)}
        pc = self.client(primary)
        for t in (HTTP_TOPIC, RAW_TOPIC):
            harness.wait_live_subscribed(pc, t, 2)
        wait_until(lambda: harness.lease_holder(pc), 20, what="an ingest leader")

        # ---- load ----
        stop = threading.Event()
        http_log = []  # (payload, status, id or None)
        raw_log = []   # (payload, master port, receivers or None when the outcome is unknown)
        errors = []

        def http_publisher():
            i = 0
            try:
                while not stop.is_set():
                    p = "h-%05d" % i
                    e = edges[i % 2]
                    try:
                        st, _, body = http_get(e.port, "/publish/" + HTTP_TOPIC, timeout=5,
                                               method="POST", body=p.encode(),
                                               headers={"Authorization": "Bearer " + KEY})
                        sid = json.loads(body)["id"] if st == 200 else None
                    except OSError:
                        st, sid = None, None
                    http_log.append((p, st, sid))
                    i += 1
                    time.sleep(1.0 / HTTP_RATE)
            except Exception as ex:
                errors.append(ex)

        def raw_publisher():
            i = 0
            conn, port = None, None
            try:
                while not stop.is_set():
                    if conn is None:
                        port = self.master_of(sentinels)
                        try:
                            conn = RedisClient(port, timeout=1) if port else None
                        except OSError:
                            conn = None
                        if conn is None:
                            time.sleep(0.05)
                            continue
                    p = "r-%05d" % i
                    try:
                        n = conn.publish(RAW_TOPIC, p)
                    except (OSError, ConnectionError, RedisError):
                        n = None
                        conn.close()
                        conn = None
                    raw_log.append((p, port, n))
                    i += 1
                    time.sleep(1.0 / RAW_RATE)
            except Exception as ex:
                errors.append(ex)
            finally:
                if conn:
                    conn.close()

        threads = [threading.Thread(target=f, daemon=True) for f in (http_publisher,
                                                                   raw_publisher)]
        for th in threads:
            th.start()
        wait_until(lambda: len(http_log) >= 30 and len(raw_log) >= 60, 20, what="load running")

        # Cut replication: the replica cannot re-authenticate, so what the primary acknowledges
        # from now on never reaches it.
        rc = self.client(replica)
        rc.cmd("CONFIG", "SET", "masterauth", "not-the-password")
        pc.cmd("CLIENT", "KILL", "TYPE", "replica")
        wait_until(lambda: info_field(rc, "replication", "master_link_status") == "down", 10,
                   what="the replication link down")
        n_http, n_raw = len(http_log), len(raw_log)
        wait_until(lambda: len(http_log) >= n_http + 10 and len(raw_log) >= n_raw + 20, 20,
                   what="events acknowledged by the primary alone")

        t_kill = time.monotonic()
        primary.proc.send_signal(signal.SIGKILL)
        primary._reap()
        rc.cmd("CONFIG", "SET", "masterauth", "")
        new_port = wait_until(lambda: (lambda p: p if p == replica.port else None)(
            self.master_of(sentinels)), 30, what="the sentinels promoting the replica")
        t_promoted = time.monotonic() - t_kill
        want = {'{addr="127.0.0.1:%d"}' % new_port: 1}
        for e in edges:
            wait_until(lambda: metric(e.port, "herald_redis_master") == want and
                       e.readyz() == 200, 30, what="%s on the new master" % e.node_id)
        t_switched = time.monotonic() - t_kill
        rc = self.client(replica)  # Sentinel closes client connections when it promotes
        self.assertEqual(rc.cmd("ROLE")[0], b"master")
        for e in edges:
            self.assertGreaterEqual(metric(e.port, "herald_redis_master_switches_total")[""], 1)
            self.assertRegex(e.log(), r'"msg":"redis master switch".*"from":"127.0.0.1:%d"'
                             r'.*"to":"127.0.0.1".*"port":%d' % (primary.port, new_port))
        wait_until(lambda: harness.lease_holder(rc), 20, what="an ingest leader on the new master")

        # Load goes on against the new master, then stops.
        n_http, n_raw = len(http_log), len(raw_log)
        wait_until(lambda: len(http_log) >= n_http + 30 and len(raw_log) >= n_raw + 60, 30,
                   what="load on the new master")
        stop.set()
        for th in threads:
            th.join(20)
        self.assertEqual(errors, [])

        # Markers published last: once every reader has them, everything before is in.
        st, _, _ = http_get(e1.port, "/publish/" + HTTP_TOPIC, method="POST", body=b"end-h",
                            headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(st, 200)
        # (a new payload per attempt: a marker only one edge took may still be stored)
        attempt = iter(range(1000))
        end_r = wait_until(lambda: (lambda m: m if rc.publish(RAW_TOPIC, m) == 2 else None)(
            "end-r-%d" % next(attempt)), 10, what="raw end marker taken by both edges")
        for rd in readers.values():
            wait_until(lambda: rd.has("end-h" if rd.topic == HTTP_TOPIC else end_r), 30,
                       what="%s/%s reaching its end marker" % (rd.edge.node_id, rd.topic))

        # ---- checks ----
        stored = {t: xrange(rc, t) for t in (HTTP_TOPIC, RAW_TOPIC)}
        stored_ids = {t: [eid for eid, _ in stored[t]] for t in stored}
        stored_data = {t: [f["d"].decode() for _, f in stored[t]] for t in stored}
        acked = {p: sid for p, st, sid in http_log if st == 200}
        lost_http = [p for p, sid in acked.items() if sid not in set(stored_ids[HTTP_TOPIC])]

        signalled = {}
        lost_to = {}  # the end of the lost range each edge recorded
        for t in (HTTP_TOPIC, RAW_TOPIC):
            h = rc.cmd("HGETALL", "%s{%s}:lost" % (harness.PREFIX, t))
            lost_to[t] = harness.id_key(dict(zip(h[::2], h[1::2]))[b"to"].decode())
        for (node, t), rd in sorted(readers.items()):
            evs = list(rd.events)
            data = [e for e in evs if e.type != "herald.gap"]
            gaps = [json.loads(e.data) for e in evs if e.type == "herald.gap"]
            for g in gaps:
                self.assertEqual(g, {"topic": t, "reason": "trimmed"}, "%s/%s" % (node, t))
            signalled[(node, t)] = len(gaps)
            ids = [harness.id_key(split_cursor(e.id)[0]) for e in data]
            self.assertEqual(ids, sorted(ids), "%s/%s: events out of order" % (node, t))
            self.assertEqual(len(ids), len(set(ids)), "%s/%s: duplicate ids" % (node, t))
            payloads = [e.data for e in data]
            self.assertEqual(len(payloads), len(set(payloads)), "%s/%s: duplicates" % (node, t))
            # Every stored event was delivered, or a gap notice sits where it would have been.
            got = set(split_cursor(e.id)[0] for e in data)
            first_id = ids[0] if ids else None
            for sid in stored_ids[t]:
                k = harness.id_key(sid)
                if sid in got or (first_id is not None and k < first_id):
                    continue  # delivered, or from before this subscriber started
                before = max((i for i, e in enumerate(evs) if e.type != "herald.gap" and
                              harness.id_key(split_cursor(e.id)[0]) < k), default=-1)
                after = min((i for i, e in enumerate(evs) if e.type != "herald.gap" and
                             harness.id_key(split_cursor(e.id)[0]) > k), default=len(evs))
                self.assertTrue(any(evs[i].type == "herald.gap" for i in range(before + 1, after)),
                                "%s/%s: stored event %s neither delivered nor signalled" % (
                                    node, t, sid))
            # Events lost with the primary were delivered to live subscribers before the kill;
            # the edge must have said that history no longer has them.
            held_lost = [p for p in payloads if p not in set(stored_data[t])]
            if held_lost:
                self.assertGreaterEqual(len(gaps), 1, "%s/%s held %d lost events, no notice" % (
                    node, t, len(held_lost)))

        # Raw PUBLISH: everything every ingest edge received is stored once, in publish order.
        raw_stored = [d for d in stored_data[RAW_TOPIC] if d.startswith("r-")]
        self.assertEqual(len(raw_stored), len(set(raw_stored)), "raw message stored twice")
        self.assertEqual(raw_stored, sorted(raw_stored), "raw messages stored out of order")
        after_failover = [p for p, port, n in raw_log if port == new_port and n == 2]
        missing = [p for p in after_failover if p not in set(raw_stored)]
        self.assertEqual(missing, [], "raw messages taken by both edges on the new master "
                                      "but not stored")
        raw_lost = [p for p, port, n in raw_log if port != new_port and n and
                    p not in set(raw_stored)]
        # Taken on the new master by one ingest edge only (the other not yet subscribed again):
        # stored only if that edge is the one that wins the lease.
        raw_partial = [p for p, port, n in raw_log if port == new_port and n == 1]

        # Resume on the other edge with the Last-Event-ID of a subscriber of edge-1.
        rd = readers[("edge-1", HTTP_TOPIC)]
        rd.close()
        last = rd.data_events()[-1].id
        for i in range(5):
            st, _, _ = http_get(e1.port, "/publish/" + HTTP_TOPIC, method="POST",
                                body=("after-%d" % i).encode(),
                                headers={"Authorization": "Bearer " + KEY})
            self.assertEqual(st, 200)
        missed = [d for _, f in xrange(rc, HTTP_TOPIC, "(" + split_cursor(last)[0])
                  for d in [f["d"].decode()]]
        self.assertEqual(missed[-5:], ["after-%d" % i for i in range(5)])
        c = self.sse(e2.port, "/events/" + HTTP_TOPIC, {"Last-Event-ID": last})
        got = [c.next_event(10) for _ in missed]
        self.assertEqual([(e.type, e.data) for e in got], [("message", d) for d in missed])
        self.assertEqual(c.pending(), [])

        # Resume from a lost event's cursor: told first, then what is stored after it.
        # (the first lost one: a cursor at the very last lost event missed nothing stored)
        lost_cursor = next((e.id for e in readers[("edge-2", HTTP_TOPIC)].data_events()
                            if e.data in set(lost_http)), None) if len(lost_http) > 1 else None
        if lost_cursor:
            c2 = self.sse(e1.port, "/events/" + HTTP_TOPIC, {"Last-Event-ID": lost_cursor})
            g = c2.next_event(10)
            self.assertEqual((g.type, json.loads(g.data)),
                             ("herald.gap", {"topic": HTTP_TOPIC, "reason": "trimmed"}))
            after = [f["d"].decode() for _, f in
                     xrange(rc, HTTP_TOPIC, "(" + split_cursor(lost_cursor)[0])]
            self.assertEqual([c2.next_event(10).data for _ in after], after)

        harness.log(
            "sentinel failover: promoted %.2fs and both edges on the new master %.2fs after "
            "the kill" % (t_promoted, t_switched))
        harness.log(
            "HTTP publish: %d sent, %d acknowledged, %d stored on the new master, %d acknowledged "
            "then lost with the primary" % (len(http_log), len(acked),
                                            len([d for d in stored_data[HTTP_TOPIC]
                                                 if d.startswith("h-")]), len(lost_http)))
        harness.log(
            "raw PUBLISH: %d sent, %d taken by an edge, %d stored, %d taken then lost with the "
            "primary, %d taken by one edge only on the new master (%d of them stored), %d sent "
            "with the outcome unknown or no edge listening" % (
                len(raw_log), len([1 for _, _, n in raw_log if n]), len(raw_stored),
                len(raw_lost), len(raw_partial),
                len([p for p in raw_partial if p in set(raw_stored)]),
                len([1 for _, _, n in raw_log if not n])))
        for (node, t), rd in sorted(readers.items()):
            # the first event stored on the new master (after the lost ones) to reach it
            resumed = next((at for at, e in zip(rd.arrived, rd.events)
                            if at > t_kill and e.type != "herald.gap" and
                            e.data in set(stored_data[t]) and
                            harness.id_key(split_cursor(e.id)[0]) > lost_to[t]), None)
            harness.log("subscriber %s/%s: %d delivered, %d gap notices, events again %.2fs "
                        "after the kill" % (node, t, len(rd.data_events()), signalled[(node, t)],
                                            (resumed - t_kill) if resumed else -1))
        self.assertGreater(len(lost_http), 0, "the scenario should lose acknowledged events")
        self.assertTrue(all(n >= 1 for n in signalled.values()),
                        "every subscriber should be told of the lost events: %r" % signalled)
        self.finished = True


class SentinelChecks(HeraldTestCase):
    """Without real sentinels: what the edge checks itself."""

    def setUp(self):
        super().setUp()
        self.fakes = []

    def tearDown(self):
        for f in self.fakes:
            f.close()
        super().tearDown()

    def fake(self, addr, confirm=True):
        f = FakeSentinel(addr, confirm)
        self.fakes.append(f)
        return f

    def test_watch_moves_on_from_a_silent_or_lost_sentinel(self):
        """The +switch-master watch is a reconnecting connection: named after its edge, moved
        to the next sentinel when its SUBSCRIBE is not confirmed within --redis-timeout-ms or
        its connection is lost, and counted."""
        a = self.redis()
        hung = self.fake(("127.0.0.1", a.port), confirm=False)
        good = self.fake(("127.0.0.1", a.port))
        url = "sentinel://127.0.0.1:%d,127.0.0.1:%d/%s" % (hung.port, good.port, MASTER)
        e = self.edge(a, "edge-1", ["--redis", url, "--redis-timeout-ms", "500"])

        def count(name):
            return metric(e.port, name).get("", 0)

        # The first sentinel takes the SUBSCRIBE and never confirms it: past the set-up
        # deadline the watch goes to the next one.
        wait_until(lambda: hung.subscribed >= 1 and good.subscribed >= 1, 10,
                   what="the watch past the silent sentinel")
        self.assertRegex(e.log(), r'"msg":"sentinel watch subscription timed out: trying the '
                         r'next sentinel","host":"127.0.0.1","port":%d,"timeout_ms":500'
                         % hung.port)
        self.assertGreaterEqual(count("herald_redis_setup_timeouts_total"), 1)
        # Each watch connection names itself first (the query connections do not).
        self.assertEqual(set(hung.names + good.names), {"herald-edge-1-sentinel"})
        self.assertGreaterEqual(len(good.names), good.subscribed)
        self.assertGreaterEqual(len(hung.names), hung.subscribed)

        # Its connection lost, the watch moves on to the next sentinel (the silent one again),
        # and from there back to the one that confirms.
        lost = count("herald_redis_reconnects_total")
        n_hung, n_good = hung.subscribed, good.subscribed
        good.drop_watchers()
        wait_until(lambda: hung.subscribed > n_hung, 10, what="the watch on the next sentinel")
        wait_until(lambda: good.subscribed > n_good, 10, what="the watch back on a sentinel "
                   "that confirms")
        self.assertGreater(count("herald_redis_reconnects_total"), lost)
        self.assertEqual(metric(e.port, "herald_redis_master"),
                         {'{addr="127.0.0.1:%d"}' % a.port: 1})

    def test_role_checked_missed_and_announced_switches_followed(self):
        a = self.redis()
        b = self.redis()
        bc = self.client(b)
        bc.cmd("REPLICAOF", "127.0.0.1", a.port)
        wait_until(lambda: info_field(bc, "replication", "master_link_status") == "up", 20,
                   what="b replicating a")
        dead = harness.free_port()  # a sentinel that is down
        f1 = self.fake(("127.0.0.1", b.port))  # names a replica
        f2 = self.fake(("127.0.0.1", a.port))
        url = "sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/%s" % (dead, f1.port, f2.port,
                                                                      MASTER)
        e = self.edge(a, "edge-1", ["--redis", url, "--publish-key", KEY])
        self.assertEqual(metric(e.port, "herald_redis_master"),
                         {'{addr="127.0.0.1:%d"}' % a.port: 1})
        self.assertRegex(e.log(), r'"msg":"sentinel query failed","host":"127.0.0.1","port":%d'
                         % dead)
        self.assertRegex(e.log(), r'"msg":"candidate master unusable","host":"127.0.0.1",'
                         r'"port":%d,"err":"ROLE says \'slave\'"' % b.port)
        self.assertEqual(metric(e.port, "herald_redis_master_switches_total"), {"": 0})

        topic = "checks"
        c = self.sse(e.port, "/events/" + topic)
        ac = self.client(a)
        harness.wait_live_subscribed(ac, topic)

        def publish(body):
            st, _, resp = http_get(e.port, "/publish/" + topic, method="POST", body=body,
                                   headers={"Authorization": "Bearer " + KEY})
            return json.loads(resp)["id"] if st == 200 else None
        one = publish(b"one")
        self.assertIsNotNone(one)
        self.assertEqual(c.next_event().data, "one")
        self.assertEqual(ac.cmd("WAIT", 1, 5000), 1)  # b has it

        # Once the edge watches a sentinel and has asked again since, b takes over: the
        # sentinels name it but nobody announces +switch-master.
        wait_until(lambda: f1.subscribed + f2.subscribed >= 1, 10, what="a watch subscription")
        q = f1.queries + f2.queries
        wait_until(lambda: f1.queries + f2.queries > q, 10, what="a periodic sentinel query")
        bc.cmd("REPLICAOF", "NO", "ONE")
        ac.cmd("REPLICAOF", "127.0.0.1", b.port)
        f1.addr = f2.addr = ("127.0.0.1", b.port)
        wait_until(lambda: metric(e.port, "herald_redis_master") ==
                   {'{addr="127.0.0.1:%d"}' % b.port: 1}, 15, what="the edge on b")
        self.assertEqual(metric(e.port, "herald_redis_master_switches_total"), {"": 1})
        m = re.search(r'"msg":"redis master switch","from":"127.0.0.1:%d","to":"127.0.0.1",'
                      r'"port":%d,"reason":"([^"]*)"' % (a.port, b.port), e.log())
        self.assertIsNotNone(m, e.log())
        self.assertEqual(m.group(1), "periodic check")

        two = wait_until(lambda: publish(b"two"), 15, what="publishing through b")
        ev = c.next_event(10)
        self.assertEqual((ev.type, ev.data, split_cursor(ev.id)[0]), ("message", "two", two))
        self.assertEqual([d for _, f in xrange(bc, topic) for d in [f["d"]]], [b"one", b"two"])

        # Back to a, announced by +switch-master only (the sentinels go on naming b, which the
        # edge must not take for the master once ROLE says it is not); malformed and foreign
        # announcements first, which change nothing.
        ac = self.client(a)
        ac.cmd("REPLICAOF", "NO", "ONE")
        bc.cmd("REPLICAOF", "127.0.0.1", a.port)
        for f in (f1, f2):
            for junk in ("other-master 127.0.0.1 1 127.0.0.1 2", "%s 127.0.0.1" % MASTER,
                         "%s 127.0.0.1 1 127.0.0.1 99999" % MASTER, "%s a b c d e" % MASTER,
                         "%s 127.0.0.1 %d 127.0.0.1 %d" % (MASTER, b.port, a.port)):
                f.announce(junk)
        wait_until(lambda: metric(e.port, "herald_redis_master") ==
                   {'{addr="127.0.0.1:%d"}' % a.port: 1}, 15, what="the edge back on a")
        self.assertEqual(metric(e.port, "herald_redis_master_switches_total"), {"": 2})
        self.assertRegex(e.log(), r'"msg":"redis master switch","from":"127.0.0.1:%d",'
                         r'"to":"127.0.0.1","port":%d,"reason":"\+switch-master"' % (b.port, a.port))
        three = wait_until(lambda: publish(b"three"), 15, what="publishing through a")
        ev = c.next_event(10)
        self.assertEqual((ev.type, ev.data, split_cursor(ev.id)[0]), ("message", "three", three))
        # Two more periodic checks name b (a replica now): the edge stays on a.
        q = f1.queries + f2.queries
        wait_until(lambda: f1.queries + f2.queries >= q + 2, 15, what="two more sentinel queries")
        self.assertEqual(metric(e.port, "herald_redis_master"),
                         {'{addr="127.0.0.1:%d"}' % a.port: 1})
        self.assertEqual(metric(e.port, "herald_redis_master_switches_total"), {"": 2})
        self.assertEqual(c.pending(), [])


class LostEvents(HeraldTestCase):
    """The check that runs after every resubscription, without Sentinel: Redis comes back from
    an older dump, so the last events the edge delivered are gone from the stream."""

    def test_restart_from_older_dump(self):
        self.older_dump(publish_first=False)

    def test_restart_from_older_dump_with_newer_events(self):
        """A publisher reaches the restarted Redis before the edge does: the stream is not
        behind any more, but what the edge delivered last is missing from it."""
        self.older_dump(publish_first=True)

    def older_dump(self, publish_first):
        srv = self.redis()
        r = self.client(srv)
        e = self.edge(srv, "edge-1", ["--publish-key", KEY])
        topic = "rolled"
        c = self.sse(e.port, "/events/" + topic)
        harness.wait_live_subscribed(r, topic)
        ids = [harness.fcall_publish(r, topic, "e%d" % i) for i in range(3)]
        r.cmd("SAVE")
        old = os.path.join(srv.dir, "old.rdb")
        shutil.copy(os.path.join(srv.dir, "dump.rdb"), old)
        ids += [harness.fcall_publish(r, topic, "e%d" % i) for i in range(3, 5)]
        got = [c.next_event() for _ in range(5)]
        self.assertEqual([ev.data for ev in got], ["e%d" % i for i in range(5)])
        cursors = [ev.id for ev in got]
        r.close()

        if publish_first:
            e.kill(signal.SIGSTOP)  # the edge cannot reconnect before the publish below
        srv.stop()
        shutil.copy(old, os.path.join(srv.dir, "dump.rdb"))
        srv.start()  # same port, with e0..e2 only (and the function library)
        r = self.client(srv)
        self.assertEqual([f["d"] for _, f in xrange(r, topic)], [b"e0", b"e1", b"e2"])
        if publish_first:
            e5 = harness.fcall_publish(r, topic, "e5")
            e.kill(signal.SIGCONT)
        wait_until(lambda: e.readyz() == 200, 30, what="the edge ready again")

        # The subscriber is told; the stream's IDs continue after e4.
        g = c.next_event(10)
        self.assertEqual((g.type, json.loads(g.data)),
                         ("herald.gap", {"topic": topic, "reason": "trimmed"}))
        if not publish_first:
            e5 = harness.fcall_publish(r, topic, "e5")
        self.assertGreater(harness.id_key(e5), harness.id_key(ids[4]))
        info = r.cmd("XINFO", "STREAM", harness.stream_key(topic))
        info = dict(zip(info[::2], info[1::2]))
        self.assertEqual((info[b"last-generated-id"], info[b"max-deleted-entry-id"]),
                         (e5.encode(), ids[4].encode()))
        lost = r.cmd("HGETALL", "%s{%s}:lost" % (harness.PREFIX, topic))
        self.assertEqual(dict(zip(lost[::2], lost[1::2])),
                         {b"from": ids[2].encode(), b"to": ids[4].encode()})
        ev = c.next_event(10)
        self.assertEqual((ev.type, ev.data, split_cursor(ev.id)[0]), ("message", "e5", e5))

        # Resuming from a lost event: told, then what is stored after it.
        c2 = self.sse(e.port, "/events/" + topic, {"Last-Event-ID": cursors[3]})
        evs = [c2.next_event(10) for _ in range(2)]
        self.assertEqual([(x.type, x.data) for x in evs],
                         [("herald.gap", json.dumps({"topic": topic, "reason": "trimmed"},
                                                    separators=(",", ":"))), ("message", "e5")])
        # Resuming from the last lost event missed nothing stored: no notice.
        c3 = self.sse(e.port, "/events/" + topic, {"Last-Event-ID": cursors[4]})
        ev = c3.next_event(10)
        self.assertEqual((ev.type, ev.data), ("message", "e5"))
        # Resuming from before the lost events: told, then e5 (nothing stored was skipped).
        c4 = self.sse(e.port, "/events/" + topic, {"Last-Event-ID": cursors[2]})
        evs = [c4.next_event(10) for _ in range(2)]
        self.assertEqual([x.type for x in evs], ["herald.gap", "message"])
        self.assertEqual(evs[1].data, "e5")
        self.assertEqual(c.pending() + c3.pending(), [])


class ComposeSentinel(HeraldTestCase):
    """docker-compose.yml with deploy/compose.sentinel.yml is a valid Compose project: the
    primary, a replica of it, three sentinels monitoring it, edges on sentinel://, the LB."""

    def test_compose_sentinel_config_validates(self):
        exe = shutil.which("docker-compose")
        if not exe:
            self.fail("docker-compose is not installed (deploy/deps.sh compose)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        out = subprocess.run([exe, "-f", "docker-compose.yml", "-f",
                              os.path.join("deploy", "compose.sentinel.yml"), "config"],
                             cwd=harness.SRC, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=60)
        text = out.stdout.decode()
        self.assertEqual(out.returncode, 0, text)
        for svc in ("redis", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3", "edge",
                    "lb"):
            self.assertIn("\n  %s:\n" % svc, text)
        for needle in ("HERALD_REDIS: sentinel://sentinel-1:26379,sentinel-2:26379,"
                       "sentinel-3:26379/herald-master",
                       "sentinel monitor herald-master redis 6379 2",
                       "sentinel down-after-milliseconds herald-master 5000",
                       "exec redis-server /tmp/sentinel.conf --sentinel",
                       "/usr/local/etc/haproxy/haproxy.cfg"):
            self.assertIn(needle, text)
        # the edges wait for redis and the 3 sentinels; the replica and each sentinel for redis
        self.assertEqual(text.count("condition: service_healthy"), 4 + 1 + 3)
        with open(os.path.join(harness.SRC, "deploy", "compose.sentinel.yml")) as f:
            self.assertIn('"--replicaof", "redis", "6379"', f.read())
        harness.log("docker-compose -f docker-compose.yml -f deploy/compose.sentinel.yml "
                    "config: ok")


if __name__ == "__main__":
    harness.main()
