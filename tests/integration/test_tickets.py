"""Single-use sign-in tickets (POST /tickets, ?ticket=): a browser's EventSource cannot set
headers, so instead of a long-lived token in the URL (kept in access logs, proxies, history) the
page trades its token for a ticket that is good once, for --ticket-ttl seconds, on any edge that
shares the Redis. A ticket carries exactly its token's rights, is never logged, and a redemption
that Redis cannot answer is a clear 503, never a hang."""

import json
import signal
import time
import unittest

import harness
from harness import HeraldTestCase, SSEClient, http_get, make_jwt
from wsclient import Closed, WSClient

SECRET = "ticket-test-secret"
KEY = "ticket-publish-key"


def token(**claims):
    c = {"sub": "u1", "subscribe": ["t/*"], "exp": int(time.time()) + 600}
    c.update(claims)
    return make_jwt(SECRET, c)


class Tickets(HeraldTestCase):

    def start(self, srv=None, node="edge-1", *extra):
        srv = srv or self.redis()
        return self.edge(srv, node, ["--jwt-secret", SECRET, "--publish-key", KEY,
                                     "--log-level", "debug"] + list(extra))

    def issue(self, h, tok=None, headers=None):
        hdrs = dict(headers or {})
        if tok is not None:
            hdrs["Authorization"] = "Bearer " + tok
        status, _, body = http_get(h.port, "/tickets", hdrs, method="POST", body=b"")
        return status, body

    def ticket(self, h, tok=None, **kw):
        status, body = self.issue(h, tok or token(), **kw)
        self.assertEqual(status, 200, body)
        obj = json.loads(body)
        t = obj["ticket"]
        self.assertGreaterEqual(len(t), 22)  # >= 128 bits, base64url
        self.assertTrue(all(ch.isalnum() or ch in "-_" for ch in t), t)
        return t, obj["expires_in"]

    def sse_status(self, h, path):
        c = SSEClient(h.port, path)
        self._closers.append(c)
        status = c.status
        c.close()
        return status

    def serving(self, h):
        """The edge is alive and serves a token holder (anonymous subscribing is off)."""
        self.assertTrue(h.alive(), h.log())
        c = self.sse(h.port, "/events/t/alive", {"Authorization": "Bearer " + token()})
        self.assertEqual(c.status, 200)
        c.wait_retry(10)
        c.close()

    def metric(self, h, outcome):
        _, _, body = http_get(h.port, "/metrics")
        for line in body.decode().splitlines():
            if line.startswith('herald_tickets_total{outcome="%s"}' % outcome):
                return int(line.split()[-1])
        self.fail("no herald_tickets_total{outcome=%s} in /metrics" % outcome)

    def test_sse_ticket_works_once(self):
        h = self.start()
        t, ttl = self.ticket(h)
        self.assertEqual(ttl, 30)
        c = self.sse(h.port, "/events/t/a?ticket=" + t)
        self.assertEqual(c.status, 200)
        c.wait_retry(10)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 401)
        # multi-topic SSE
        t2, _ = self.ticket(h)
        self.assertEqual(self.sse_status(h, "/events?topic=t/a&topic=t/b&ticket=" + t2), 200)
        self.assertEqual(self.sse_status(h, "/events?topic=t/a&topic=t/b&ticket=" + t2), 401)
        self.assertEqual(self.metric(h, "issued"), 2)
        self.assertEqual(self.metric(h, "redeemed"), 2)
        self.assertEqual(self.metric(h, "refused"), 2)
        # events flow on the ticket's stream
        r = self.client(self._redises[0])
        harness.wait_live_subscribed(r, "t/a")
        harness.fcall_publish(r, "t/a", "hello")
        ev = c.next_event(10)
        self.assertEqual(ev.data, "hello")

    def test_long_poll_ticket_works_once(self):
        h = self.start()
        t, _ = self.ticket(h)
        status, _, body = http_get(h.port, "/poll/t/a?timeout=0&ticket=" + t)
        self.assertEqual(status, 200, body)
        self.assertIn(b'"events"', body)
        status, hdrs, _ = http_get(h.port, "/poll/t/a?timeout=0&ticket=" + t)
        self.assertEqual(status, 401)
        self.assertIn("invalid_token", hdrs.get("www-authenticate", ""))

    def test_websocket_ticket_works_once(self):
        h = self.start()
        t, _ = self.ticket(h)
        ws = WSClient(h.port, path="/ws?ticket=" + t)
        self._closers.append(ws.sock)
        ws.send_json({"type": "subscribe", "topic": "t/a"})
        self.assertEqual(ws.recv_json()["type"], "subscribed")
        ws.send_json({"type": "subscribe", "topic": "x/forbidden"})
        self.assertEqual(ws.recv_json().get("code"), "forbidden")
        # reused: the connection is refused (closed 1008 before any message is read)
        ws2 = WSClient(h.port, path="/ws?ticket=" + t)
        self._closers.append(ws2.sock)
        with self.assertRaises(Closed) as cm:
            ws2.recv_json(10)
        self.assertEqual(cm.exception.code, 1008)
        self.assertIn("ticket", cm.exception.reason or "")

    def test_ticket_is_redeemed_on_another_edge(self):
        srv = self.redis()
        h1 = self.start(srv, "edge-1")
        h2 = self.start(srv, "edge-2")
        t, _ = self.ticket(h1)
        self.assertEqual(self.sse_status(h2, "/events/t/a?ticket=" + t), 200)
        self.assertEqual(self.sse_status(h1, "/events/t/a?ticket=" + t), 401)
        self.assertEqual(self.sse_status(h2, "/events/t/a?ticket=" + t), 401)

    def test_expired_ticket_is_refused(self):
        h = self.start(None, "edge-1", "--ticket-ttl", "1")
        t, ttl = self.ticket(h)
        self.assertEqual(ttl, 1)
        time.sleep(1.5)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 401)

    def test_ticket_has_its_tokens_rights_only(self):
        h = self.start()
        t, _ = self.ticket(h, token(subscribe=["a"]))
        self.assertEqual(self.sse_status(h, "/events/b?ticket=" + t), 403)
        # a forbidden attempt still used the ticket up
        self.assertEqual(self.sse_status(h, "/events/a?ticket=" + t), 401)
        t, _ = self.ticket(h, token(subscribe=["a"]))
        status, _, _ = http_get(h.port, "/poll/b?timeout=0&ticket=" + t)
        self.assertEqual(status, 403)

    def test_issuing_needs_a_valid_token(self):
        h = self.start()
        self.assertEqual(self.issue(h)[0], 401)
        self.assertEqual(self.issue(h, "not.a.token")[0], 401)
        self.assertEqual(self.issue(h, token(exp=int(time.time()) - 3600))[0], 401)
        # the publish key has no claims to bind a ticket to
        self.assertEqual(self.issue(h, KEY)[0], 403)
        # a ticket does not issue tickets
        t, _ = self.ticket(h)
        status, _, _ = http_get(h.port, "/tickets?ticket=" + t, method="POST", body=b"")
        self.assertEqual(status, 401)
        status, hdrs, _ = http_get(h.port, "/tickets")
        self.assertEqual(status, 405)
        # a body: none needed, a small one ignored, a large one or none framed refused
        auth = {"Authorization": "Bearer " + token()}
        status, _, _ = http_get(h.port, "/tickets", auth, method="POST", body=b"{}")
        self.assertEqual(status, 200)
        status, _, _ = http_get(h.port, "/tickets", auth, method="POST", body=b"x" * 2000)
        self.assertEqual(status, 413)
        raw = harness.raw_request(h.port, ("POST /tickets HTTP/1.1\r\nHost: x\r\n"
                                           "Authorization: Bearer %s\r\n\r\n" % token()).encode())
        self.assertTrue(raw.startswith(b"HTTP/1.1 411"), raw[:80])
        # a ticket is redeemed only on the subscriber routes
        t, _ = self.ticket(h)
        status, _, _ = http_get(h.port, "/eventsX?ticket=" + t)
        self.assertEqual(status, 404)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 200)
        # malformed and unknown tickets
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=garbage%20x"), 401)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + "A" * 32), 401)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + "A" * 600), 401)
        self.serving(h)

    def test_cookie_signs_in_post_tickets_from_its_own_origin_only(self):
        h = self.start(None, "edge-1", "--auth-cookie", "tok")
        cookie = {"Cookie": "tok=" + token()}
        status, body = self.issue(h, headers=cookie)
        self.assertEqual(status, 200, body)
        t = json.loads(body)["ticket"]
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 200)
        # another site's page posting with the user's cookie gets nothing
        status, _ = self.issue(h, headers=dict(cookie, Origin="http://evil.example"))
        self.assertEqual(status, 401)

    def test_ticket_never_logged(self):
        h = self.start()
        tickets = [self.ticket(h)[0] for _ in range(4)]
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + tickets[0]), 200)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + tickets[0]), 401)
        http_get(h.port, "/poll/t/a?timeout=0&ticket=" + tickets[1])
        self.assertEqual(self.sse_status(h, "/events/x?ticket=" + tickets[2]), 403)
        ws = WSClient(h.port, path="/ws?ticket=" + tickets[3])
        self._closers.append(ws.sock)
        ws.send_json({"type": "subscribe", "topic": "t/a"})
        ws.recv_json()
        time.sleep(0.3)
        log = h.log()
        self.assertIn("connection open", log)  # debug logging is on
        for t in tickets:
            self.assertNotIn(t, log)

    def test_redis_down_is_503_not_a_hang(self):
        srv = self.redis()
        h = self.start(srv)
        t, _ = self.ticket(h)
        t2, _ = self.ticket(h)
        # Redis stopped (connection lost): an answer at once
        srv.stop()
        harness.wait_until(lambda: h.readyz() == 503, 10, what="edge notices Redis down")
        start = time.monotonic()
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 503)
        status, _, _ = http_get(h.port, "/poll/t/a?timeout=0&ticket=" + t)
        self.assertEqual(status, 503)
        self.assertEqual(self.issue(h, token())[0], 503)
        self.assertLess(time.monotonic() - start, 8 * harness.SCALE)
        self.serving(h)

    def test_redis_hung_is_503_within_the_timeout(self):
        srv = self.redis()
        h = self.start(srv)
        t, _ = self.ticket(h)
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            status, _, body = http_get(h.port, "/poll/t/a?timeout=0&ticket=" + t, timeout=20)
            took = time.monotonic() - start
            self.assertEqual(status, 503, body)
            self.assertGreater(took, 3)
            self.assertLess(took, 10 * harness.SCALE)
            ws = WSClient(h.port, path="/ws?ticket=" + t)
            self._closers.append(ws.sock)
            with self.assertRaises(Closed) as cm:
                ws.recv_json(20)
            self.assertEqual(cm.exception.code, 1013)
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        self.serving(h)

    def test_cluster_ticket_on_another_edge_once(self):
        from test_cluster import Cluster, ClusterHerald
        cluster = Cluster()
        self.addCleanup(cluster.close)
        hs = []
        for node in ("edge-1", "edge-2"):
            h = ClusterHerald(cluster, node, ["--jwt-secret", SECRET])
            self._heralds.append(h)
            hs.append(h)
        tickets = [self.ticket(hs[0])[0] for _ in range(6)]  # spread over the shards
        for t in tickets:
            self.assertEqual(self.sse_status(hs[1], "/events/t/a?ticket=" + t), 200)
            self.assertEqual(self.sse_status(hs[0], "/events/t/a?ticket=" + t), 401)


    def test_ticket_on_a_path_that_is_not_utf8(self):
        """Redeeming on a path that is not UTF-8 used the ticket up and answered as if a ticket
        had been asked for (200 {"ticket": ...}). It is a bad request now, and the ticket is
        left for the request it was meant for."""
        h = self.start()
        t, _ = self.ticket(h)
        raw = harness.raw_request(h.port, ("GET /events/t/a%%ff?ticket=%s HTTP/1.1\r\n"
                                           "Host: x\r\n\r\n" % t).encode())
        self.assertTrue(raw.startswith(b"HTTP/1.1 400"), raw[:200])
        self.assertNotIn(b"expires_in", raw)
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 200)
        self.serving(h)

    def test_ticket_rate_bounds_what_one_token_stores_in_redis(self):
        """Each ticket stores its token in Redis for --ticket-ttl: any holder of a token could
        ask for 1,500 a second and fill Redis (then every publish failed: OOM). Past
        --ticket-rate an edge answers 503 at once and stores nothing."""
        srv = self.redis()
        r = self.client(srv)
        h = self.start(srv, "edge-1", "--ticket-rate", "5")
        tok = token(pad="x" * 1000)
        t0 = time.monotonic()
        got = [self.issue(h, tok)[0] for _ in range(30)]
        took = time.monotonic() - t0
        self.assertEqual(got.count(200) + got.count(503), 30, got)
        self.assertGreaterEqual(got.count(200), 4, got)  # the burst: about a second's worth
        # and what the rate refilled meanwhile (each service thread its share)
        self.assertLessEqual(got.count(200), 5 + 5 * took + 2, (got, took))
        stored = len(r.cmd("KEYS", "herald:ticket:*"))
        self.assertEqual(stored, got.count(200))
        self.assertEqual(harness.scrape(h.port).get('herald_rejected_total{reason="ticket_rate"}'),
                         got.count(503))
        status, body = self.issue(h, tok)
        if status == 503:
            self.assertIn(b"too many tickets", body)
        time.sleep(1.2)
        t, _ = self.ticket(h, tok)  # refilled: issued again, and redeemed
        self.assertEqual(self.sse_status(h, "/events/t/a?ticket=" + t), 200)
        self.serving(h)

if __name__ == "__main__":
    unittest.main()
