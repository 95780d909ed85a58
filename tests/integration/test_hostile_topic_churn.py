"""A client that names topics nobody has, as fast as it can: every topic new to an edge costs
Redis a subscription and two function calls (the stream's position, a read from it), so one
client sending SSE
requests of 64 made-up topics each (or WebSocket subscribe/unsubscribe pairs) had the edge
make some 150,000 function calls a second, most of a Redis core, with nothing but its own
requests (measured: 500 such requests in 0.2 s made 32,581 FCALLs). --topic-rate bounds the
topics an edge takes on per second; a request past it is turned away to retry (SSE: `retry:`
and close, which EventSource follows; long-poll: 503; WebSocket: error `busy`, the connection
kept), and a request for topics the edge already serves is never turned away."""

import socket
import time

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, scrape, split_cursor,
                     wait_live_subscribed)
from hostile import Bystander, assert_idle
from wsclient import WSClient, request

RATE = 2  # topics per second: a burst of 64 (one whole request), then a token every 500 ms


def fcalls(r):
    for line in r.cmd("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_fcall:") or line.startswith("cmdstat_fcall_ro:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def sse_request(port, topics):
    """One SSE request for the topics (multi-topic: /events?topic=...); returns (status line,
    what came within 0.3 s, closed)."""
    return sse_get(port, "/events?" + "&".join("topic=" + t for t in topics))


def sse_get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * harness.SCALE)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        buf, closed = b"", False
        s.settimeout(0.3 * harness.SCALE)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                buf += chunk
        except socket.timeout:
            pass
        return buf.split(b"\r\n", 1)[0], buf, closed
    finally:
        s.close()


class TopicChurn(HeraldTestCase):

    def start(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, args=["--topic-rate", str(RATE), "--threads", "1"])
        self.bystander = Bystander(self, self.h, self.r)
        return self.h

    def rejected(self):
        return scrape(self.h.port).get('herald_rejected_total{reason="topic_rate"}', 0)

    def test_sse_requests_of_new_topics_are_paced_and_told_to_retry(self):
        h = self.start()
        calls0, t0 = fcalls(self.r), time.monotonic()
        accepted = turned = 0
        for i in range(10):
            status, body, closed = sse_request(h.port, ["n%d.%d" % (i, j) for j in range(32)])
            self.assertEqual(status, b"HTTP/1.1 200 OK", body[:200])
            self.assertIn(b"retry:", body)
            if closed:
                turned += 1  # told to come back: EventSource reconnects after retry:
            else:
                accepted += 1
        elapsed = time.monotonic() - t0
        self.assertGreater(turned, 0)
        self.assertGreater(accepted, 0)
        # the topics taken on, and Redis' work for them, stay within the burst and the rate
        allowed = 64 + RATE * elapsed
        self.assertLessEqual(accepted * 32, allowed, (accepted, elapsed))
        harness.wait_until(lambda: self.rejected() == turned, 5,
                           what="turned-away requests counted")
        time.sleep(0.5)
        # two function calls a new topic (its position, and the read from it), one a second
        # for the edge's own canary and lease
        self.assertLessEqual(fcalls(self.r) - calls0, 2 * allowed + 10)
        self.assertIn("subscription turned away: new topics past --topic-rate", h.log())
        self.bystander.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_websocket_churn_is_refused_busy_and_served_topics_still_taken(self):
        h = self.start()
        ws = WSClient(h.port)
        self._closers.append(ws)
        t0, n = time.monotonic(), 0
        while True:
            n += 1
            self.assertLess(n, 1000, "never refused")
            topic = "w%d" % n
            reply = request(ws, {"type": "subscribe", "topic": topic, "id": n})
            if reply.get("type") == "error":
                self.assertEqual((reply.get("code"), reply.get("id")), ("busy", n), reply)
                break
            self.assertEqual(reply, {"type": "subscribed", "topic": topic, "id": n})
            self.assertEqual(request(ws, {"type": "unsubscribe", "topic": topic, "id": -n}),
                             {"type": "unsubscribed", "topic": topic, "id": -n})
        self.assertLessEqual(n - 1, 64 + RATE * (time.monotonic() - t0))
        # the bucket is empty: a topic the edge serves is taken at once, a new one is not
        self.assertEqual(request(ws, {"type": "subscribe", "topic": self.bystander.topic,
                                      "id": 0}),
                         {"type": "subscribed", "topic": self.bystander.topic, "id": 0})
        status, _, body = http_get(h.port, "/poll/never.seen?timeout=1")
        self.assertEqual(status, 503, body)
        status, body, closed = sse_get(h.port, "/events/never.seen.sse")  # one-topic SSE
        self.assertEqual((status, closed), (b"HTTP/1.1 200 OK", True), body[:200])
        self.assertIn(b"retry:", body)
        self.bystander.check()
        ev = ws.recv_json(10)
        self.assertEqual((ev.get("topic"), ev.get("data")), (self.bystander.topic,
                                                             "bystander-%d" % self.bystander.sent))
        # room again a little later, on the same connection
        time.sleep(3 / RATE)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": "later", "id": 1}),
                         {"type": "subscribed", "topic": "later", "id": 1})
        wait_live_subscribed(self.r, "later")
        sid = fcall_publish(self.r, "later", "after-churn")
        ev = ws.recv_json(10)
        self.assertEqual((ev.get("type"), split_cursor(ev["id"])[0]), ("event", sid), ev)
        assert_idle(self, h)


if __name__ == "__main__":
    harness.main()
