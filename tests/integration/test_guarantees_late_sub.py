"""A fresh subscriber to a topic its edge has never subscribed, admitted while Redis is away
(FINDINGS F1, checker seed 5: a WebSocket subscriber on ck-3 lost the 42 events stored
between its confirmation and the edge's first SUBSCRIBE, no notice), or while the edge's broker
thread is held up (the service thread's SUB reaches it late: the first refill started from when
the broker took the SUB, so what was stored between the client's head and then was lost).

The client gets `200` while Redis is down; the edge is frozen (SIGSTOP) while Redis comes back
and an event is stored, so that the edge's first SUBSCRIBE of the topic comes after it,
deterministically. The event was stored after the client was answered: it must be delivered.
"""

import signal
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from threadstop import ThreadStop
from wsclient import WSClient, request

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

    def test_event_stored_before_a_late_sub_reaches_the_broker_is_delivered(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--threads", "2"])
        topic = "g.stalled"
        old = fcall_publish(r, topic, "before-request")
        time.sleep(1.0)  # older than the clock margin (0.5 s) when the clients ask
        sse, ws = [], []
        with ThreadStop(h.proc.pid):  # the broker thread (the process' main thread) alone
            for _ in range(4):
                sse.append(self.sse(h.port, "/events/" + topic))
                self.assertEqual(sse[-1].status, 200)
            for i in range(2):
                w = WSClient(h.port)
                self._closers.append(w)
                self.assertEqual(request(w, {"type": "subscribe", "topic": topic, "id": i}),
                                 {"type": "subscribed", "topic": topic, "id": i})
                ws.append(w)
            time.sleep(1.0)  # the broker takes the SUBs later than the margin
            sid = fcall_publish(r, topic, "while-held-up")
        wait_live_subscribed(r, topic)
        sid2 = fcall_publish(r, topic, "after")
        for c in sse:
            got = [(split_cursor(e.id)[0], e.data) for e in c.events(2, 10 * harness.SCALE)]
            self.assertEqual(got, [(sid, "while-held-up"), (sid2, "after")])
        for w in ws:
            got = [w.recv_json(10 * harness.SCALE) for _ in range(2)]
            self.assertEqual([(split_cursor(m["id"])[0], m["data"]) for m in got],
                             [(sid, "while-held-up"), (sid2, "after")], got)
        self.assertNotIn(old, [split_cursor(e.id)[0] for c in sse for e in c.pending()])


if __name__ == "__main__":
    harness.main()
