"""The refill of a topic after its subscriber connection came back, under the two ways it can
go wrong without Redis going away.

1. It holds the live events that
arrive meanwhile, at most --client-queue-max of them; the ones beyond are dropped because
"history keeps them". They must then be read from history: a refill whose last page was read
before they were stored must not end there.

The edge reaches Redis through a proxy of ours that cuts every connection once (the edge
reconnects, resubscribes and refills), then holds back the answer of the refill's history read
for a while after Redis ran it: the 40 events published in that window arrive live first, more
than the 16 the topic may hold."""

import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from proxykit import RefillHoldingProxy

TOPIC = "ho.t"


class HeldOverflow(HeraldTestCase):

    def subscriber_with_first_event(self, r, h):
        """An SSE subscriber of TOPIC on h that got e-0 (so the edge's refill starts from it)."""
        c = self.sse(h.port, "/events/" + TOPIC)
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        sid = fcall_publish(r, TOPIC, "e-0")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "e-0"))
        return c

    def test_live_events_beyond_the_hold_bound_are_read_from_history(self):
        self.hold_bound(["--client-queue-max", "16", "--client-queue-bytes", "1048576"], "")

    def test_live_events_beyond_the_hold_bytes_are_read_from_history(self):
        """The same bound in bytes (--client-queue-bytes): 40 events of 60 KB are 2.4 MB."""
        self.hold_bound(["--client-queue-max", "10000", "--client-queue-bytes", "1048576"],
                        "p" * 60000)

    def hold_bound(self, args, pad):
        srv = self.redis()
        r = self.client(srv)
        proxy = RefillHoldingProxy(srv.port, hold=2.0)
        h = self.edge_behind(proxy, args=["--ingest", "off"] + args)
        c = self.subscriber_with_first_event(r, h)

        proxy.cut_once()  # the edge reconnects, resubscribes and refills from e-0
        self.assertTrue(proxy.refill_sent.wait(20 * harness.SCALE), "no refill read was sent")
        ids = [fcall_publish(r, TOPIC, "e-%d%s" % (i, pad)) for i in range(1, 41)]
        got = []
        for _ in ids:
            e = c.next_event(20 * harness.SCALE)
            self.assertNotEqual(e.event, "herald.gap", "a notice for events history has: %r"
                                % e.data[:100])
            got.append((split_cursor(e.id)[0], e.data))
            if len(got) < len(ids) and got[-1][1] != "e-%d%s" % (len(got), pad):
                break
        self.assertEqual([(i, d[:8]) for i, d in got],
                         [(s, ("e-%d%s" % (i + 1, pad))[:8]) for i, s in enumerate(ids)],
                         "every event once, in order (the topic held some of them; the rest "
                         "only history has)")
        self.assertEqual([d for _, d in got], ["e-%d%s" % (i + 1, pad) for i in range(40)])
        self.assertIn("too many live events held", h.log(), "the hold bound was reached")
        wait_until(lambda: h.readyz() == 200, 10, what="ready")
        sid = fcall_publish(r, TOPIC, "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "live again, once")

    def test_a_refill_read_that_fails_is_tried_again(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = RefillHoldingProxy(srv.port, hold=0)
        proxy.stall = True
        h = self.edge_behind(proxy, args=["--ingest", "off"])
        c = self.subscriber_with_first_event(r, h)
        lib = r.cmd("FUNCTION", "DUMP")

        proxy.cut_once()  # the edge reconnects, resubscribes and refills from e-0
        self.assertTrue(proxy.refill_sent.wait(20 * harness.SCALE), "no refill read was sent")
        r.cmd("FUNCTION", "DELETE", "herald")  # the read, let through now, fails
        proxy.release.set()
        time.sleep(0.3)
        # the edge may have loaded the library again itself by now (its heartbeat met the gap:
        # test_library_flushed); either way the failed read must be tried again
        r.cmd("FUNCTION", "RESTORE", lib, "REPLACE")
        ids = [fcall_publish(r, TOPIC, "e-%d" % i) for i in range(1, 4)]
        got = [c.next_event(10 * harness.SCALE) for _ in ids]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(s, "e-%d" % (i + 1)) for i, s in enumerate(ids)],
                         "the events after the failed refill read, once each")
        self.assertIn("refill read failed", h.log())


if __name__ == "__main__":
    harness.main()
