"""A fresh subscriber to a topic its edge has never subscribed, admitted while Redis is away
(FINDINGS F1, checker seed 5: a WebSocket subscriber on ck-3 lost the 42 events stored
between its confirmation and the edge's first SUBSCRIBE, no notice).

The client gets `200` while Redis is down; the edge is frozen (SIGSTOP) while Redis comes back
and an event is stored, so that the edge's first SUBSCRIBE of the topic comes after it,
deterministically. The event was stored after the client was answered: it must be delivered.
"""

import signal
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_until

TOPIC = "g.late"


class LateFirstSubscription(HeraldTestCase):

    def test_event_stored_before_first_subscribe_is_delivered(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--heartbeat", "1"])
        old = fcall_publish(r, TOPIC, "before-request")
        time.sleep(1.0)  # older than the edge's clock margin (0.5 s) when the client asks
        r.cmd("SAVE")
        r.close()
        srv.stop()
        wait_until(lambda: h.readyz() == 503, 10, what="edge not ready without Redis")
        c = self.sse(h.port, "/events/" + TOPIC)  # answered 200 while Redis is away
        time.sleep(1.0)  # the request reached the broker long before Redis is back
        h.kill(signal.SIGSTOP)
        try:
            srv.start()
            r2 = self.client(srv)
            sid = fcall_publish(r2, TOPIC, "while-away")
            self.assertEqual(r2.cmd("PUBSUB", "NUMSUB", harness.live_channel(TOPIC))[1], 0)
        finally:
            h.kill(signal.SIGCONT)
        e = c.next_event(20 * harness.SCALE)
        self.assertNotEqual(e.event, "herald.gap", repr(e.data))
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "while-away"))
        self.assertNotEqual(split_cursor(e.id)[0], old)
        # live delivery goes on, no duplicate
        wait_until(lambda: r2.cmd("PUBSUB", "NUMSUB", harness.live_channel(TOPIC))[1] == 1, 10,
                   what="edge subscribed")
        sid2 = fcall_publish(r2, TOPIC, "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid2, "after"))


if __name__ == "__main__":
    harness.main()
