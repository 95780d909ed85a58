"""The delivery canary in Redis Cluster mode: one heartbeat per primary the edge subscribes on,
on a sharded channel of a slot that primary serves. One primary's sharded subscriber connection
to the edge stays open but silently stops delivering (a TCP proxy of our own, announced by that
node as its address, drops every Redis->edge byte on it): /readyz turns 503 "canary stale"
within a few seconds, with herald_canary_age_seconds and one log line; the edge replaces that
connection, /readyz is 200 again, and the events published on that node meanwhile are
delivered, in order, once."""

import re

import harness
from harness import fcall_publish, http_get, split_cursor, wait_until
from test_cluster import Cluster, ClusterHerald, ClusterTestCase, slot_of
from proxykit import SilencingProxy
from test_guarantees_canary import canary_age

SSUBSCRIBE = b"$10\r\nSSUBSCRIBE\r\n"


class ClusterCanary(ClusterTestCase):

    def test_silent_stop_of_one_primary_and_recovery(self):
        # No replicas and a long node timeout: nothing fails over; only the edge's view breaks.
        self.cluster = c = Cluster(primaries=3, replicas=0, node_timeout_ms=15000)
        topic = "cc0"
        owner = c.node(c.owner_port(slot_of(topic)))
        proxy = SilencingProxy(owner.port, SSUBSCRIBE, b"$10\r\nssubscribe\r\n")
        self._closers.append(proxy)
        owner.cmd("CONFIG", "SET", "cluster-announce-port", str(proxy.port))
        wait_until(lambda: all(c.owner_port(slot_of(topic), via=n) == proxy.port
                               for n in c.nodes), 20,
                   what="every node announces the proxy as the owner's address")
        h = ClusterHerald(c, "edge-1", ["--ingest", "off"])
        self._heralds.append(h)
        wait_until(lambda: h.readyz() == 200, 20, what="edge ready")
        self.assertIsNone(canary_age(h.port), "no sharded connection yet: no canary")

        s = self.sse(h.port, "/events/" + topic)
        proxy.wait_confirmed(topic)
        with owner.client() as r:
            fcall_publish(r, topic, "before")
            self.assertEqual(s.next_event(10).data, "before")
            wait_until(lambda: (canary_age(h.port) or 99) < 2.0, 10,
                       what="the node's canary heard")
            self.assertEqual(h.readyz(), 200)

            self.assertEqual(proxy.mute_subscribers(), 1, "one sharded connection to silence")
            during = [fcall_publish(r, topic, "during-%d" % i) for i in range(3)]
            wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                       what="/readyz 503 after the silent stop")
            status, _, body = http_get(h.port, "/readyz")
            self.assertEqual((status, body.strip()), (503, b"canary stale"))
            self.assertGreaterEqual(canary_age(h.port), 3.0)
            self.assertEqual(len(re.findall(r'"canary stale: pub/sub delivery stopped',
                                            h.log())), 1)

            wait_until(lambda: h.readyz() == 200, 30 * harness.SCALE, interval=0.1,
                       what="/readyz 200 after the edge replaced the connection")
            self.assertIn("replacing the sharded subscriber connection", h.log())
            self.assertLess(canary_age(h.port), 3.0)
            got = [s.next_event(15) for _ in during]
            self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                             [(d, "during-%d" % i) for i, d in enumerate(during)])
            proxy.wait_confirmed(topic)
            sid = fcall_publish(r, topic, "after")
            e = s.next_event(10)
            self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"),
                             "no duplicate either")
        self.assertEqual(len(re.findall(r'"canary back', h.log())), 1)


if __name__ == "__main__":
    harness.main()
