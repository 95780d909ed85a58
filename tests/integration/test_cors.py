"""Browser origins (--allowed-origins): an allowed Origin gets CORS headers on SSE, long-poll
and publish answers and on the preflight; any other Origin is refused with 403 (and the WebSocket
handshake is refused) and counted; requests without an Origin (servers, curl) are not browser
requests and are served without CORS headers. The default "*" allows every origin."""

import harness
from harness import HeraldTestCase, http_get, scrape
from wsclient import HandshakeError, WSClient, request

APP = "https://app.example.com"
ADMIN = "http://admin.example.com:8443"
EVIL = "https://evil.example.net"
KEY = "k-cors"


class AllowList(HeraldTestCase):

    def setUp(self):
        super().setUp()
        srv = self.redis()
        self.h = self.edge(srv, "edge-1", ["--allowed-origins", APP + "," + ADMIN,
                                           "--publish-key", KEY])
        self.p = self.h.port

    def test_allowed_origin_gets_cors_headers_on_every_client_route(self):
        for origin in (APP, ADMIN, APP.upper().replace("HTTPS", "https")):
            c = self.sse(self.p, "/events/a", headers={"Origin": origin})
            self.assertEqual(c.status, 200)
            self.assertEqual(c.headers.get("access-control-allow-origin", "").lower(),
                             origin.lower())
            self.assertEqual(c.headers.get("vary"), "Origin")
            c.close()
        st, hdrs, _ = http_get(self.p, "/poll/a?timeout=0", headers={"Origin": APP})
        self.assertEqual((st, hdrs.get("access-control-allow-origin")), (200, APP))
        st, hdrs, body = http_get(self.p, "/publish/a", method="POST", body=b"x",
                                  headers={"Origin": ADMIN, "Authorization": "Bearer " + KEY})
        self.assertEqual((st, hdrs.get("access-control-allow-origin")), (200, ADMIN), body)

    def test_other_origins_are_refused_everywhere(self):
        for path, method in (("/events/a", "GET"), ("/events?topic=a", "GET"),
                             ("/poll/a?timeout=0", "GET"), ("/publish/a", "POST"),
                             ("/publish/a", "OPTIONS")):
            st, hdrs, body = http_get(self.p, path, method=method, body=b"x" if method ==
                                      "POST" else None,
                                      headers={"Origin": EVIL, "Authorization": "Bearer " + KEY})
            self.assertEqual(st, 403, "%s %s: %r" % (method, path, body))
            self.assertIn(b"origin not allowed", body)
            self.assertNotIn("access-control-allow-origin", hdrs)
        with self.assertRaises(HandshakeError):
            WSClient(self.p, headers={"Origin": EVIL})
        # a prefix of an allowed origin is not that origin
        st, _, _ = http_get(self.p, "/events/a", headers={"Origin": APP + ".evil.net"})
        self.assertEqual(st, 403)
        m = scrape(self.p)
        self.assertEqual(m['herald_rejected_total{reason="origin"}'], 7)
        self.assertEqual(harness.xrange(self.client(self._redises[0]), "a"), [])

    def test_preflight(self):
        st, hdrs, body = http_get(self.p, "/publish/a", method="OPTIONS", headers={
            "Origin": APP, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization"})
        self.assertEqual(st, 204, body)
        self.assertEqual(hdrs.get("access-control-allow-origin"), APP)
        self.assertIn("POST", hdrs.get("access-control-allow-methods", ""))
        self.assertIn("authorization", hdrs.get("access-control-allow-headers", "").lower())
        self.assertIn("last-event-id", hdrs.get("access-control-allow-headers", "").lower())
        self.assertEqual(hdrs.get("access-control-max-age"), "600")

    def test_websocket_origin(self):
        ws = WSClient(self.p, headers={"Origin": APP})
        self.addCleanup(ws.close)
        self.assertEqual(request(ws, {"type": "ping"})["type"], "pong")
        ws2 = WSClient(self.p)  # not a browser: no Origin
        self.addCleanup(ws2.close)
        self.assertEqual(request(ws2, {"type": "ping"})["type"], "pong")

    def test_no_origin_no_cors_headers(self):
        c = self.sse(self.p, "/events/a")
        self.assertEqual(c.status, 200)
        self.assertNotIn("access-control-allow-origin", c.headers)


class Default(HeraldTestCase):

    def test_star_allows_every_origin(self):
        srv = self.redis()
        h = self.edge(srv, "edge-1")
        c = self.sse(h.port, "/events/a", headers={"Origin": EVIL})
        self.assertEqual(c.status, 200)
        self.assertEqual(c.headers.get("access-control-allow-origin"), "*")
        self.assertNotIn("vary", c.headers)
        ws = WSClient(h.port, headers={"Origin": EVIL})
        self.addCleanup(ws.close)
        self.assertEqual(request(ws, {"type": "ping"})["type"], "pong")


if __name__ == "__main__":
    harness.main()
