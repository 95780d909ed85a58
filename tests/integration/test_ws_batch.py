"""WebSocket fan-out writes: without permessage-deflate the edge queues every event as one
pre-built frame shared by all subscribers and writes as many queued frames as fit in one socket
write. A client that offers permessage-deflate is declined and served the same way.
A burst published at once must reach a plain and a deflate-offering client as exactly the same
messages, in order, whatever the frame length form (7-bit, 16-bit, 64-bit) and when one frame is
larger than the edge's write buffer. Replies and events interleave as whole frames."""

import time

import harness
from harness import stream_key, wait_live_subscribed
from test_ws_protocol import WSTestCase


def burst_payloads():
    """Payloads whose JSON event crosses every frame length boundary: around 125/126 bytes,
    around 65535/65536 and far past the edge's 64 KiB write buffer (quotes double when
    escaped)."""
    out = []
    for i in range(120):
        out.append("e%03d-" % i + "x" * (i % 7) * 13)
    for n in range(20, 40):          # JSON lengths around 126 with the fixed event fields
        out.append("b" * n)
    out.append("q" * 65000)          # JSON just under/over 65535 with the envelope
    out.append('"' * 40000)          # 80,000+ bytes of JSON: a 64-bit length, > write buffer
    for i in range(100):
        out.append("tail-%d" % i)
    return out


class Burst(WSTestCase):

    def test_burst_exact_for_plain_and_deflate_offering_clients(self):
        self.start()
        topic = "burst.t"
        plain = self.ws(self.h)
        comp = self.ws(self.h, deflate=True)
        self.assertFalse(comp.deflate, "permessage-deflate negotiated: %r" % (comp.headers,))
        self.assertFalse(plain.deflate)
        self.subscribe(plain, topic, rid=1)
        self.subscribe(comp, topic, rid=2)
        wait_live_subscribed(self.r, topic)
        payloads = burst_payloads()
        ids = self.r.pipeline([["FCALL", "herald_publish", 1, topic, p] for p in payloads])
        for rid in ids:
            self.assertIsInstance(rid, bytes, "publish failed: %r" % (rid,))
        want = [self.expected(topic, rid.decode(), p) for rid, p in zip(ids, payloads)]
        for name, ws in (("plain", plain), ("deflate", comp)):
            got = [ws.recv_json(timeout=20.0) for _ in want]
            for i, (g, w) in enumerate(zip(got, want)):
                self.assertEqual(g, w, "%s client, event %d of %d" % (name, i, len(want)))
            self.assert_pong_next(ws, "%s client after the burst" % name)
        for ws in (plain, comp):
            self.assertFalse(any(f.rsv & 4 for f in ws.frames), "a compressed frame")
        self.assertEqual(self.r.cmd("XLEN", stream_key(topic)), len(payloads))
        self.check_watcher("the burst")

    def test_replies_between_events_stay_whole(self):
        """JSON pings answered while events stream: every frame parses, nothing is lost."""
        self.start()
        topic = "burst.mixed"
        ws = self.ws(self.h)
        self.subscribe(ws, topic, rid="s")
        wait_live_subscribed(self.r, topic)
        n = 300
        for i in range(n):
            if i % 30 == 0:
                ws.send_json({"type": "ping", "id": i})
            self.r.cmd("FCALL", "herald_publish", 1, topic, "m-%d" % i)
        events, pongs = [], []
        end = harness.deadline(20.0)
        while len(events) < n or len(pongs) < n // 30:
            self.assertLess(time.monotonic(), end, "timed out: %d events, %d pongs" % (
                len(events), len(pongs)))
            m = ws.recv_json(timeout=20.0)
            (events if m["type"] == "event" else pongs).append(m)
        self.assertEqual([e["data"] for e in events], ["m-%d" % i for i in range(n)])
        self.assertEqual(sorted(p["id"] for p in pongs), list(range(0, n, 30)))
        self.assertTrue(all(p["type"] == "pong" for p in pongs), pongs)


if __name__ == "__main__":
    harness.main()
