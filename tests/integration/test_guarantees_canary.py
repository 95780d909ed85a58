"""The delivery canary: a subscriber connection that stays open but silently stops delivering
(modelled by a TCP proxy of our own that keeps the edge's subscriber connection open and drops
every Redis->edge byte on it) turns /readyz to 503 "canary stale" within a few seconds, with
herald_canary_age_seconds and one log line; the edge then recovers (a new subscriber
connection), /readyz is 200 again, and the events published during the stop are delivered."""

import re
import time

import harness
from harness import HeraldTestCase, fcall_publish, http_get, split_cursor, wait_until
from proxykit import SilencingProxy

def canary_age(port):
    return harness.scrape(port).get("herald_canary_age_seconds")


class Canary(HeraldTestCase):

    def test_silent_stop_and_recovery(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off", "--heartbeat", "1"])
        self._heralds.append(h)
        self.assertLess(canary_age(h.port), 2.0, "a fresh edge has heard its canary")
        c = self.sse(h.port, "/events/cn")
        harness.wait_live_subscribed(r, "cn")
        proxy.wait_confirmed("cn")
        sid = fcall_publish(r, "cn", "before")
        self.assertEqual(c.next_event(10).data, "before")

        self.assertEqual(proxy.mute_subscribers(), 1, "one subscriber connection to silence")
        t0 = time.monotonic()
        during = [fcall_publish(r, "cn", "during-%d" % i) for i in range(3)]
        wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                   what="/readyz 503 after the silent stop")
        took = time.monotonic() - t0
        status, _, body = http_get(h.port, "/readyz")
        self.assertEqual((status, body.strip()), (503, b"canary stale"))
        self.assertGreaterEqual(canary_age(h.port), 3.0)
        self.assertEqual(len(re.findall(r'"canary stale: pub/sub delivery stopped', h.log())), 1)

        wait_until(lambda: h.readyz() == 200, 30 * harness.SCALE, interval=0.1,
                   what="/readyz 200 after recovery")
        self.assertLess(canary_age(h.port), 3.0)
        got = [c.next_event(15) for _ in during]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(d, "during-%d" % i) for i, d in enumerate(during)])
        harness.wait_live_subscribed(r, "cn")
        sid = fcall_publish(r, "cn", "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "no duplicate either")
        self.assertEqual(len(re.findall(r'"canary stale: pub/sub delivery stopped', h.log())), 1)
        self.assertEqual(len(re.findall(r'"canary back', h.log())), 1)
        harness.log("canary: /readyz 503 %.1fs after the silent stop" % took)

    def test_silent_stop_that_ends_by_itself_refills(self):
        """The same connection delivers again (what was dropped meanwhile is gone from it):
        the canary's return alone must refill every topic."""
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off"])
        self._heralds.append(h)
        c = self.sse(h.port, "/events/cb")
        harness.wait_live_subscribed(r, "cb")
        proxy.wait_confirmed("cb")
        self.assertEqual(proxy.mute_subscribers(), 1)
        during = [fcall_publish(r, "cb", "during-%d" % i) for i in range(3)]
        wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                   what="/readyz 503 after the silent stop")
        proxy.mute_subscribers(False)  # before the edge replaces the connection (3 s later)
        wait_until(lambda: h.readyz() == 200, 10 * harness.SCALE, interval=0.1,
                   what="/readyz 200 once the canary is heard again")
        got = [c.next_event(15) for _ in during]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(d, "during-%d" % i) for i, d in enumerate(during)])
        self.assertNotIn("replacing the subscriber connection", h.log(),
                         "this test is about the refill without a reconnection")
        self.assertEqual(len(re.findall(r'"canary back', h.log())), 1)
        sid = fcall_publish(r, "cb", "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "no duplicate either")

    def test_first_events_lost_on_a_new_subscription_are_refilled(self):
        """The first events published to a new subscription never arrive (the subscriber
        connection goes silent at once) while the edge's other Redis connection is slow. The
        subscription's position must be at or before those events, so that the refill on the
        canary's return delivers them; read after the SUBSCRIBE confirmation (as before), it
        came back after them and the refill skipped them all."""
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off"])
        self._heralds.append(h)
        proxy.command_delay = 0.4
        c = self.sse(h.port, "/events/cf")
        harness.wait_live_subscribed(r, "cf")
        proxy.wait_confirmed("cf")
        self.assertEqual(proxy.mute_subscribers(), 1)
        during = [fcall_publish(r, "cf", "first-%d" % i) for i in range(3)]
        proxy.command_delay = 0.0
        wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                   what="/readyz 503 after the silent stop")
        proxy.mute_subscribers(False)
        got = [c.next_event(20) for _ in during]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(d, "first-%d" % i) for i, d in enumerate(during)])
        sid = fcall_publish(r, "cf", "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "no duplicate either")


if __name__ == "__main__":
    harness.main()
