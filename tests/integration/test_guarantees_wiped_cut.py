"""Subscribers whose edge could not read their topic's stream before Redis lost its data
(FINDINGS F16, checker seed 236 --net-faults).

The edge reaches Redis through a TCP proxy of ours that can cut it off (every connection closed,
new ones refused) while publishers still reach Redis directly. Then Redis restarts without its
data. The events stored in the lost streams after these subscribers joined are gone; PROTOCOL.md
promises them a `reset` notice instead (the Gap notice), before anything of the new stream:

  - f.cut:   a fresh subscriber joins while the edge is cut off: its subscription's position
             was never read, so the stream it joined is unknown to the edge;
  - f.empty: a fresh subscriber joins before the cut, to a topic with no stream yet (the
             position read saw none); the stream is created and written during the cut;
  - f.known: a subscriber that got an event before the cut (the edge knows its epoch): the
             control, which was already right.
"""

import json
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from proxykit import TcpProxy


class WipedDuringCut(HeraldTestCase):

    def test_subscribers_the_edge_could_not_place_get_a_reset(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = TcpProxy(srv.port)
        h = self.edge_behind(proxy, args=["--ingest", "off", "--heartbeat", "1"])

        fcall_publish(r, "f.cut", "before-cut")  # f.cut's stream exists before anyone joins
        known = self.sse(h.port, "/events/f.known")
        empty = self.sse(h.port, "/events/f.empty")
        for t in ("f.known", "f.empty"):
            wait_live_subscribed(r, t)
        time.sleep(0.5)  # the subscriptions' positions are read and confirmed
        sid = fcall_publish(r, "f.known", "known-0")
        e = known.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "known-0"))

        proxy.cut()
        wait_until(lambda: h.readyz() == 503, 10 * harness.SCALE, interval=0.1,
                   what="/readyz 503 once the edge is cut off from Redis")
        cut = self.sse(h.port, "/events/f.cut")  # the edge answers; Redis is out of reach
        self.assertEqual(cut.status, 200)
        time.sleep(0.3)  # the join reaches the broker before the publishes below
        lost = {t: [fcall_publish(r, t, "lost-%s-%d" % (t, i)) for i in range(2)]
                for t in ("f.cut", "f.empty", "f.known")}
        self.assertTrue(all(lost.values()))

        srv.restart(keep_data=False)  # the streams, and the events just stored, are gone
        r.close()
        r2 = self.client(srv)
        proxy.heal()
        wait_until(lambda: h.readyz() == 200, 30 * harness.SCALE, interval=0.1,
                   what="/readyz 200 after the cut heals")
        for t in ("f.cut", "f.empty", "f.known"):
            wait_live_subscribed(r2, t)
        time.sleep(0.5)  # refills done
        after = {t: fcall_publish(r2, t, "after-" + t) for t in ("f.cut", "f.empty", "f.known")}

        firsts = {}
        for t, c in (("f.cut", cut), ("f.empty", empty), ("f.known", known)):
            e = c.next_event(20 * harness.SCALE)
            firsts[t] = (e.event, e.data)
            if e.event == "herald.gap":
                self.assertEqual(json.loads(e.data), {"topic": t, "reason": "reset"})
                e = c.next_event(10)
            self.assertEqual((split_cursor(e.id)[0], e.data), (after[t], "after-" + t),
                             "%s: the new stream's event, once" % t)
        # without the reset, the events stored after these subscribers joined were lost
        # without a word
        self.assertEqual({t: ev for t, (ev, _) in firsts.items()},
                         {t: "herald.gap" for t in firsts}, "the first thing each one got")
        self.assertIn("redis lost its data", h.log())
        m = harness.scrape(h.port)
        self.assertEqual(m.get("herald_redis_data_lost_total"), 1.0)

    def test_restart_with_data_sends_no_reset(self):
        """The same cut, with Redis keeping its data: the subscriber that joined during the
        cut gets the events stored after it joined (a refill), and nobody a reset."""
        srv = self.redis()
        r = self.client(srv)
        proxy = TcpProxy(srv.port)
        h = self.edge_behind(proxy, args=["--ingest", "off", "--heartbeat", "1"])
        fcall_publish(r, "f.cut", "before-cut")
        time.sleep(1.0)  # older than the edge's clock margin for a late first subscription
        proxy.cut()
        wait_until(lambda: h.readyz() == 503, 10 * harness.SCALE, interval=0.1,
                   what="/readyz 503 once the edge is cut off from Redis")
        cut = self.sse(h.port, "/events/f.cut")
        time.sleep(0.7)  # past the edge's clock margin for a late first subscription
        sids = [fcall_publish(r, "f.cut", "kept-%d" % i) for i in range(2)]
        srv.restart(keep_data=True)
        r.close()
        r2 = self.client(srv)
        proxy.heal()
        wait_until(lambda: h.readyz() == 200, 30 * harness.SCALE, interval=0.1,
                   what="/readyz 200 after the cut heals")
        got = [cut.next_event(20 * harness.SCALE) for _ in sids]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(s, "kept-%d" % i) for i, s in enumerate(sids)])
        wait_live_subscribed(r2, "f.cut")
        sid = fcall_publish(r2, "f.cut", "after")
        e = cut.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"))
        self.assertNotIn("redis lost its data", h.log())
        self.assertEqual(harness.scrape(h.port).get("herald_redis_data_lost_total"), 0.0)


if __name__ == "__main__":
    harness.main()
