"""A client is cut off as a slow consumer only for what its socket did not take, never for
events the edge itself gathered before writing (issue 15's hold/resume paths, found as a flaky
refill test under ASan: a refill's held events and its last page reached a live client in one
service batch, more than --client-queue-max of them, before any write).

1. A burst of events larger than --client-queue-max that reaches the service thread in one
   batch (a pipelined publish: Redis writes the pub/sub messages in one go, the broker hands
   them over in one batch) reaches a client that reads.
2. A client resuming from history while more live events than --client-queue-max arrive (the
   history read held in a proxy) gets every event once, in order: the live events beyond the
   bound are read from history, which has them, instead of cutting the client off."""

import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from proxykit import RefillHoldingProxy
from test_ws_protocol import WSTestCase

TOPIC = "qb.t"
ARGS = ["--ingest", "off", "--client-queue-max", "16", "--client-queue-bytes", "1048576"]


def publish_burst(r, topic, payloads):
    """herald_publish of every payload in one pipeline; the stream IDs."""
    replies = r.pipeline([["FCALL", "herald_publish", 1, topic, p] for p in payloads])
    out = []
    for rid in replies:
        if isinstance(rid, Exception):
            raise rid
        out.append(rid.decode() if isinstance(rid, bytes) else rid)
    return out


class QueueBoundBursts(HeraldTestCase):

    def read_all(self, c, ids, prefix):
        got = []
        for _ in ids:
            try:
                e = c.next_event(20 * harness.SCALE)
            except Exception as exc:  # the stream ended: the client was cut off
                self.fail("stream ended after %d of %d events (%r)" % (len(got), len(ids), exc))
            self.assertNotEqual(e.event, "herald.gap", "a notice: %r" % e.data)
            got.append((split_cursor(e.id)[0], e.data))
        self.assertEqual(got, [(s, "%s-%d" % (prefix, i)) for i, s in enumerate(ids)],
                         "every event once, in order")

    def test_a_burst_beyond_the_queue_bound_reaches_a_reader(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=ARGS)
        c = self.sse(h.port, "/events/" + TOPIC)
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        for burst in range(5):
            prefix = "b%d" % burst
            ids = publish_burst(r, TOPIC, ["%s-%d" % (prefix, i) for i in range(64)])
            self.read_all(c, ids, prefix)
        m = harness.scrape(h.port)
        self.assertEqual(m.get("herald_slow_disconnects_total", 0), 0,
                         "nobody was cut off as slow")

    def test_live_events_beyond_the_bound_while_resuming_are_read_from_history(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = RefillHoldingProxy(srv.port, hold=2.0)
        h = self.edge_behind(proxy, args=ARGS)
        a = self.sse(h.port, "/events/" + TOPIC)  # keeps the topic live on the edge
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        fcall_publish(r, TOPIC, "old-0")
        cursor = a.next_event(10).id
        stored = [fcall_publish(r, TOPIC, "e-%d" % i) for i in range(30)]
        with proxy.lock:
            proxy.armed = True  # the resume's first history read is answered 2 s late
        c = self.sse(h.port, "/events/" + TOPIC, headers={"Last-Event-ID": cursor})
        self.assertEqual(c.status, 200)
        self.assertTrue(proxy.refill_sent.wait(20 * harness.SCALE), "no history read was sent")
        live = [fcall_publish(r, TOPIC, "e-%d" % i) for i in range(30, 70)]
        self.read_all(c, stored + live, "e")
        self.assertIn("live events beyond the queue bound while resuming", h.log(),
                      "the bound was reached while the read was out")
        sid = fcall_publish(r, TOPIC, "e-70")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "e-70"), "live again, once")
        m = harness.scrape(h.port)
        self.assertEqual(m.get("herald_slow_disconnects_total", 0), 0,
                         "nobody was cut off as slow")


class QueueBoundBurstsWS(WSTestCase):

    def test_a_burst_beyond_the_queue_bound_reaches_a_websocket_reader(self):
        self.start(ARGS)
        ws = self.ws(self.h)
        self.subscribe(ws, TOPIC, rid=1)
        wait_live_subscribed(self.r, TOPIC)
        for burst in range(5):
            payloads = ["b%d-%d" % (burst, i) for i in range(64)]
            ids = publish_burst(self.r, TOPIC, payloads)
            got = [ws.recv_json(timeout=20 * harness.SCALE) for _ in ids]
            self.assertEqual(got, [self.expected(TOPIC, s, p) for s, p in zip(ids, payloads)],
                             "every event once, in order")
        self.assertEqual(harness.scrape(self.h.port).get("herald_slow_disconnects_total", 0), 0,
                         "nobody was cut off as slow")


if __name__ == "__main__":
    harness.main()
