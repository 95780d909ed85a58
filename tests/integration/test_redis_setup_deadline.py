"""A Redis connection that connects but never gets the answer to a step of its set-up
(FINDINGS F23, checker seeds 78, 166, 189 --net-faults: an edge whose link to Redis lost
packets while Redis restarted never became ready again).

The edge reaches Redis through a proxy that, once armed, mutes every Redis->edge byte of the
first connection that sends a given command: the function library check, the dataset check
(`SET <prefix>dataset .. NX GET`) on the command connection, the raw ingest's `PSUBSCRIBE`, or
the subscriber connection's first `SUBSCRIBE` (the canary's heartbeat covers that one).
Then the proxy drops every connection, as a Redis restart does. A reply held up on a lossy
link behaves the same: TCP retransmits it at doubling intervals, so after the loss stops the
next try may be a minute away. `--redis-timeout-ms` bounds a connection's connect and set-up:
past it the connection is closed and made again, and the edge is ready and delivering.
"""

import unittest

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from proxykit import MutingProxy

TIMEOUT_MS = 1500


class SetupDeadline(HeraldTestCase):

    def _mute_one_setup_step(self, marker, what, logged="set-up timed out",
                             metric="herald_redis_setup_timeouts_total"):
        srv = self.redis()
        r = self.client(srv)
        proxy = MutingProxy(srv.port)
        h = self.edge_behind(proxy, args=["--redis-timeout-ms", str(TIMEOUT_MS),
                                          "--heartbeat", "1"])
        sub = self.sse(h.port, "/events/setup.t")
        wait_live_subscribed(r, "setup.t")

        proxy.arm_and_drop(marker)  # every connection made again, one muted in its set-up
        wait_until(lambda: proxy.muted == 1, 10 * harness.SCALE, interval=0.05,
                   what="the %s of a new connection muted" % what)
        wait_until(lambda: h.readyz() == 200, (TIMEOUT_MS / 1000 + 10) * harness.SCALE,
                   interval=0.1, what="/readyz 200 again after a muted %s" % what)
        logged = (logged,) if isinstance(logged, str) else logged
        metric = (metric,) if isinstance(metric, str) else metric
        self.assertTrue(any(line in h.log() for line in logged), "none of %r logged" % (logged,))
        m = harness.scrape(h.port)
        self.assertGreaterEqual(sum(m.get(name, 0) for name in metric), 1.0, metric)

        # delivering: an event published now reaches the subscriber, after nothing else
        wait_live_subscribed(r, "setup.t")
        sid = fcall_publish(r, "setup.t", "after")
        while True:
            e = sub.next_event(10)
            self.assertIsNotNone(e, "no event after the edge was ready again")
            if e.data == "after":
                break
        self.assertEqual(split_cursor(e.id)[0], sid)
        self.assertEqual(proxy.muted, 1)

    def test_muted_library_check(self):
        self._mute_one_setup_step(b"FCALL_RO", "function library check")

    def test_muted_dataset_check(self):
        self._mute_one_setup_step(b"dataset\r\n", "dataset check")

    def test_muted_ingest_psubscribe(self):
        self._mute_one_setup_step(b"$10\r\nPSUBSCRIBE\r\n", "raw ingest PSUBSCRIBE")

    def test_muted_subscriber_connection(self):
        # The subscriber connection has no set-up of its own: each topic's SUBSCRIBE is
        # confirmed on its own, and the canary's heartbeat, not heard, replaces the connection;
        # or, sooner, when its CLIENT SETNAME went out in the same write and is not answered,
        # the answer watch (owing an answer, silent for --redis-timeout-ms).
        self._mute_one_setup_step(b"$9\r\nSUBSCRIBE\r\n", "subscriber connection",
                                  logged=("canary stale: replacing the subscriber connection",
                                          "answered nothing for --redis-timeout-ms"),
                                  metric=("herald_redis_answer_timeouts_total",
                                          "herald_redis_reconnects_total"))


if __name__ == "__main__":
    unittest.main()
