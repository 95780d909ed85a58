"""/metrics as an operator reads it: the gauges follow clients as they come and go, the
counters and latency histograms move as events flow, every histogram is well formed, and a
scrape in the middle of a publishing load answers with consistent, increasing counters."""

import re
import threading
import time

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, scrape, wait_live_subscribed,
                     wait_until)
from wsclient import WSClient, request

KEY = "metrics-key"


def histogram(text, name):
    """[(le, cumulative count)], _sum, _count of one histogram in the exposition text."""
    buckets = [(m.group(1), int(m.group(2))) for m in
               re.finditer(r'^%s_bucket\{le="([^"]+)"\} (\d+)$' % name, text, re.M)]
    s = float(re.search(r"^%s_sum (\S+)$" % name, text, re.M).group(1))
    c = int(re.search(r"^%s_count (\d+)$" % name, text, re.M).group(1))
    return buckets, s, c


class Metrics(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1", ["--publish-key", KEY, "--topic-linger", "0",
                                                "--threads", "2"])
        self.p = self.h.port

    def test_values_follow_clients_and_events(self):
        m0 = scrape(self.p)
        for k in ('herald_connections{transport="sse"}', 'herald_connections{transport="ws"}',
                  "herald_subscriptions", "herald_topics", "herald_deliveries_total",
                  "herald_delivery_latency_seconds_count"):
            self.assertEqual(m0[k], 0, k)
        self.assertEqual(m0["herald_redis_up"], 1)
        self.assertEqual(m0["herald_ready"], 1)

        sse = [self.sse(self.p, "/events/m.a") for _ in range(3)]
        multi = self.sse(self.p, "/events?topic=m.a&topic=m.b")
        ws = WSClient(self.p)
        self.addCleanup(ws.close)
        for t in ("m.a", "m.b"):
            self.assertEqual(request(ws, {"type": "subscribe", "topic": t})["type"],
                             "subscribed")
        wait_live_subscribed(self.r, "m.a")
        wait_live_subscribed(self.r, "m.b")
        m1 = scrape(self.p)
        self.assertEqual(m1['herald_connections{transport="sse"}'], 4)
        self.assertEqual(m1['herald_connections{transport="ws"}'], 1)
        self.assertEqual(m1["herald_subscriptions"], 3 + 2 + 2)
        self.assertEqual(m1["herald_topics"], 2)

        n = 20
        for i in range(n):
            fcall_publish(self.r, "m.a", "e%d" % i)
        for c in sse:
            c.events(n)
        # 3 single SSE + the multi stream + the WS client, each got every m.a event
        want = 5 * n
        wait_until(lambda: scrape(self.p)["herald_delivery_latency_seconds_count"] >= want,
                   what="every delivery observed")
        text = http_get(self.p, "/metrics")[2].decode()
        buckets, total, count = histogram(text, "herald_delivery_latency_seconds")
        self.assertEqual(count, want)
        self.assertEqual(buckets[-1], ("+Inf", count))
        self.assertEqual([b[1] for b in buckets], sorted(b[1] for b in buckets))
        self.assertGreater(total, 0)
        m2 = scrape(self.p)
        self.assertEqual(m2["herald_events_in_total"] - m1["herald_events_in_total"], n)
        self.assertEqual(m2["herald_deliveries_total"] - m1["herald_deliveries_total"], want)
        self.assertGreater(m2["herald_bytes_out_total"], m1["herald_bytes_out_total"] + want * 10)

        st, _, body = http_get(self.p, "/publish/m.b", method="POST", body=b"x",
                               headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(st, 200, body)
        r = request(ws, {"type": "publish", "topic": "m.b", "data": "y"})
        self.assertEqual(r["type"], "error")  # no key on this connection: refused, not timed
        text = http_get(self.p, "/metrics")[2].decode()
        _, _, pubs = histogram(text, "herald_publish_latency_seconds")
        self.assertEqual(pubs, 1)
        self.assertEqual(scrape(self.p)["herald_published_total"], 1)

        for c in sse + [multi]:
            c.close()
        ws.close()
        wait_until(lambda: scrape(self.p)["herald_subscriptions"] == 0, what="subs gone")
        wait_until(lambda: scrape(self.p)["herald_topics"] == 0, what="topics released")
        m3 = scrape(self.p)
        self.assertEqual(m3['herald_connections{transport="sse"}'], 0)
        self.assertEqual(m3['herald_connections{transport="ws"}'], 0)

    def test_scrape_under_load(self):
        clients = [self.sse(self.p, "/events/load") for _ in range(20)]
        wait_live_subscribed(self.r, "load")
        stop = threading.Event()
        published = [0]

        def publish():
            with harness.RedisClient(self.srv.port) as r:
                while not stop.is_set():
                    r.pipeline([["FCALL", "herald_publish", "1", "load", "p"]] * 10)
                    published[0] += 10
                    time.sleep(0.01)

        th = threading.Thread(target=publish)
        th.start()
        try:
            seen = []
            for _ in range(10):
                m = scrape(self.p)
                seen.append((m["herald_events_in_total"], m["herald_deliveries_total"],
                             m["herald_delivery_latency_seconds_count"],
                             m["herald_bytes_out_total"]))
                time.sleep(0.1)
        finally:
            stop.set()
            th.join()
        for a, b in zip(seen, seen[1:]):
            for x, y in zip(a, b):
                self.assertLessEqual(x, y, "a counter went backwards: %r" % seen)
        self.assertGreater(seen[-1][1], seen[0][1], "deliveries moved during the load")
        for c in clients:
            c.events(published[0], timeout=30)
        wait_until(lambda: scrape(self.p)["herald_deliveries_total"] == 20 * published[0],
                   what="every event delivered to every client")

    def test_long_poll_answers_count_in_bytes_out(self):
        """herald_bytes_out_total counts what long-polls are answered with (and any answer's
        head and body), not only what streams write: a fleet of long-pollers is not 0 bytes."""
        sid = fcall_publish(self.r, "m.poll", "x" * 2000)
        m0 = scrape(self.p)
        st, hdrs, body = http_get(self.p, "/poll/m.poll?since=0-0&timeout=0")
        self.assertEqual(st, 200, body)
        self.assertIn(sid, body.decode())
        m1 = scrape(self.p)
        # between the two scrapes: the poll's answer and the first scrape's own answer
        self.assertGreaterEqual(m1["herald_bytes_out_total"] - m0["herald_bytes_out_total"],
                                len(body) + 100)


if __name__ == "__main__":
    harness.main()
