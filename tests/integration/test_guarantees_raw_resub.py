"""Raw ingest when a standby subscribed to the raw channels before the next leader (FINDINGS F2,
F3): what only that standby heard must never be stored behind later messages.

Deterministic schedule (SIGSTOP, no sleeps as synchronisation except scenario timing):
  1. edge-1 leads, edge-2 is a standby; edge-1 is frozen and every Redis client is killed:
     edge-2 subscribes again at once, edge-1 cannot;
  2. raw early-0..4 are published: only edge-2 hears them (PUBLISH returns 1); edge-2 is
     frozen (what Redis sends it waits in its socket, in order);
  3. edge-1 resumes, subscribes again, takes the lease after it expired and stores raw
     late-0..4 (it never heard early-*);
  4. edge-2 resumes, edge-1 is killed: edge-2 takes the lease.
Before the fix edge-2 then stored early-0..4 behind late-0..4 (F3). Now it learns from edge-1's
barrier and "caught" marker that edge-1 never heard them and drops them, counted in
herald_ingest_unled_total (the README's window: published before the leader subscribed again).
"""

import signal
import time

import harness
from harness import HeraldTestCase, raw_listeners, lease_holder, scrape, wait_until, xrange

TOPIC = "rawresub"



class RawAfterPartialResubscription(HeraldTestCase):

    def test_standby_only_messages_never_stored_out_of_order(self):
        srv = self.redis()
        r = self.client(srv)
        args = ["--lease-ms", "2000"]
        e1 = self.edge(srv, "edge-1", args)
        wait_until(lambda: lease_holder(r) == "edge-1", 20, what="edge-1 leading")
        e2 = self.edge(srv, "edge-2", args)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="both edges on raw channels")
        r.publish(TOPIC, "warm-up")
        wait_until(lambda: len(xrange(r, TOPIC)) == 1, 10, what="warm-up stored")

        e1.kill(signal.SIGSTOP)
        try:
            r.cmd("CLIENT", "KILL", "SKIPME", "yes")
            wait_until(lambda: raw_listeners(r) == 1, 10,
                       what="edge-2 subscribed again to raw channels")
            for i in range(5):
                self.assertEqual(r.publish(TOPIC, "early-%d" % i), 1)
            time.sleep(0.2)  # edge-2 reads them (scenario timing)
            e2.kill(signal.SIGSTOP)
        finally:
            e1.kill(signal.SIGCONT)
        try:
            # Right after SIGCONT the lease key still names edge-1 and its gauge may still read
            # 1 (it has not yet noticed its connections were killed): wait for the second
            # leadership, which follows its new raw subscription.
            wait_until(lambda: e1.log().count('"msg":"ingest leader"') == 2, 20,
                       what="edge-1 leading again (second leadership)")
            for i in range(5):
                self.assertEqual(r.publish(TOPIC, "late-%d" % i), 2,
                                 "edge-1 and the frozen edge-2 (its socket holds them)")
            wait_until(lambda: len(xrange(r, TOPIC)) == 6, 10, what="late-* stored by edge-1")
        finally:
            e2.kill(signal.SIGCONT)
        time.sleep(0.5)  # edge-2 reads what waited in its socket (scenario timing)
        e1.kill()
        wait_until(lambda: lease_holder(r) == "edge-2", 20, what="edge-2 leading")
        wait_until(lambda: scrape(e2.port).get("herald_ingest_leader") == 1, 10,
                   what="edge-2 past its barrier")
        r.publish(TOPIC, "final")
        wait_until(lambda: xrange(r, TOPIC)[-1][1]["d"] == b"final", 10, what="final stored")
        time.sleep(0.3)
        stored = [f["d"].decode() for _, f in xrange(r, TOPIC)]
        harness.log("stored: %s" % stored)
        self.assertEqual(stored, ["warm-up"] + ["late-%d" % i for i in range(5)] + ["final"],
                         "stored out of publish order or twice")
        self.assertEqual(scrape(e2.port).get("herald_ingest_unled_total"), 5)
        self.assert_serving(e2)

    def test_kept_messages_do_not_survive_a_standby_reconnection(self):
        """A standby keeps raw m-*; while its raw subscription is away the leader stores them
        (the stored copies never reach the standby). Kept across the reconnection, they were
        stored a second time when that standby led (ASan checker seed 5: stored late, out of
        order). Now the standby drops what it kept on the previous connection."""
        srv = self.redis()
        r = self.client(srv)
        args = ["--lease-ms", "3000"]
        e1 = self.edge(srv, "edge-1", args)
        wait_until(lambda: lease_holder(r) == "edge-1", 20, what="edge-1 leading")
        e2 = self.edge(srv, "edge-2", args)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="both edges on raw channels")
        r.publish(TOPIC, "warm-up")
        wait_until(lambda: len(xrange(r, TOPIC)) == 1, 10, what="warm-up stored")

        e1.kill(signal.SIGSTOP)  # the leader does not store them yet
        try:
            for i in range(3):
                self.assertEqual(r.publish(TOPIC, "m-%d" % i), 2)
            time.sleep(0.2)  # edge-2 reads and keeps them (scenario timing)
            e2.kill(signal.SIGSTOP)
            r.cmd("CLIENT", "KILL", "TYPE", "pubsub")  # both raw subscriptions go
        finally:
            e1.kill(signal.SIGCONT)
        try:
            # edge-1 still leads (stopped well under the lease) and stores what it had read
            wait_until(lambda: len(xrange(r, TOPIC)) == 4, 10, what="m-* stored by edge-1")
        finally:
            e2.kill(signal.SIGCONT)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="both edges back on raw channels")
        e1.kill()
        wait_until(lambda: lease_holder(r) == "edge-2", 20, what="edge-2 leading")
        wait_until(lambda: scrape(e2.port).get("herald_ingest_leader") == 1, 10,
                   what="edge-2 past its barrier")
        r.publish(TOPIC, "final")
        wait_until(lambda: xrange(r, TOPIC)[-1][1]["d"] == b"final", 10, what="final stored")
        time.sleep(0.3)
        stored = [f["d"].decode() for _, f in xrange(r, TOPIC)]
        harness.log("stored: %s" % stored)
        self.assertEqual(stored, ["warm-up", "m-0", "m-1", "m-2", "final"],
                         "stored twice or out of order")
        self.assertEqual(scrape(e2.port).get("herald_ingest_unled_total"), 3)


if __name__ == "__main__":
    harness.main()
