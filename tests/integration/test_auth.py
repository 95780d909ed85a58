"""Token authorisation, played by an attacker and by a client that does things right.

With --jwt-secret set, every transport asks for an HS256 JWT whose `subscribe` / `publish`
patterns cover the topic (PROTOCOL.md "Authorisation"): no token, a forged signature, alg
"none", an expired or not-yet-valid token, a topic outside the patterns are each refused with
their own status and counted on /metrics; a good token works from the Authorization header and
from ?token=; streams end when their token expires (SSE ends, WebSocket closes 1008)."""

import json
import time

import harness
from harness import HeraldTestCase, fcall_publish, http_get, make_jwt, scrape, wait_live_subscribed
from wsclient import HandshakeError, WSClient, request

SECRET = "s3cret-for-tests-only-0123456789"
KEY = "publish-key-1"


def tok(claims=None, secret=SECRET, **kw):
    c = {"sub": "user-42", "exp": int(time.time()) + 600}
    c.update(claims or {})
    return make_jwt(secret, c, **kw)


def metric(port, reason):
    return scrape(port).get('herald_rejected_total{reason="%s"}' % reason, 0)


class AuthTestCase(HeraldTestCase):

    def start(self, args=()):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1",
                           ["--jwt-secret", SECRET, "--publish-key", KEY, "--jwt-leeway", "0"]
                           + list(args))
        return self.h

    def sse_status(self, path, headers=None):
        c = self.sse(self.h.port, path, headers=headers)
        body = bytes(c.raw)
        c.pump(0.3)
        body = bytes(c.raw)
        c.close()
        return c.status, c.headers, body


class SSEAttacker(AuthTestCase):

    def test_refusals_each_with_its_status_and_count(self):
        self.start()
        p = self.h.port
        before = metric(p, "unauthorized")
        cases = [
            # (what, path, headers, status, text in the body)
            ("no token", "/events/news", None, 401, b"a token is required"),
            ("forged signature", "/events/news?token=" + tok({"subscribe": ["news"]},
                                                            secret="not-the-secret"),
             None, 401, b"bad signature"),
            ("alg none", "/events/news?token=" + tok({"subscribe": ["news"]},
                                                    header={"alg": "none"}, sign=False),
             None, 401, b"alg must be HS256"),
            ("expired", "/events/news", {"Authorization": "Bearer " + tok(
                {"subscribe": ["news"], "exp": int(time.time()) - 60})}, 401, b"token expired"),
            ("not yet valid", "/events/news", {"Authorization": "Bearer " + tok(
                {"subscribe": ["news"], "nbf": int(time.time()) + 600})}, 401,
             b"not yet valid"),
            ("garbage", "/events/news?token=abc.def", None, 401, b"unauthorized"),
            ("basic auth", "/events/news", {"Authorization": "Basic dXNlcjpwYXNz"}, 401,
             b"Bearer"),
            ("tampered claims", "/events/news?token=" + tampered(), None, 401,
             b"bad signature"),
        ]
        for what, path, headers, status, text in cases:
            st, hdrs, body = self.sse_status(path, headers)
            self.assertEqual(st, status, "%s: %r" % (what, body))
            self.assertIn(text, body, what)
            self.assertTrue(hdrs.get("www-authenticate", "").startswith("Bearer"), what)
        self.assertEqual(metric(p, "unauthorized") - before, len(cases))
        # nothing was subscribed in Redis for any of them
        self.assertEqual(scrape(p)["herald_subscriptions"], 0)

    def test_topic_outside_the_patterns_is_403(self):
        self.start()
        t = tok({"subscribe": ["news", "user/42/*"]})
        for path in ["/events/sports", "/events/user/420", "/events/user/42",
                     "/events?topic=news&topic=sports", "/poll/sports?timeout=0"]:
            st, _, body = self.sse_status(path + ("&" if "?" in path else "?") + "token=" + t)
            self.assertEqual(st, 403, "%s: %r" % (path, body))
            self.assertIn(b"does not allow subscribing", body)
        self.assertEqual(metric(self.h.port, "forbidden"), 5)

    def test_good_token_header_or_query_receives_events(self):
        self.start()
        t = tok({"subscribe": ["news", "user/42/*"]})
        a = self.sse(self.h.port, "/events/news", headers={"Authorization": "Bearer " + t})
        b = self.sse(self.h.port, "/events/user/42/inbox?token=" + t)
        m = self.sse(self.h.port, "/events?topic=news&topic=user/42/x&token=" + t)
        for c in (a, b, m):
            self.assertEqual(c.status, 200)
        wait_live_subscribed(self.r, "news")
        wait_live_subscribed(self.r, "user/42/inbox")
        wait_live_subscribed(self.r, "user/42/x")
        i1 = fcall_publish(self.r, "news", "n1")
        i2 = fcall_publish(self.r, "user/42/inbox", "m1")
        self.assertEqual((a.next_event().data, a.last_event_id.split("_")[0]), ("n1", i1))
        self.assertEqual((b.next_event().data, b.last_event_id.split("_")[0]), ("m1", i2))
        self.assertEqual(json.loads(m.next_event().data)["data"], "n1")

    def test_long_query_token_beside_other_arguments(self):
        """A token of 6 KB in ?token= (tokens may have 8,192 bytes) beside the request's
        other arguments: a query argument longer than the edge's argument buffer was taken for
        whichever argument was looked for (400 "Last-Event-ID is too long" on SSE, "since is
        too long" on long-poll, "event name longer than 64 bytes" on publish)."""
        self.start()
        t = tok({"subscribe": ["news"], "publish": ["news"], "pad": "a" * 4500})
        self.assertGreater(len(t), 6000)
        st, _, body = self.sse_status("/events/news?token=" + t)
        self.assertEqual(st, 200, body[:200])
        st, _, body = harness.http_get(self.h.port, "/poll/news?timeout=0&token=" + t)
        self.assertEqual(st, 200, body[:200])
        st, _, body = harness.http_get(self.h.port, "/publish/news?token=%s&event=greeting" % t,
                                       method="POST", body=b"hi")
        self.assertEqual(st, 200, body[:200])
        self.assertEqual(harness.xrange(self.r, "news")[-1][1].get("e"), b"greeting")

    def test_anonymous_needs_allow_anonymous(self):
        self.start(["--allow-anonymous", "on"])
        c = self.sse(self.h.port, "/events/open")
        self.assertEqual(c.status, 200)
        # a bad token is still refused: anonymity is not a fallback for forgeries
        st, _, _ = self.sse_status("/events/open?token=" + tok({"subscribe": ["open"]},
                                                                secret="wrong"))
        self.assertEqual(st, 401)

    def test_sse_stream_ends_when_the_token_expires(self):
        self.start()
        t = tok({"subscribe": ["exp"], "exp": int(time.time()) + 2})
        c = self.sse(self.h.port, "/events/exp?token=" + t)
        self.assertEqual(c.status, 200)
        wait_live_subscribed(self.r, "exp")
        fcall_publish(self.r, "exp", "before")
        self.assertEqual(c.next_event().data, "before")
        harness.wait_until(lambda: not c.pump(0.2), timeout=10, what="stream ended at exp")
        self.assertIn(" token expired", c.comments)
        self.assertEqual(scrape(self.h.port)["herald_auth_expired_total"], 1)
        # EventSource reconnects with the same URL: refused, so it stops
        st, _, body = self.sse_status("/events/exp?token=" + t)
        self.assertEqual(st, 401, body)


def tampered():
    """A good token whose claims were edited to add a topic, signature kept."""
    good = tok({"subscribe": ["news"]}).split(".")
    claims = json.loads(harness.base64.urlsafe_b64decode(good[1] + "=="))
    claims["subscribe"] = ["*"]
    return "%s.%s.%s" % (good[0], harness._b64url(json.dumps(claims).encode()), good[2])


class PublishAuth(AuthTestCase):

    def post(self, topic, bearer, body=b"x"):
        h = {"Authorization": "Bearer " + bearer} if bearer is not None else {}
        return http_get(self.h.port, "/publish/" + topic, headers=h, method="POST", body=body)

    def test_publish_rights_come_from_the_publish_claim(self):
        self.start()
        pub = tok({"publish": ["news/*"]})
        sub_only = tok({"subscribe": ["*"]})
        st, _, body = self.post("news/eu", pub, b"hello")
        self.assertEqual(st, 200, body)
        eid = json.loads(body)["id"]
        self.assertEqual(harness.xrange(self.r, "news/eu")[-1][0], eid)
        self.assertEqual(self.post("sports", pub)[0], 403)
        self.assertEqual(self.post("news/eu", sub_only)[0], 403)
        self.assertEqual(self.post("news/eu", tok({"publish": ["*"]}, secret="x"))[0], 401)
        self.assertEqual(self.post("news/eu", None)[0], 401)
        # the static publish key keeps working beside tokens
        self.assertEqual(self.post("anything", KEY)[0], 200)
        self.assertEqual(len(harness.xrange(self.r, "sports")), 0)
        m = scrape(self.h.port)
        self.assertEqual(m['herald_rejected_total{reason="forbidden"}'], 2)
        self.assertEqual(m['herald_rejected_total{reason="unauthorized"}'], 2)


class WebSocketAuth(AuthTestCase):

    def test_auth_message_then_subscribe_and_publish_within_the_claims(self):
        self.start()
        ws = WSClient(self.h.port)
        self.addCleanup(ws.close)
        r = request(ws, {"type": "subscribe", "topic": "chat/1", "id": 1})
        self.assertEqual((r["type"], r["code"]), ("error", "unauthorized"), r)
        r = request(ws, {"type": "auth", "token": tok({"subscribe": ["chat/*"]}, secret="no"),
                         "id": 2})
        self.assertEqual((r["type"], r["code"]), ("error", "unauthorized"), r)
        self.assertIn("bad signature", r["message"])
        exp = int(time.time()) + 600
        r = request(ws, {"type": "auth", "id": 3, "token": tok(
            {"subscribe": ["chat/*"], "publish": ["chat/1"], "exp": exp})})
        self.assertEqual(r, {"type": "authed", "sub": "user-42", "exp": exp, "id": 3})
        self.assertEqual(request(ws, {"type": "subscribe", "topic": "chat/1", "id": 4})["type"],
                         "subscribed")
        r = request(ws, {"type": "subscribe", "topic": "admin", "id": 5})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)
        r = request(ws, {"type": "publish", "topic": "chat/2", "data": "x", "id": 6})
        self.assertEqual((r["type"], r["code"]), ("error", "forbidden"), r)
        wait_live_subscribed(self.r, "chat/1")
        r = request(ws, {"type": "publish", "topic": "chat/1", "data": "hi", "id": 7})
        self.assertEqual(r["type"], "published", r)
        ev = ws.recv_json()
        self.assertEqual((ev["type"], ev["data"]), ("event", "hi"))
        self.assertEqual(len(harness.xrange(self.r, "chat/2")), 0)

    def test_handshake_token_header_or_query(self):
        self.start()
        t = tok({"subscribe": ["q"]})
        for ws in (WSClient(self.h.port, path="/ws?token=" + t),
                   WSClient(self.h.port, headers={"Authorization": "Bearer " + t})):
            self.addCleanup(ws.close)
            self.assertEqual(request(ws, {"type": "subscribe", "topic": "q", "id": 1})["type"],
                             "subscribed")

    def test_bad_handshake_token_closes_1008(self):
        self.start()
        for bad in (tok({"subscribe": ["*"]}, secret="forged"),
                    tok({"subscribe": ["*"], "exp": int(time.time()) - 5}),
                    tok({"subscribe": ["*"]}, header={"alg": "none"}, sign=False)):
            ws = WSClient(self.h.port, headers={"Authorization": "Bearer " + bad})
            self.addCleanup(ws.close)
            self.assertEqual(ws.wait_closed(), 1008)
        self.assertEqual(metric(self.h.port, "unauthorized"), 3)
        ok = WSClient(self.h.port, path="/ws?token=" + tok({"subscribe": ["*"]}))
        self.addCleanup(ok.close)
        self.assertEqual(request(ok, {"type": "subscribe", "topic": "after"})["type"],
                         "subscribed")

    def test_expiry_closes_1008_and_reauth_extends(self):
        self.start()
        short = tok({"subscribe": ["e"], "exp": int(time.time()) + 2})
        a = WSClient(self.h.port, path="/ws?token=" + short)
        b = WSClient(self.h.port, path="/ws?token=" + short)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        for ws in (a, b):
            self.assertEqual(request(ws, {"type": "subscribe", "topic": "e"})["type"],
                             "subscribed")
        # b renews before expiry
        r = request(b, {"type": "auth", "token": tok({"subscribe": ["e"]})})
        self.assertEqual(r["type"], "authed", r)
        self.assertEqual(a.wait_closed(timeout=10), 1008)
        self.assertEqual(a.close_reason, "token expired")
        wait_live_subscribed(self.r, "e")
        fcall_publish(self.r, "e", "still here")
        self.assertEqual(b.recv_json()["data"], "still here")


class NoSecret(HeraldTestCase):

    def test_without_a_secret_subscribing_is_open_and_announced(self):
        srv = self.redis()
        h = self.edge(srv, "edge-1")
        c = self.sse(h.port, "/events/open?token=whatever")
        self.assertEqual(c.status, 200)
        self.assertIn("no --jwt-secret", h.log())

    def test_secret_file(self):
        import tempfile
        srv = self.redis()
        with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as f:
            f.write(SECRET + "\n")
        self.addCleanup(lambda: harness.os.unlink(f.name))
        h = self.edge(srv, "edge-1", ["--jwt-secret-file", f.name])
        self.assertEqual(self.sse(h.port, "/events/f").status, 401)
        self.assertEqual(self.sse(h.port, "/events/f?token=" +
                                  tok({"subscribe": ["f"]})).status, 200)


if __name__ == "__main__":
    harness.main()
