"""A raw PUBLISH must be stored once even when the leader's store call is answered only after
its lease was lost (FINDINGS F13, seed 70 --net-faults: 17 raw messages stored twice).

Deterministic schedule: edge-1 leads, its Redis command connection goes through a proxy of our
own that, from a point on, holds every edge->Redis byte for 2.5 s (its raw subscription is not
delayed: it hears everything at once). Raw m-0..4 are published: edge-1 sends their store, which
waits in the proxy; its lease renewals wait too, so the lease lapses and edge-2 (which kept
m-0..4) takes it and stores them. edge-1 hears those stored copies while its own call is still
out; the call then reaches Redis and is refused (the lease is edge-2's). Before the fix the
refused messages were kept again, nothing told edge-1 they were stored, and when edge-1 led
again (edge-2 killed) it stored m-0..4 a second time."""

import signal
import time

import harness
from harness import HeraldTestCase, raw_listeners, lease_holder, wait_until, xrange
from proxykit import SilencingProxy

TOPIC = "rawrefused"



class RefusedStoreAfterLeaseLoss(HeraldTestCase):

    def test_refused_store_of_messages_stored_by_the_next_leader_is_not_kept(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        args = ["--lease-ms", "1000"]
        e1 = harness.Herald(proxy.port, "edge-1", args)
        self._heralds.append(e1)
        wait_until(lambda: lease_holder(r) == "edge-1", 20, what="edge-1 leading")
        e2 = self.edge(srv, "edge-2", args)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="both edges on raw channels")
        self.assertEqual(r.publish(TOPIC, "warm-up"), 2)
        wait_until(lambda: len(xrange(r, TOPIC)) == 1, 10, what="warm-up stored")
        time.sleep(1.5)  # edge-2 has listened for --lease-ms: it may compete (scenario timing)

        proxy.command_delay = 2.5
        for i in range(5):
            self.assertEqual(r.publish(TOPIC, "m-%d" % i), 2)
        wait_until(lambda: lease_holder(r) == "edge-2", 20, what="edge-2 took the lease")
        wait_until(lambda: len(xrange(r, TOPIC)) == 6, 20, what="m-0..4 stored by edge-2")
        # edge-1's delayed store reaches Redis and is refused; its answer comes back
        wait_until(lambda: '"standby"' in e1.log(), 20, what="edge-1 standing by")
        time.sleep(3.5)
        proxy.command_delay = 0.0
        time.sleep(3.0)  # what waited in the proxy is through

        e2.kill(signal.SIGKILL)
        wait_until(lambda: lease_holder(r) == "edge-1", 30, what="edge-1 leading again")
        self.assertEqual(r.publish(TOPIC, "after"), 1)
        wait_until(lambda: any(b"after" in v for _, d in xrange(r, TOPIC) for v in d.values()),
                   20, what="'after' stored")
        time.sleep(0.5)
        got = [b"|".join(d.values()) for _, d in xrange(r, TOPIC)]
        for i in range(5):
            n = sum(("m-%d" % i).encode() in g for g in got)
            self.assertEqual(n, 1, "m-%d stored %d times: %s" % (i, n, got))
        self.assertEqual(len(got), 7, got)


if __name__ == "__main__":
    harness.main()
