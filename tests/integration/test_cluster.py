"""Redis Cluster mode: 3 primaries + 3 replicas from local redis-server processes, 2 edges on
cluster://, SSE subscribers on topics spread over every shard, raw PUBLISH and HTTP publish
load; then (a) the slot of a busy topic migrates to another primary under load and (b) a
primary is SIGKILLed and its replica promoted. Every client must get its topic's events in
order, with no duplicate and no silent hole; resume with Last-Event-ID on the other edge must
be exact; every raw PUBLISH is stored once."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import harness
from harness import (HeraldTestCase, RedisClient, RedisError, deadline, free_port, log,
                     wait_until)

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
PUBLISH_KEY = "cluster-test-key"


def slot_of(key):
    """CLUSTER KEYSLOT, computed locally (CRC16/XMODEM of the hash tag or the whole key)."""
    b = key.encode()
    s = b.find(b"{")
    if s >= 0:
        e = b.find(b"}", s + 1)
        if e > s + 1:
            b = b[s + 1:e]
    crc = 0
    for x in b:
        crc ^= x << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xffff if crc & 0x8000 else (crc << 1) & 0xffff
    return crc & 16383


class ClusterNode:
    """One cluster-enabled redis-server with its own dir, client port and bus port."""

    def __init__(self, node_timeout_ms):
        self.dir = tempfile.mkdtemp(prefix="herald-it-cluster-")
        self.node_timeout_ms = node_timeout_ms
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        for _ in range(8):
            self.port, self.bus = free_port(), free_port()
            if self.port != self.bus and self._start():
                return
        raise RuntimeError("cluster redis-server did not start:\n%s" % harness._tail(self.log_path))

    def _start(self):
        args = [harness.REDIS_SERVER, "--port", str(self.port), "--cluster-port", str(self.bus),
                "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # a replica may always take over (the test kills a primary under load)
                "--cluster-replica-validity-factor", "0",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--logfile", ""]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        with harness._LIVE_LOCK:
            harness._LIVE.add(self.proc)
        end = deadline(10)
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                with RedisClient(self.port, timeout=1.0) as c:
                    if c.cmd("PING") == "PONG":
                        return True
            except (OSError, RedisError, ConnectionError):
                pass
            time.sleep(0.02)
        harness.end_process(self.proc)
        return False

    def client(self, timeout=10.0):
        return RedisClient(self.port, timeout=timeout)

    def cmd(self, *args):
        with self.client() as c:
            return c.cmd(*args)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        harness.end_process(self.proc)

    def close(self):
        if self.proc is not None:
            harness.end_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """3 primaries + 3 replicas, created with redis-cli --cluster create."""

    def __init__(self, primaries=3, replicas=1, node_timeout_ms=1000):
        self.nodes = []
        self.nreplicas = primaries * replicas
        try:
            for _ in range(primaries * (1 + replicas)):
                self.nodes.append(ClusterNode(node_timeout_ms))
            addrs = ["127.0.0.1:%d" % n.port for n in self.nodes]
            out = subprocess.run([REDIS_CLI, "--cluster", "create"] + addrs +
                                 ["--cluster-replicas", str(replicas), "--cluster-yes"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, timeout=60 * harness.SCALE)
            if out.returncode != 0:
                raise RuntimeError("redis-cli --cluster create failed:\n%s" % out.stdout.decode())
            wait_until(self.settled, 30, what="cluster_state:ok with every slot on every node")
            wait_until(self.replicas_synced, 30, what="every replica in sync with its primary")
        except BaseException:
            self.close()
            raise

    def seeds(self):
        return ",".join("127.0.0.1:%d" % n.port for n in self.nodes[:3])

    def info(self, node):
        raw = node.cmd("CLUSTER", "INFO")
        raw = raw.decode() if isinstance(raw, bytes) else raw
        return dict(l.split(":", 1) for l in raw.split("\r\n") if ":" in l)

    def settled(self):
        """Every live node says ok and agrees on which node serves each slot range."""
        views = []
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                if self.info(n).get("cluster_state") != "ok":
                    return False
                views.append(self.slot_ranges(n))
            except (OSError, RedisError, ConnectionError):
                return False
        return bool(views) and all(v == views[0] for v in views)

    def replicas_synced(self):
        up = 0
        for n in self.nodes:
            raw = n.cmd("INFO", "replication")
            raw = raw.decode() if isinstance(raw, bytes) else raw
            up += "master_link_status:up" in raw
        return up == self.nreplicas

    def slot_ranges(self, node):
        out = []
        for r in node.cmd("CLUSTER", "SLOTS"):
            out.append((r[0], r[1], r[2][1]))
        return sorted(out)

    def owner_port(self, slot, via=None):
        node = via or next(n for n in self.nodes if n.alive())
        for lo, hi, port in self.slot_ranges(node):
            if lo <= slot <= hi:
                return port
        return None

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def node_id(self, node):
        return node.cmd("CLUSTER", "MYID").decode()

    def primaries(self):
        ports = {p for _, _, p in self.slot_ranges(next(n for n in self.nodes if n.alive()))}
        return [self.node(p) for p in sorted(ports)]

    def close(self):
        for n in self.nodes:
            n.close()


class ClusterHerald(harness.Herald):
    def __init__(self, cluster, node_id, args=(), **kw):
        self.cluster = cluster
        super().__init__(None, node_id, args, **kw)

    def argv(self):
        return [harness.HERALD_BIN, "--listen", "127.0.0.1:%d" % self.port,
                "--redis", "cluster://" + self.cluster.seeds(), "--node-id", self.node_id] + \
            self.args


class Reader(threading.Thread):
    """Reads one SSE stream in the background and keeps every event, in order."""

    def __init__(self, client, name):
        super().__init__(daemon=True)
        self.c = client
        self.name = name
        self.events = []
        self.stop_flag = False
        self.lock = threading.Lock()
        self.start()

    def run(self):
        while not self.stop_flag and not self.c.closed:
            self.c.pump(0.2)
            with self.lock:
                self.events.extend(self.c._events)
                self.c._events.clear()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def stop(self):
        self.stop_flag = True
        self.join(10 * harness.SCALE)


class Load:
    """HTTP publishes round-robin over topics and edges, and raw PUBLISHes on some topics."""

    def __init__(self, edges, topics, raw_topics, raw_node):
        self.edges, self.topics, self.raw_topics, self.raw_node = edges, topics, raw_topics, raw_node
        self.acked = {t: [] for t in topics}   # topic -> [(id, payload)] answered 200
        self.http_failed = 0
        self.raw = {t: [] for t in raw_topics}  # topic -> payloads published raw
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.http, daemon=True),
                        threading.Thread(target=self.rawpub, daemon=True)]
        for t in self.threads:
            t.start()

    def http(self):
        n = 0
        while not self.stop_flag:
            topic = self.topics[n % len(self.topics)]
            edge = self.edges[n % len(self.edges)]
            payload = "h-%s-%d" % (topic, n)
            n += 1
            try:
                st, _, body = harness.http_get(edge.port, "/publish/" + topic, method="POST",
                                               body=payload.encode(), timeout=20,
                                               headers={"Authorization": "Bearer " + PUBLISH_KEY})
            except OSError:
                st, body = 0, b""
            if st == 200:
                self.acked[topic].append((json.loads(body)["id"], payload))
            else:
                self.http_failed += 1
            time.sleep(0.004)

    def rawpub(self):
        n = 0
        with self.raw_node.client() as c:
            while not self.stop_flag:
                topic = self.raw_topics[n % len(self.raw_topics)]
                payload = "r-%s-%d" % (topic, n)
                n += 1
                c.cmd("PUBLISH", topic, payload)
                self.raw[topic].append(payload)
                time.sleep(0.004)

    def count(self, topic):
        return len(self.acked[topic]) + len(self.raw.get(topic, []))

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join(30 * harness.SCALE)


def stream(node, topic):
    """[(id, fields)] of the topic's stream, read on its primary."""
    out = []
    for eid, flat in node.cmd("XRANGE", "herald:{%s}:log" % topic, "-", "+"):
        f = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        out.append((eid.decode(), f))
    return out


def psubscribed(node):
    """1 when some client of this node is pattern-subscribed (an edge's raw-ingest listener)."""
    raw = node.cmd("CLIENT", "LIST")
    raw = raw.decode() if isinstance(raw, bytes) else raw
    return any(" psub=1" in l or "cmd=psubscribe" in l for l in raw.splitlines())


def migrate_slot(cluster, slot, src, dst):
    """Moves one slot with its keys: SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE."""
    src_id, dst_id = cluster.node_id(src), cluster.node_id(dst)
    dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    moved = 0
    while True:
        keys = src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not keys:
            break
        src.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
        moved += len(keys)
    dst.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    src.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    for p in cluster.primaries():
        if p not in (src, dst):
            p.cmd("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return moved


class ClusterTestCase(HeraldTestCase):
    """A test that may make self.cluster (a Cluster), closed after the edges."""

    def setUp(self):
        super().setUp()
        self.cluster = None

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            if self.cluster:
                self.cluster.close()


class ClusterMode(ClusterTestCase):

    def cedge(self, node_id):
        h = ClusterHerald(self.cluster, node_id, ["--publish-key", PUBLISH_KEY,
                                                   "--topic-linger", "60"])
        self._heralds.append(h)
        return h

    def wait_shard_subscribed(self, topic, n):
        ch = "herald:{%s}:live" % topic

        def ok():
            port = self.cluster.owner_port(slot_of(topic))
            return self.cluster.node(port).cmd("PUBSUB", "SHARDNUMSUB", ch)[1] >= n
        wait_until(ok, 20, what="%d sharded subscriber(s) of %s" % (n, ch))

    def wait_events(self, load, topics, more):
        want = {t: load.count(t) + more for t in topics}
        wait_until(lambda: all(load.count(t) >= want[t] for t in topics), 60,
                   what="%d more published events on every topic" % more)

    def test_migration_and_failover_under_load(self):
        try:
            self.run_scenario()
        except BaseException:
            import sys
            for h in self._heralds:
                sys.stderr.write("\n===== log of %s =====\n%s\n" % (h.node_id, h.log()))
            raise

    def run_scenario(self):
        self.cluster = c = Cluster()
        e1, e2 = self.cedge("edge-1"), self.cedge("edge-2")
        edges = [e1, e2]
        prim = c.primaries()
        self.assertEqual(len(prim), 3)
        # Two topics per primary, so every shard carries subscribers and load.
        topics, per = [], {p.port: 0 for p in prim}
        i = 0
        while len(topics) < 6:
            name = "news/%d" % i
            i += 1
            port = c.owner_port(slot_of(name))
            if per[port] < 2:
                per[port] += 1
                topics.append(name)
        # Wait for an ingest leader (its barrier passed on every primary).
        wait_until(lambda: any("ingest leader" in h.log() for h in edges), 20,
                   what="an ingest leader")
        # The primary to kill: one no edge listens on for raw PUBLISHes (raw pub/sub has no
        # history: a listener's node dying loses what it was sent meanwhile, by design). It
        # also gets the ingest lease's slot: the lease is lost with it and another edge takes
        # over, which must not store again what the old leader stored (standbys match stored
        # copies that reach them before their raw message, too).
        victim = next(p for p in prim if not psubscribed(p))
        lease_slot = slot_of(harness.PREFIX + "{ingest}:lease")
        holder = c.node(c.owner_port(lease_slot))
        if holder is not victim:
            migrate_slot(c, lease_slot, holder, victim)
            wait_until(c.settled, 30, what="the cluster to agree on the lease's slot")
            self.assertEqual(c.owner_port(lease_slot), victim.port)
            log("moved the ingest lease's slot %d :%d -> :%d" % (lease_slot, holder.port,
                                                                victim.port))
        others = [p for p in prim if p is not victim]
        src, dst = others
        busy = next(t for t in topics if c.owner_port(slot_of(t)) == src.port)
        raw_topics = [t for t in topics if c.owner_port(slot_of(t)) != victim.port]
        raw_node = next(n for n in c.nodes if n is not victim and n.alive() and
                        n not in prim)  # a replica: raw PUBLISH reaches the whole cluster
        if c.owner_port(slot_of(busy)) != src.port:
            self.fail("busy topic not on the migration source")

        readers = {}
        for t in topics:
            for h in edges:
                readers[(t, h.node_id)] = Reader(self.sse(h.port, "/events/" + t),
                                                 "%s@%s" % (t, h.node_id))
        for t in topics:
            self.wait_shard_subscribed(t, 2)
        # On every primary, each edge's command and sharded subscriber connections are named.
        for p in prim:
            with p.client() as pc:
                names = set(harness.client_ids(pc))
            self.assertLessEqual({"herald-edge-%d-%s" % (i, k) for i in (1, 2)
                                  for k in ("node", "ssub")}, names)
        resume1 = Reader(self.sse(e1.port, "/events/" + busy), "resume1")

        load = Load(edges, topics, raw_topics, raw_node)
        try:
            self.wait_events(load, topics, 15)
            # The resuming client leaves mid-load; it comes back on the other edge later.
            wait_until(lambda: len(resume1.snapshot()) >= 10, 30, what="10 events for resume1")
            resume1.stop()
            resume1.c.close()
            left_at = resume1.snapshot()[-1].id

            # (a) migrate the busy topic's slot to another primary, under load.
            moved = migrate_slot(c, slot_of(busy), src, dst)
            wait_until(c.settled, 30, what="the cluster to agree on the migrated slot")
            self.assertEqual(c.owner_port(slot_of(busy)), dst.port)
            log("migrated slot %d of %s (%d keys) :%d -> :%d" % (
                slot_of(busy), busy, moved, src.port, dst.port))
            self.wait_shard_subscribed(busy, 2)
            self.wait_events(load, topics, 15)

            resume2 = Reader(self.sse(e2.port, "/events/" + busy, {"Last-Event-ID": left_at}),
                             "resume2")

            # (b) fail a primary over: SIGKILL; its replica is promoted. First its replica's
            # link is cut (it cannot re-authenticate), so that the primary acknowledges events
            # alone, as asynchronous replication allows: those are lost in the failover and the
            # clients that got them must be told.
            victim_slots = [(lo, hi) for lo, hi, p in c.slot_ranges(victim) if p == victim.port]
            victim_topics = [t for t in topics if c.owner_port(slot_of(t)) == victim.port]
            rinfo = victim.cmd("INFO", "replication").decode()
            rport = int(rinfo.split("slave0:", 1)[1].split("port=", 1)[1].split(",", 1)[0])
            replica = c.node(rport)
            replica.cmd("CONFIG", "SET", "masterauth", "not-the-password")
            victim.cmd("CLIENT", "KILL", "TYPE", "replica")
            wait_until(lambda: "master_link_status:down" in replica.cmd(
                "INFO", "replication").decode(), 10, what="the replication link down")
            self.wait_events(load, victim_topics, 5)
            victim.kill()
            replica.cmd("CONFIG", "SET", "masterauth", "")
            wait_until(lambda: c.settled() and all(
                c.owner_port(lo) not in (None, victim.port) for lo, _ in victim_slots), 60,
                what="a replica promoted for the killed primary's slots")
            log("primary :%d killed; slots now on :%d" % (
                victim.port, c.owner_port(victim_slots[0][0])))
            for t in topics:
                self.wait_shard_subscribed(t, 2)
            self.wait_events(load, topics, 15)
        finally:
            load.stop()

        # A last marker per topic; every client must get it, after everything before it.
        markers = {}
        for t in topics:
            def pub():
                st, _, body = harness.http_get(e1.port, "/publish/" + t, method="POST",
                                               body=b"marker",
                                               headers={"Authorization": "Bearer " + PUBLISH_KEY})
                return json.loads(body)["id"] if st == 200 else None
            markers[t] = wait_until(pub, 30, what="the marker published on " + t)
        all_readers = list(readers.values()) + [resume2]
        for rd in all_readers:
            topic = rd.name.split("@")[0] if "@" in rd.name else busy
            wait_until(lambda: any(e.data == "marker" for e in rd.snapshot()), 30,
                       what="the marker at %s" % rd.name)
            rd.stop()

        # Raw ingest is asynchronous: wait until every raw PUBLISH made its way into a stream.
        owner = {t: c.node(c.owner_port(slot_of(t))) for t in topics}

        def raw_in():
            return all(sum(1 for _, f in stream(owner[t], t) if f["d"].startswith(b"r-")) >=
                       len(load.raw[t]) for t in raw_topics)
        try:
            wait_until(raw_in, 30, what="every raw PUBLISH stored")
        except AssertionError:
            pass  # the exact comparison below says what is missing

        # Checks.
        stored = {t: stream(owner[t], t) for t in topics}
        published = sum(load.count(t) for t in topics) + len(topics)
        delivered = signalled = lost = 0
        for rd in all_readers:
            topic = rd.name.split("@")[0] if "@" in rd.name else busy
            evs = rd.snapshot()
            gaps = [e for e in evs if e.event == "herald.gap"]
            signalled += len(gaps)
            data = [e for e in evs if e.event != "herald.gap"]
            ids = [harness.id_key(harness.split_cursor(e.id)[0]) for e in data]
            delivered += len(data)
            self.assertEqual(ids, sorted(set(ids)), "%s: out of order or duplicated" % rd.name)
            got = {harness.split_cursor(e.id)[0]: e.data for e in data}
            first, last = ids[0], ids[-1]
            in_range = [(eid, f["d"].decode()) for eid, f in stored[topic]
                        if first <= harness.id_key(eid) <= last]
            missing = [x for x in in_range if x[0] not in got]
            if missing and not gaps:
                self.fail("%s: %d stored events never delivered and no gap told, e.g. %r" % (
                    rd.name, len(missing), missing[:3]))
            for eid, d in in_range:
                if eid in got:
                    self.assertEqual(got[eid], d, "%s: payload of %s" % (rd.name, eid))
            lost += len([i for i in got if i not in dict(stored[topic])])
        # The resumed client got exactly what followed its cursor.
        r2 = [e for e in resume2.snapshot() if e.event != "herald.gap"]
        r2 = r2[:[e.data for e in r2].index("marker") + 1]
        # (up to its marker: raw messages kept during a leader change may be stored after it)
        lo = harness.id_key(harness.split_cursor(left_at)[0])
        hi = harness.id_key(markers[busy])
        after = [(eid, f["d"].decode()) for eid, f in stored[busy]
                 if lo < harness.id_key(eid) <= hi]
        self.assertEqual([(harness.split_cursor(e.id)[0], e.data) for e in r2], after,
                         "resume on the other edge with Last-Event-ID is not exact")
        # Raw PUBLISH: stored once each, in publish order (their shards were not failed over).
        raw_published = raw_stored = 0
        for t in raw_topics:
            got = [f["d"].decode() for _, f in stored[t] if f["d"].startswith(b"r-")]
            raw_published += len(load.raw[t])
            raw_stored += len(got)
            self.assertEqual(len(got), len(set(got)), "%s: a raw message stored twice" % t)
            self.assertEqual(got, load.raw[t], "%s: raw messages not stored once, in order" % t)
        # Acknowledged HTTP publishes are stored, except what the killed primary acknowledged
        # alone (asynchronous replication): counted, and only on its topics, where they are.
        ack_lost = 0
        for t in topics:
            ids = {eid for eid, _ in stored[t]}
            miss = [a for a in load.acked[t] if a[0] not in ids]
            if t in victim_topics:
                self.assertTrue(miss, "%s: nothing lost although replication was cut" % t)
                ack_lost += len(miss)
            else:
                self.assertEqual(miss, [], "%s: acknowledged publishes not stored" % t)
        # Every client of those topics that received a lost event was told (herald.gap).
        for rd in all_readers:
            topic = rd.name.split("@")[0] if "@" in rd.name else busy
            if topic not in victim_topics:
                continue
            evs = rd.snapshot()
            ids = {eid for eid, _ in stored[topic]}
            got_lost = [e for e in evs if e.event != "herald.gap" and
                        harness.split_cursor(e.id)[0] not in ids]
            gaps = [e for e in evs if e.event == "herald.gap"]
            if got_lost:
                self.assertTrue(gaps, "%s got %d lost events and no gap notice" % (
                    rd.name, len(got_lost)))
                self.assertEqual(json.loads(gaps[0].data)["reason"], "trimmed")
        log("cluster: published %d (http acked %d, http failed %d, raw %d), stored %d "
            "(raw %d), delivered %d to %d clients, gaps signalled %d, delivered-but-lost %d, "
            "acked-but-lost %d" % (
                published, sum(len(v) for v in load.acked.values()), load.http_failed,
                raw_published, sum(len(v) for v in stored.values()), raw_stored, delivered,
                len(all_readers), signalled, lost, ack_lost))
        # The lease's slot failed over with the killed primary. Its copy on the cut-off replica
        # either expired before the promotion (the lease was lost and an edge won it again) or
        # not (its holder renewed it on the promoted replica and stayed leader): which one is
        # a race of the failover's length against the lease's time to live. Either way an edge
        # holds it on the new owner (the raw messages were checked above: stored once, in
        # order, before and after).
        def lease_now():
            with c.node(c.owner_port(lease_slot)).client() as oc:
                tok = oc.cmd("GET", harness.PREFIX + "{ingest}:lease")
            return tok.decode("utf-8", "replace").split(":", 1)[0] if tok else None
        wait_until(lambda: lease_now() in {h.node_id for h in edges}, 15,
                   what="an edge holding the ingest lease on its slot's new owner")
        wins = [ln for h in edges for ln in h.log().splitlines() if '"msg":"lease won"' in ln]
        log("lease won %d times, held by %s: %s" % (len(wins), lease_now(),
                                                   " | ".join(w[-60:] for w in wins)))
        for h in edges:
            self.assertEqual(h.readyz(), 200)
            # what an operator sees of it: the map in use has three primaries again, and it
            # was fetched again since the start
            m = harness.scrape(h.port)
            self.assertEqual(m["herald_redis_cluster_primaries"], 3, m)
            self.assertGreaterEqual(m["herald_redis_cluster_map_refreshes_total"], 2, m)
            log("%s: cluster metrics %s" % (h.node_id, {k: v for k, v in m.items()
                                                        if "cluster" in k}))


class ClusterIdempotency(ClusterTestCase):

    def post(self, h, topic, body, key):
        return harness.http_get(h.port, "/publish/" + topic, method="POST", body=body,
                                headers={"Authorization": "Bearer " + PUBLISH_KEY,
                                         "Idempotency-Key": key}, timeout=30)

    def test_keyed_retry_across_a_slot_migration_stores_once(self):
        """The idempotency key's record is a key of the topic's slot, declared to Redis with the
        call: in the middle of a migration (the stream moved, the record not yet) the call is
        held (TRYAGAIN) instead of running with half its keys, and once the slot has moved the
        retry is answered with the first ID. Undeclared, the retry ran on the importing node
        without the record and stored the event again; and with the record moved first, the
        call stored on the migrating node, then failed on the record, answered 503 (not
        stored), and every retry stored once more."""
        self.cluster = c = Cluster(replicas=0)
        h = ClusterHerald(c, "edge-1", ["--publish-key", PUBLISH_KEY, "--ingest", "off"])
        self._heralds.append(h)
        topic = "mig.idem"
        slot = slot_of(topic)
        src = c.node(c.owner_port(slot))
        dst = next(n for n in c.primaries() if n is not src)
        code, _, body = self.post(h, topic, b"one", "k1")
        self.assertEqual(code, 200, body)
        first = json.loads(body)["id"]
        # the stream and its epoch move, the record of k1 does not (yet)
        dst.cmd("CLUSTER", "SETSLOT", slot, "IMPORTING", c.node_id(src))
        src.cmd("CLUSTER", "SETSLOT", slot, "MIGRATING", c.node_id(dst))
        src.cmd("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS",
                "herald:{%s}:log" % topic, "herald:{%s}:epoch" % topic)
        out = {}
        retry = threading.Thread(target=lambda: out.update(r=self.post(h, topic, b"one", "k1")))
        retry.start()
        time.sleep(1.0 * harness.SCALE)  # the retry is held meanwhile
        self.assertTrue(retry.is_alive(), "answered in mid-migration: %r" % (out,))
        migrate_slot(c, slot, src, dst)  # the record follows; the slot is dst's
        retry.join(30 * harness.SCALE)
        code, _, body = out["r"]
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body), {"id": first, "duplicate": True})
        entries = dst.cmd("XRANGE", "herald:{%s}:log" % topic, "-", "+")
        self.assertEqual([e[0].decode() for e in entries], [first])
        # FCALL in a cluster: a keyed publish names its record as the third key
        with self.assertRaises(RedisError) as cm:
            dst.cmd("FCALL", "herald_publish", 2, "herald:{%s}:log" % topic,
                    "herald:{%s}:epoch" % topic, "x", "", "k2")
        self.assertIn("passes 3 keys", str(cm.exception))
        rid = dst.cmd("FCALL", "herald_publish", 3, "herald:{%s}:log" % topic,
                      "herald:{%s}:epoch" % topic, "herald:{%s}:idem:k1" % topic, "x", "", "k1")
        self.assertEqual(rid, first)


class ComposeCluster(HeraldTestCase):
    """deploy/compose.cluster.yml is a valid Compose file: six cluster nodes, the one-shot
    cluster creation the edges wait for, edges on cluster://, HAProxy with the one config."""

    def test_compose_cluster_config_validates(self):
        exe = shutil.which("docker-compose")
        if not exe:
            self.fail("docker-compose is not installed (deploy/deps.sh compose)")
        path = os.path.join(harness.SRC, "deploy", "compose.cluster.yml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        out = subprocess.run([exe, "-f", path, "config"], cwd=harness.SRC, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        text = out.stdout.decode()
        self.assertEqual(out.returncode, 0, text)
        for n in range(1, 7):
            self.assertIn("  redis-%d:\n" % n, text)
        for needle in ("condition: service_completed_successfully",
                       "HERALD_REDIS: cluster://redis-1:6379,redis-2:6379,redis-3:6379",
                       "/usr/local/etc/haproxy/haproxy.cfg", "dockerfile: deploy/Dockerfile"):
            self.assertIn(needle, text)
        with open(path) as f:
            src = f.read()  # (config wraps long command lines)
        for needle in ("--cluster-enabled yes", "--cluster-replicas 1 --cluster-yes"):
            self.assertIn(needle, src)
        log("docker-compose -f deploy/compose.cluster.yml config: ok")


if __name__ == "__main__":
    harness.main()
