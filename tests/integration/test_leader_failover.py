"""Ingest-leader failover: 3 edges, raw PUBLISH at ~1000 msg/s for 3 s, SIGKILL the leader
after ~1 s. Every raw message must be stored once, in publish order (loss is measured and
printed; the target is 0)."""

import threading
import time

import harness
from harness import HeraldTestCase, RedisClient, lease_holder, stream_key, wait_until, xrange

RATE = 1000      # messages per second
DURATION = 3.0   # seconds
KILL_AFTER = 1.0  # seconds after the first message


class LeaderFailover(HeraldTestCase):

    def test_kill_leader_under_load(self):
        srv = self.redis()
        r = self.client(srv)
        # Keep every message: the default --history-max (1000) would trim the 3000 we publish.
        self.edges(srv, 3, ["--history-max", "100000"])
        leader = wait_until(lambda: lease_holder(r), 20, what="an ingest leader")
        victim = self.edge_by_node(leader)
        self.assertIsNotNone(victim, "lease held by unknown node %r" % leader)
        topic = "failover"

        published = []
        errors = []
        started = threading.Event()

        def publisher():
            # Paced in bursts: every few ms, pipeline the messages that are due by then.
            try:
                with RedisClient(srv.port) as pc:
                    total = int(RATE * DURATION)
                    t0 = time.monotonic()
                    started.set()
                    sent = 0
                    while sent < total:
                        due = min(total, int((time.monotonic() - t0) * RATE) + 1)
                        if due > sent:
                            batch = ["f-%05d" % i for i in range(sent, due)]
                            pc.pipeline([("PUBLISH", topic, p) for p in batch])
                            published.extend(batch)
                            sent = due
                        time.sleep(0.002)
            except Exception as e:  # reported by the main thread
                errors.append(e)
                started.set()

        th = threading.Thread(target=publisher, daemon=True)
        t_start = time.monotonic()
        th.start()
        started.wait(10)
        time.sleep(KILL_AFTER)  # scenario timing, not synchronisation
        old_token = r.cmd("GET", harness.LEASE_KEY)
        t_kill = time.monotonic()
        victim.kill()
        # Failover time: until another node holds the lease.
        new_leader = wait_until(
            lambda: (lambda n: n if n and n != leader else None)(lease_holder(r)), 30,
            interval=0.01, what="a new ingest leader after killing %s" % leader)
        t_failover = time.monotonic() - t_kill
        th.join(60)
        self.assertFalse(th.is_alive(), "publisher did not finish")
        self.assertEqual(errors, [])
        pub_secs = time.monotonic() - t_start
        harness.log("published %d raw messages in %.2fs (%.0f msg/s); killed leader %s at %.2fs" % (
            len(published), pub_secs, len(published) / pub_secs, leader, t_kill - t_start))

        # In-order ingest: once a sentinel published last is stored, everything is in.
        r.publish(topic, "sentinel")
        wait_until(lambda: r.cmd("XREVRANGE", stream_key(topic), "+", "-", "COUNT", 1)[0][1][1]
                   == b"sentinel", 30, what="the sentinel stored after failover")
        stored = [f["d"].decode() for _, f in xrange(r, topic)]
        self.assertEqual(stored[-1], "sentinel")
        stored = stored[:-1]

        dups = len(stored) - len(set(stored))
        pub_index = {p: i for i, p in enumerate(published)}
        unknown = [s for s in stored if s not in pub_index]
        order = [pub_index[s] for s in stored if s in pub_index]
        out_of_order = sum(1 for x, y in zip(order, order[1:]) if y <= x)
        lost = sorted(set(published) - set(stored))
        harness.log("failover: published=%d stored=%d lost=%d dups=%d out_of_order=%d "
                    "failover_time=%.3fs old_leader=%s new_leader=%s old_token=%r" % (
                        len(published), len(stored), len(lost), dups, out_of_order, t_failover,
                        leader, new_leader, old_token))
        if lost:
            harness.log("lost messages (first 20): %s" % lost[:20])
        self.assertEqual(unknown, [])
        self.assertEqual(dups, 0, "duplicates stored")
        self.assertEqual(out_of_order, 0, "stored out of publish order")
        self.assertEqual(len(lost), 0, "raw messages lost across the failover")


if __name__ == "__main__":
    harness.main()
