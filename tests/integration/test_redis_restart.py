"""Redis outage: connected clients stay connected (heartbeats keep coming), /readyz turns 503
while Redis is away and 200 once it is back, and a new event reaches the same client."""

import json
import time

import harness
from harness import HeraldTestCase, RedisError, fcall_publish, split_cursor, wait_live_subscribed, wait_until


class RedisRestart(HeraldTestCase):

    def test_outage_and_recovery(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--heartbeat", "1"])
        topic = "outage"
        c = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(r, topic)
        fcall_publish(r, topic, "before")
        self.assertEqual(c.next_event().data, "before")
        r.close()

        t_stop = time.monotonic()
        srv.stop()
        wait_until(lambda: h.readyz() == 503, 20, what="/readyz 503 with Redis down")
        t_unready = time.monotonic() - t_stop
        seen = len(c.comments)
        c.wait_comments(seen + 2, timeout=15)  # heartbeats go on during the outage
        self.assertFalse(c.closed)
        self.assertTrue(h.alive())
        status, _, body = harness.http_get(h.port, "/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"), "liveness does not depend on Redis")

        srv.start()  # same port, empty
        t_start = time.monotonic()
        wait_until(lambda: h.readyz() == 200, 40, what="/readyz 200 after Redis is back")
        t_ready = time.monotonic() - t_start
        r = self.client(srv)
        wait_live_subscribed(r, topic, timeout=20)

        # /readyz 200 means subscriptions are restored; the publish function should be loaded
        # again too. Retry briefly only on "function not found", and say so.
        retries = []

        def publish():
            try:
                return fcall_publish(r, topic, "after")
            except RedisError as e:
                retries.append(str(e))
                if "function" in str(e).lower():
                    return None
                raise
        sid = wait_until(publish, 10, interval=0.1, what="FCALL herald_publish after restart")
        e = c.next_event(15)
        gap = None
        if e.event == "herald.gap":
            gap = json.loads(e.data)
            self.assertEqual(gap, {"topic": topic, "reason": "reset"})
            e = c.next_event(15)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"))
        self.assertFalse(c.closed)
        harness.log("redis restart: unready after %.2fs, ready again %.2fs after restart, "
                    "%d heartbeats during outage, gap event before new data: %r, "
                    "FCALL retries: %r" % (t_unready, t_ready, len(c.comments) - seen, gap, retries))


if __name__ == "__main__":
    harness.main()
