"""A client resuming from a cursor whose stream Redis lost while its history was being read
(checker seed 3 --net-faults on 7571713: `reset`, then an event of the lost stream, then a
second `reset`; the checker counted the lost stream's events before it as silently skipped).

While a resuming subscription's history is read, the topic's live events are held for it and
sent after the history. Here the edge reaches Redis through a proxy of ours that holds back the
client's history read; meanwhile one live event of the old stream arrives (held), then Redis
loses the stream (FLUSHALL). The read, let through, finds no stream: a `reset` page, empty;
then a new stream starts. What was held from the old stream is from a stream that is gone: it must not
follow the `reset` (PROTOCOL.md: after `reset` the client continues in the new stream)."""

import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from proxykit import RefillHoldingProxy

TOPIC = "rr.t"


class ResumeAcrossReset(HeraldTestCase):

    def test_held_events_of_the_lost_stream_do_not_follow_the_reset(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = RefillHoldingProxy(srv.port, hold=0)
        proxy.stall = True
        h = self.edge_behind(proxy, args=["--ingest", "off"])
        a = self.sse(h.port, "/events/" + TOPIC)  # keeps the topic subscribed on the edge
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        fcall_publish(r, TOPIC, "old-0")
        cursor = a.next_event(10).id
        old1 = fcall_publish(r, TOPIC, "old-1")
        self.assertEqual(a.next_event(10).data, "old-1")

        with proxy.lock:
            proxy.armed = True  # the next history read (the resume below) is held
        b = self.sse(h.port, "/events/" + TOPIC, headers={"Last-Event-ID": cursor})
        self.assertEqual(b.status, 200)
        self.assertTrue(proxy.refill_sent.wait(10 * harness.SCALE), "no resume read was sent")
        old2 = fcall_publish(r, TOPIC, "old-2")  # live, held for b while its read is out
        self.assertEqual(a.next_event(10).data, "old-2")
        r.cmd("FLUSHALL")  # the stream, old-1 and old-2 with it, is gone
        proxy.release.set()  # the read finds no stream: a reset page with nothing after it
        time.sleep(0.5)
        new0 = fcall_publish(r, TOPIC, "new-0")  # a new stream
        got = []
        while not got or got[-1][1] != "new-0":
            e = b.next_event(10 * harness.SCALE)
            self.assertIsNotNone(e, "b stalled; got %r" % got)
            got.append((e.event or "message", e.data, e.id))
        kinds = [(k, d) for k, d, _ in got]
        first_reset = next(i for i, (k, _) in enumerate(kinds) if k == "herald.gap")
        after = [d for k, d in kinds[first_reset:] if k != "herald.gap"]
        self.assertEqual(after, ["new-0"], "after the reset, only the new stream: %r" % kinds)
        self.assertEqual(split_cursor(got[-1][2])[0], new0)
        self.assertNotIn(old1, [split_cursor(i)[0] for _, _, i in got if i])
        del old2


if __name__ == "__main__":
    harness.main()
