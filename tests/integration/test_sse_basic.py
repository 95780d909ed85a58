"""SSE basics on one edge: response headers, initial retry, heartbeats, and the exact frames of
FCALL-published events (id, event name, multi-line payloads, UTF-8 and NUL bytes)."""

import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, xrange


class SSEBasic(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1", ["--heartbeat", "1", "--retry-ms", "1234"])

    def subscribe(self, topic):
        c = self.sse(self.h.port, "/events/" + topic)
        self.assertEqual(c.status, 200, c.headers)
        wait_live_subscribed(self.r, topic)
        return c

    def test_headers_retry_heartbeat(self):
        c = self.sse(self.h.port, "/events/news")
        self.assertEqual(c.status, 200)
        ctype = c.headers.get("content-type", "")
        self.assertEqual(ctype.split(";")[0].strip(), "text/event-stream", c.headers)
        self.assertIn("no-cache", c.headers.get("cache-control", ""), c.headers)
        self.assertEqual(c.headers.get("x-accel-buffering"), "no", c.headers)
        self.assertEqual(c.headers.get("x-herald-node"), "edge-1", c.headers)
        self.assertNotIn("content-length", c.headers)

        t0 = time.monotonic()
        c.wait_comments(3, timeout=15)
        elapsed = time.monotonic() - t0
        self.assertTrue(bytes(c.raw).startswith(b"retry: 1234\n\n"), bytes(c.raw[:80]))
        self.assertEqual(c.retry, 1234)
        self.assertEqual([x.strip() for x in c.comments[:3]], ["hb", "hb", "hb"])
        self.assertIn(b"\n\n: hb\n\n", bytes(c.raw))
        self.assertEqual(c.pending(), [])
        harness.log("heartbeat: 3 comments in %.2fs with --heartbeat 1" % elapsed)

    def test_event_frames(self):
        c = self.subscribe("frames")
        cases = [
            # (payload bytes, event name, expected data lines on the wire)
            (b"hello", None, [b"hello"]),
            (b"named", "update", [b"named"]),
            (b"a\nb", None, [b"a", b"b"]),
            (b"a\r\nb", None, [b"a", b"b"]),
            (b"a\rb", None, [b"a", b"b"]),
            (b"x\r\ny\rz\nw", "multi", [b"x", b"y", b"z", b"w"]),
            ("h\u00e9llo \u2713 \U0001F600".encode(), None, ["h\u00e9llo \u2713 \U0001F600".encode()]),
            (b"nul\x00byte", None, [b"nul\x00byte"]),
            (b"after", None, [b"after"]),
        ]
        epoch = None
        for payload, ev, lines in cases:
            sid = fcall_publish(self.r, "frames", payload, ev)
            e = c.next_event()
            got_sid, got_epoch = split_cursor(e.id)
            self.assertEqual(got_sid, sid, "id of %r" % payload)
            if epoch is None:
                epoch = got_epoch
            self.assertEqual(got_epoch, epoch, "epoch changed within one stream")
            self.assertEqual(e.event, ev)
            expected_data = b"\n".join(lines).decode("utf-8")
            self.assertEqual(e.data, expected_data)
            frame = b"id: " + e.id.encode() + b"\n"
            if ev is not None:
                frame += b"event: " + ev.encode() + b"\n"
            frame += b"".join(b"data: " + ln + b"\n" for ln in lines) + b"\n"
            self.assertIn(frame, bytes(c.raw), "exact frame for %r" % payload)
        self.assertEqual(c.pending(), [])

        # The stream holds the exact payloads and names (field d, optional e).
        entries = xrange(self.r, "frames")
        self.assertEqual(len(entries), len(cases))
        for (payload, ev, _), (eid, fields) in zip(cases, entries):
            self.assertEqual(fields.get("d"), payload)
            self.assertEqual(fields.get("e"), ev.encode() if ev else None)
        harness.log("frames: %d events, epoch %s" % (len(cases), epoch))

    def test_health(self):
        status, hdrs, body = harness.http_get(self.h.port, "/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"))
        self.assertEqual(hdrs.get("x-herald-node"), "edge-1")
        status, hdrs, _ = harness.http_get(self.h.port, "/readyz")
        self.assertEqual(status, 200)
        self.assertEqual(hdrs.get("x-herald-node"), "edge-1")


if __name__ == "__main__":
    harness.main()
