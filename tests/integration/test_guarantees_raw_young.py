"""Raw PUBLISHes heard only by an old standby must not be lost to an edge that subscribed after
them and wins the lease (FINDINGS F14, seed 165 --net-faults: 11 raw messages lost).

Schedule: edge-a leads, but its raw subscription goes through a proxy of ours that silences it
(it keeps renewing its lease and hears nothing); edge-c, a standby from the start, hears m-0..4
and keeps them. edge-b starts after them and listens for longer than a lease period (the F11
gate). edge-c's commands go through a proxy that holds each for 0.15 s, so edge-b is faster.
edge-a is frozen: its lease lapses.

Timing: an edge is young for 3 lease periods after it subscribes. edge-c is given those before
m-0..4, so that it is an old standby when the lease lapses (a young edge-c would wait too, and
the race would be decided by load: CI lost it once); edge-b listens for 1.2 lease periods, so
the lease lapses (at most one period after edge-a stops) well inside edge-b's youth. Before the fix edge-b took it (a race it won most of the
time with edge-c slowed), its barrier and "caught" marker made edge-c drop m-0..4 as never
heard by the new leader, and they were never stored. Now a young edge lets the lease lie free
for a lease period first: edge-c takes it and stores m-0..4."""

import signal
import time

import harness
from harness import HeraldTestCase, raw_listeners, lease_holder, wait_until, xrange
from proxykit import SilencingProxy

TOPIC = "rawyoung"
LEASE_S = 1.0
YOUNG_S = 3 * LEASE_S  # YOUNG_LEASES in edge/ingest_lease.c



class YoungEdgeAfterTheLostLeader(HeraldTestCase):

    def test_old_standby_takes_the_lease_and_stores_what_only_it_heard(self):
        srv = self.redis()
        r = self.client(srv)
        args = ["--lease-ms", str(int(LEASE_S * 1000))]
        pa = SilencingProxy(srv.port, b"$10\r\nPSUBSCRIBE\r\n", b"$10\r\npsubscribe\r\n")
        pc = SilencingProxy(srv.port)
        self._closers += [pa, pc]
        a = harness.Herald(pa.port, "edge-a", args)
        self._heralds.append(a)
        wait_until(lambda: lease_holder(r) == "edge-a", 20, what="edge-a leading")
        c = harness.Herald(pc.port, "edge-c", args)
        self._heralds.append(c)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="edge-a and edge-c on raw channels")
        time.sleep(YOUNG_S + 0.2)  # edge-c is an old standby from here on
        self.assertEqual(r.publish(TOPIC, "warm-up"), 2)
        wait_until(lambda: len(xrange(r, TOPIC)) == 1, 10, what="warm-up stored")

        self.assertEqual(pa.mute_subscribers(), 1, "edge-a's raw subscription silenced")
        for i in range(5):
            self.assertEqual(r.publish(TOPIC, "m-%d" % i), 2)
        time.sleep(0.3)  # edge-c reads them (scenario timing)
        b = self.edge(srv, "edge-b", args)
        wait_until(lambda: raw_listeners(r) == 3, 10, what="edge-b on raw channels")
        time.sleep(1.2 * LEASE_S)  # edge-b has listened for more than a lease period
        pc.command_delay = 0.15
        self.assertEqual(lease_holder(r), "edge-a", "edge-a still renews its lease")
        a.kill(signal.SIGSTOP)
        try:
            wait_until(lambda: lease_holder(r) not in (None, "edge-a"), 20,
                       what="a new leader")
            winner = lease_holder(r)
            wait_until(lambda: len(xrange(r, TOPIC)) >= 6, 15, what="m-0..4 stored")
            got = [d.get("d") for _, d in xrange(r, TOPIC)]
            self.assertEqual(got, [b"warm-up"] + [b"m-%d" % i for i in range(5)],
                             "stored once each, in order (new leader %s)" % winner)
            self.assertEqual(winner, "edge-c", "the standby that heard them leads")
        finally:
            a.kill(signal.SIGCONT)
        for h in (b, c):
            self.assertEqual(harness.scrape(h.port).get("herald_ingest_unled_total", 0), 0,
                             "%s dropped raw messages as unled" % h.node_id)


if __name__ == "__main__":
    harness.main()
