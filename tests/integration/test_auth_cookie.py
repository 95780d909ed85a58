"""--auth-cookie: a JWT in a cookie signs in SSE, long-poll and WebSocket clients without a token
in the URL, but only on requests from the edge's own origin or an origin listed by name in
--allowed-origins: a page on another site (whose requests the browser also gives the cookie,
a WebSocket handshake above all) gets no rights from it, and `*` never lets a cookie through."""

import time

import harness
from harness import HeraldTestCase, SSEClient, http_get, make_jwt
from wsclient import WSClient

SECRET = "cookie-test-secret"
COOKIE = "herald_token"


def token(**claims):
    c = {"subscribe": ["c/*"], "exp": int(time.time()) + 600}
    c.update(claims)
    return make_jwt(SECRET, c)


class AuthCookie(HeraldTestCase):

    def start(self, *extra):
        srv = self.redis()
        return self.edge(srv, "edge-1", ["--jwt-secret", SECRET, "--auth-cookie", COOKIE] +
                         list(extra))

    def sse_status(self, h, path, headers):
        c = SSEClient(h.port, path, headers)
        self._closers.append(c)
        status = c.status
        c.close()
        return status

    def test_cookie_signs_in_same_origin_requests(self):
        h = self.start()
        cookie = {"Cookie": "other=1; %s=%s; x=y" % (COOKIE, token())}
        self.assertEqual(self.sse_status(h, "/events/c/a", {}), 401)
        self.assertEqual(self.sse_status(h, "/events/c/a", cookie), 200)
        same = dict(cookie, Origin="http://127.0.0.1:%d" % h.port)
        self.assertEqual(self.sse_status(h, "/events/c/a", same), 200)
        status, _, _ = http_get(h.port, "/poll/c/a?timeout=0", cookie)
        self.assertEqual(status, 200)
        # the cookie's patterns apply: c/* only
        self.assertEqual(self.sse_status(h, "/events/other", cookie), 403)
        # an expired token in the cookie is refused like any other
        old = {"Cookie": "%s=%s" % (COOKIE, token(exp=int(time.time()) - 3600))}
        self.assertEqual(self.sse_status(h, "/events/c/a", old), 401)
        ws = WSClient(h.port, headers=dict(same))
        self._closers.append(ws.sock)
        ws.send_json({"type": "subscribe", "topic": "c/a"})
        self.assertEqual(ws.recv_json()["type"], "subscribed")

    def test_only_the_cookie_of_that_name(self):
        """The token is read from the cookie named exactly --auth-cookie: not one whose name
        ends or starts with it, nor from inside another cookie's value (libwebsockets' cookie
        lookup matched those, so a cookie the site sets for something else carried a token),
        and an exact one behind a lookalike is the one read."""
        h = self.start()
        good, wide = token(), token(subscribe=["*"])
        for what, cookie in (("name ending with it", "my%s=%s" % (COOKIE, good)),
                             ("name starting with it", "%sx=%s" % (COOKIE, good)),
                             ("inside another value", "pref=%s=%s" % (COOKIE, good)),
                             ("after a comma in another value",
                              "pref=x,%s=%s" % (COOKIE, good)),
                             ("other case", "%s=%s" % (COOKIE.upper(), good))):
            with self.subTest(what):
                hdrs = {"Cookie": cookie}
                self.assertEqual(self.sse_status(h, "/events/c/a", hdrs), 401, what)
                status, _, _ = http_get(h.port, "/poll/c/a?timeout=0", hdrs)
                self.assertEqual(status, 401, what)
        # the exact one is read, not a lookalike before it whose token allows more
        hdrs = {"Cookie": "x%s=%s; %s=%s" % (COOKIE, wide, COOKIE, good)}
        self.assertEqual(self.sse_status(h, "/events/c/a", hdrs), 200)
        self.assertEqual(self.sse_status(h, "/events/other", hdrs), 403)
        # a request may carry several Cookie headers (a proxy from HTTP/2): each is read alone
        for first, second in (("%s=%s" % (COOKIE, good), "a=1"), ("a=1", "%s=%s" % (COOKIE, good))):
            raw = ("GET /poll/c/a?timeout=0 HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
                   "Cookie: %s\r\n\r\n" % (first, second)).encode()
            out = harness.raw_request(h.port, raw, timeout=5.0)
            self.assertTrue(out.startswith(b"HTTP/1.1 200"), "%s | %s: %r" % (
                first[:20], second[:20], out[:120]))

    def test_cookie_from_a_foreign_origin_gives_no_rights(self):
        h = self.start()   # --allowed-origins * (the default)
        evil = {"Cookie": "%s=%s" % (COOKIE, token()), "Origin": "http://evil.example"}
        self.assertEqual(self.sse_status(h, "/events/c/a", evil), 401)
        status, _, _ = http_get(h.port, "/poll/c/a?timeout=0", evil)
        self.assertEqual(status, 401)
        ws = WSClient(h.port, headers=dict(evil))
        self._closers.append(ws.sock)
        ws.send_json({"type": "subscribe", "topic": "c/a"})
        reply = ws.recv_json()
        self.assertEqual((reply["type"], reply.get("code")), ("error", "unauthorized"))

    def test_listed_origin_may_use_the_cookie_with_credentials(self):
        h = self.start("--allowed-origins", "http://app.example")
        hdrs = {"Cookie": "%s=%s" % (COOKIE, token()), "Origin": "http://app.example"}
        status, headers, _ = http_get(h.port, "/poll/c/a?timeout=0", hdrs)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("access-control-allow-origin"), "http://app.example")
        self.assertEqual(headers.get("access-control-allow-credentials"), "true")

    def test_option_off_ignores_the_cookie(self):
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--jwt-secret", SECRET])
        cookie = {"Cookie": "%s=%s" % (COOKIE, token())}
        self.assertEqual(self.sse_status(h, "/events/c/a", cookie), 401)


if __name__ == "__main__":
    harness.main()
