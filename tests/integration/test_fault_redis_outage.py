"""Redis outage with its data kept: SSE clients on two edges stay connected through a stop of
several seconds (heartbeats go on), /readyz goes 503 then 200, a publisher that keeps trying
fails meanwhile and succeeds after the restart, and every client ends up with exactly what
Redis stored (XRANGE), in order, with no gap notice and no duplicate."""

import threading
import time

import harness
from harness import (HeraldTestCase, RedisClient, RedisError, split_cursor, wait_live_subscribed,
                     wait_until, xrange)

TOPICS = ["fault.outage.a", "fault.outage.b"]
CLIENTS_PER_EDGE_TOPIC = 3
OUTAGE_S = 6.0


class Publisher(threading.Thread):
    """FCALL herald_publish round-robin over TOPICS every `interval` s, reconnecting on error;
    keeps the ids Redis acknowledged, counts the failures and keeps the payloads of the
    publishes that failed: one sent as Redis stops may be stored with its reply lost."""

    def __init__(self, port, interval=0.02):
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.stop = threading.Event()
        self.acked = {t: [] for t in TOPICS}
        self.failures = 0
        self.unacked = set()  # payloads of failed publishes
        self.errors = []
        self.n = 0

    def run(self):
        r = None
        while not self.stop.is_set():
            topic = TOPICS[self.n % len(TOPICS)]
            try:
                if r is None:
                    r = RedisClient(self.port, timeout=1.0)
                sid = harness.fcall_publish(r, topic, "m-%d" % self.n)
                self.acked[topic].append(sid)
                self.n += 1
            except (OSError, ConnectionError, RedisError) as e:
                self.failures += 1
                self.unacked.add("m-%d" % self.n)
                if len(self.errors) < 5:
                    self.errors.append(repr(e))
                if r is not None:
                    r.close()
                    r = None
            self.stop.wait(self.interval)  # pacing, not synchronisation
        if r is not None:
            r.close()

    def acked_count(self):
        return sum(len(v) for v in self.acked.values())


class RedisOutage(HeraldTestCase):

    def test_outage_keeps_clients_and_loses_nothing_stored(self):
        srv = self.redis()
        r = self.client(srv)
        edges = self.edges(srv, 2, ["--heartbeat", "1"])
        clients = []
        for h in edges:
            for topic in TOPICS:
                for _ in range(CLIENTS_PER_EDGE_TOPIC):
                    clients.append((topic, self.sse(h.port, "/events/" + topic)))
        for topic in TOPICS:
            wait_live_subscribed(r, topic, n=2)
        r.close()

        pub = Publisher(srv.port)
        pub.start()
        try:
            wait_until(lambda: pub.acked_count() >= 40, 10, what="40 publishes before the stop")
            for _, c in clients:
                c.pump(0.05)

            # Stop with the data: SHUTDOWN SAVE writes dump.rdb atomically with the stop, so
            # every acknowledged publish is in it.
            with srv.client() as admin:
                admin.sock.sendall(RedisClient.encode(["SHUTDOWN", "SAVE"]))
                try:
                    admin.read_reply()
                except (ConnectionError, OSError):
                    pass
            srv.proc.wait(10 * harness.SCALE)
            srv.stop()  # already gone: only reaps it
            t_stop = time.monotonic()
            acked_at_stop = pub.acked_count()
            for h in edges:
                wait_until(lambda: h.readyz() == 503, 10, what="%s /readyz 503" % h.node_id)
            # Heartbeats go on and nobody is closed while Redis is away.
            for _, c in clients:
                c.wait_comments(len(c.comments) + 2, timeout=OUTAGE_S)
                self.assertFalse(c.closed)
            left = OUTAGE_S - (time.monotonic() - t_stop)
            if left > 0:
                for _, c in clients:  # keep reading for the rest of the outage
                    c.pump(left / len(clients))
            failures_during = pub.failures
            self.assertGreater(failures_during, 0, "publishes should fail while Redis is down")
            self.assertEqual(pub.acked_count(), acked_at_stop, "acknowledged while down?")

            srv.start()  # same port and dir: loads dump.rdb
            t_start = time.monotonic()
            for h in edges:
                wait_until(lambda: h.readyz() == 200, 30, what="%s /readyz 200" % h.node_id)
            t_ready = time.monotonic() - t_start
            target = pub.acked_count() + 60
            wait_until(lambda: pub.acked_count() >= target, 20, what="publishes after restart")
        finally:
            pub.stop.set()
            pub.join(10)

        with srv.client() as r2:
            stored = {t: [eid for eid, _ in xrange(r2, t)] for t in TOPICS}
            data = {t: {eid: f["d"].decode() for eid, f in xrange(r2, t)} for t in TOPICS}
        for topic in TOPICS:
            # every acknowledged publish is kept, in order; anything else stored is a publish
            # whose reply was lost when Redis stopped (sent again after it: two entries)
            extra = [eid for eid in stored[topic] if eid not in set(pub.acked[topic])]
            self.assertEqual([eid for eid in stored[topic] if eid not in extra],
                             pub.acked[topic], "Redis kept what it acknowledged on %s" % topic)
            self.assertLessEqual(len(extra), 1, extra)
            for eid in extra:
                self.assertIn(data[topic][eid], pub.unacked, "stored but never sent as failed")
        total_delivered = 0
        for i, (topic, c) in enumerate(clients):
            want = stored[topic]
            got = []
            end = harness.deadline(15)
            while len(got) < len(want) and time.monotonic() < end:
                got.append(c.next_event(max(0.1, end - time.monotonic())))
            c.pump(0.2)
            got += c.pending()
            gaps = [e for e in got if e.event == "herald.gap"]
            self.assertEqual(gaps, [], "client %d got a gap notice for kept data" % i)
            ids = [split_cursor(e.id)[0] for e in got]
            self.assertEqual(ids, want, "client %d on %s: received vs stored" % (i, topic))
            self.assertEqual([e.data for e in got], [data[topic][x] for x in ids])
            self.assertEqual(len({split_cursor(e.id)[1] for e in got}), 1, "one epoch")
            self.assertFalse(c.closed, "client %d was closed" % i)
            total_delivered += len(got)
        harness.log("redis outage %.1fs: %d acknowledged (%d before the stop), %d publish "
                    "failures while down (%s), edges ready %.2fs after restart, %d clients "
                    "received %d events = every stored one, no gap" % (
                        OUTAGE_S, pub.acked_count(), acked_at_stop, failures_during,
                        pub.errors[:1], t_ready, len(clients), total_delivered))


if __name__ == "__main__":
    harness.main()
