"""What a publisher is told. Idempotent publish: a publish carrying an idempotency key (HTTP `Idempotency-Key`, the
WebSocket publish's `idempotency_key`, FCALL herald_publish's third argument) is stored once per
topic within --idempotency-window, however often it is sent; a repeat is answered with the ID
stored the first time and `"duplicate":true`, and no subscriber sees it twice. What a publisher
relies on when an answer is lost: it cannot tell a publish stored from one never stored, so it
sends it again, and with a key that cannot make a second event. And a publish Redis refuses
(full to maxmemory) is answered so, counted and logged, and the edge does not take it for pub/sub
delivery stopped."""

import json
import time

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, parse_response, raw_request, scrape, split_cursor, wait_live_subscribed,
                     wait_until, xrange)
from proxykit import MutingProxy
from wsclient import WSClient, request

KEY = "k3y-for-publish_1"


def post(port, topic, body, idem=None):
    h = {"Authorization": "Bearer " + KEY}
    if idem is not None:
        h["Idempotency-Key"] = idem
    return http_get(port, "/publish/" + topic, headers=h, method="POST", body=body)


class IdempotentPublish(HeraldTestCase):

    def start(self, args=(), proxy=None):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        args = ["--publish-key", KEY] + list(args)
        self.h = (self.edge_behind(proxy, "edge-1", args) if proxy else
                  self.edge(self.srv, "edge-1", args))

    def ok(self, resp, what):
        code, _, body = resp
        self.assertEqual(code, 200, "%s: %r" % (what, body[:300]))
        return json.loads(body)

    def entries(self, topic):
        return [(eid, f.get("d")) for eid, f in xrange(self.r, topic)]

    def assert_next_is_marker(self, sub, topic):
        """Nothing more reached sub: the next event it gets is one published now."""
        fcall_publish(self.r, topic, "marker")
        e = sub.next_event(10)
        self.assertEqual(e.data, "marker", "a repeat reached a subscriber")

    def test_http_repeat_is_stored_once(self):
        self.start()
        sub = self.sse(self.h.port, "/events/idem.t")
        wait_live_subscribed(self.r, "idem.t")
        first = self.ok(post(self.h.port, "idem.t", b"one", "order-42:v1"), "first")
        self.assertEqual(set(first), {"id"}, "a new event's answer: %r" % first)
        for quoted in ("order-42:v1", '"order-42:v1"'):
            again = self.ok(post(self.h.port, "idem.t", b"one", quoted), "repeat %s" % quoted)
            self.assertEqual(again, {"id": first["id"], "duplicate": True}, quoted)
        # the key decides, not the payload: a repeat with other bytes is still the same publish
        again = self.ok(post(self.h.port, "idem.t", b"other bytes", "order-42:v1"), "changed")
        self.assertEqual(again, {"id": first["id"], "duplicate": True})
        # another key, no key, the same key on another topic: new events
        k2 = self.ok(post(self.h.port, "idem.t", b"two", "order-42:v2"), "another key")
        nokey = self.ok(post(self.h.port, "idem.t", b"three"), "no key")
        other = self.ok(post(self.h.port, "idem.u", b"one", "order-42:v1"), "another topic")
        self.assertEqual(set(other), {"id"})
        self.assertEqual(self.entries("idem.t"), [(first["id"], b"one"),
                                                  (k2["id"], b"two"),
                                                  (nokey["id"], b"three")])
        self.assertEqual(len(self.entries("idem.u")), 1)
        got = [sub.next_event(10) for _ in range(3)]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(first["id"], "one"), (k2["id"], "two"), (nokey["id"], "three")])
        self.assert_next_is_marker(sub, "idem.t")
        m = scrape(self.h.port)
        self.assertEqual(m.get("herald_publish_duplicates_total"), 3.0)
        self.assertEqual(m.get("herald_published_total"), 4.0)

    def test_bad_keys_are_refused_and_nothing_stored(self):
        self.start()
        for bad in ("", "a b", "a}b", "k" * 65, '"unterminated', "tab\tin"):
            code, _, body = post(self.h.port, "idem.bad", b"x", bad)
            self.assertEqual(code, 400, "key %r: %r" % (bad, body))
            self.assertIn(b"idempotency key", body, bad)
        # a name with whitespace before its colon: refused, not read as no key (RFC 9112 5.1)
        for name in (b"Idempotency-Key :", b"Idempotency-Key\t:"):
            code, _, body, _ = parse_response(raw_request(self.h.port, (
                b"POST /publish/idem.bad HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + KEY.encode() + b"\r\n" + name + b" z9\r\nContent-Length: 1\r\n\r\nx")))
            self.assertEqual(code, 400, "%r: %r" % (name, body))
        self.assertEqual(self.entries("idem.bad"), [])
        self.assert_serving(self.h)

    def test_websocket_http_and_fcall_share_the_key(self):
        self.start()
        ws = WSClient(self.h.port, headers={"Authorization": "Bearer " + KEY})
        self._closers.append(ws)
        first = request(ws, {"type": "publish", "topic": "idem.w", "data": "a",
                             "idempotency_key": "u-1", "id": 1})
        self.assertEqual(set(first), {"type", "topic", "event_id", "id"}, first)
        again = request(ws, {"type": "publish", "topic": "idem.w", "data": "a",
                             "idempotency_key": "u-1", "id": 2})
        self.assertEqual(again, {"type": "published", "topic": "idem.w",
                                 "event_id": first["event_id"], "duplicate": True, "id": 2})
        bad = request(ws, {"type": "publish", "topic": "idem.w", "data": "a",
                           "idempotency_key": "no spaces", "id": 3})
        self.assertEqual((bad["type"], bad["code"]), ("error", "bad_request"), bad)
        via_http = self.ok(post(self.h.port, "idem.w", b"a", "u-1"), "HTTP after WS")
        self.assertEqual(via_http, {"id": first["event_id"], "duplicate": True})
        # FCALL: the ID stored earlier comes back as a status reply, a new one as a bulk string
        rid = self.r.cmd("FCALL", "herald_publish", 1, "idem.w", "a", "", "u-1")
        self.assertEqual(rid, first["event_id"])
        rid2 = self.r.cmd("FCALL", "herald_publish", 1, "idem.w", "b", "", "u-2", "60")
        self.assertIsInstance(rid2, bytes)
        self.assertEqual(self.r.cmd("FCALL", "herald_publish", 1, "idem.w", "b", "", "u-2"),
                         rid2.decode())
        for args, why in ((("x", "", "bad key"), "idempotency key"),
                          (("x", "", "u-3", "0"), "idempotency window"),
                          (("x", "", "u-3", "1.5"), "idempotency window")):
            with self.assertRaises(Exception) as cm:
                self.r.cmd("FCALL", "herald_publish", 1, "idem.w", *args)
            self.assertIn(why, str(cm.exception))
        self.assertEqual(len(self.entries("idem.w")), 2)

    def test_the_window_ends(self):
        self.start(["--idempotency-window", "1"])
        first = self.ok(post(self.h.port, "idem.x", b"a", "w-1"), "first")
        self.assertEqual(self.ok(post(self.h.port, "idem.x", b"a", "w-1"), "within")["id"],
                         first["id"])
        ttl = self.r.cmd("PTTL", "herald:{idem.x}:idem:w-1")
        self.assertTrue(0 < ttl <= 1000, "the key's record lives for the window: %r" % ttl)
        wait_until(lambda: self.r.cmd("EXISTS", "herald:{idem.x}:idem:w-1") == 0,
                   5 * harness.SCALE, what="the key's record expired")
        later = self.ok(post(self.h.port, "idem.x", b"a", "w-1"), "after the window")
        self.assertEqual(set(later), {"id"})
        self.assertNotEqual(later["id"], first["id"])

    def test_lost_answer_then_retry_stores_once(self):
        """Redis stores the publish, its answer never reaches the edge (a muted connection):
        the publisher is answered 503 (outcome unknown) and sends it again with the same key;
        the retry is answered with the first ID, and the topic holds the event once."""
        srv = self.redis()
        proxy = MutingProxy(srv.port)
        self.srv, self.r = srv, self.client(srv)
        self.h = self.edge_behind(proxy, "edge-1", ["--publish-key", KEY,
                                                    "--redis-timeout-ms", "2000"])
        sub = self.sse(self.h.port, "/events/idem.lost")
        wait_live_subscribed(self.r, "idem.lost")
        proxy.arm_and_drop(b"lost-answer-payload")
        # the edge saw its connections go (cmd, sub, ing) and made them again
        wait_until(lambda: scrape(self.h.port).get("herald_redis_reconnects_total", 0) >= 3
                   and self.h.readyz() == 200, 20 * harness.SCALE, interval=0.1,
                   what="the edge ready again after its connections were cut")
        t0 = time.monotonic()
        code, _, body = post(self.h.port, "idem.lost", b"lost-answer-payload", "lost-1")
        self.assertEqual(code, 504, "the answer was lost: %r" % body)
        self.assertEqual(proxy.muted, 1)
        self.assertEqual(len(self.entries("idem.lost")), 1, "Redis stored it")
        took = time.monotonic() - t0
        # answered when the connection was silent for --redis-timeout-ms: not before, and not
        # a watch period later (it was up to 40 % later)
        self.assertGreaterEqual(took, 1.9)
        self.assertLess(took, 2 + 2 * harness.SCALE)
        self.assertIn(b"may or may not be stored", body)
        self.assertIn("answered nothing for --redis-timeout-ms", self.h.log())
        m = scrape(self.h.port)
        self.assertGreaterEqual(m.get("herald_redis_answer_timeouts_total"), 1)
        self.assertEqual(m.get('herald_publish_errors_total{reason="outcome_unknown"}'), 1)
        wait_until(lambda: self.h.readyz() == 200, 20 * harness.SCALE, interval=0.1,
                   what="the edge ready again")
        retry = self.ok(post(self.h.port, "idem.lost", b"lost-answer-payload", "lost-1"),
                        "the retry")
        stored = self.entries("idem.lost")
        self.assertEqual(stored, [(retry["id"], b"lost-answer-payload")])
        self.assertEqual(retry.get("duplicate"), True)
        e = sub.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (retry["id"], "lost-answer-payload"))
        self.assert_next_is_marker(sub, "idem.lost")


class RedisRefuses(HeraldTestCase):

    def test_full_redis_refuses_publishes_and_delivery_stays_ready(self):
        """Redis at maxmemory (noeviction) refuses every write: publishes are answered 503 with
        Redis' words, counted and logged; the canary (it stores nothing) is still heard, so the
        edge stays ready and keeps its subscriber connection (it took the refused heartbeat for
        pub/sub delivery stopped: /readyz 503 and the connection replaced every few seconds)."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--publish-key", KEY])
        sub = self.sse(h.port, "/events/full.t")
        wait_live_subscribed(r, "full.t")
        r.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
        r.cmd("CONFIG", "SET", "maxmemory", "1")
        try:
            code, _, body = post(h.port, "full.t", b"x")
            self.assertEqual(code, 503, body)
            self.assertIn(b"OOM", body)
            ws = WSClient(h.port, headers={"Authorization": "Bearer " + KEY})
            self._closers.append(ws)
            err = request(ws, {"type": "publish", "topic": "full.t", "data": "y", "id": 1})
            self.assertEqual((err["type"], err["code"]), ("error", "unavailable"), err)
            end = time.monotonic() + 7 * harness.SCALE  # past canary stale (3 s) + replace (3 s)
            while time.monotonic() < end:
                self.assertEqual(h.readyz(), 200, "not ready while only writes are refused")
                time.sleep(0.25)
        finally:
            r.cmd("CONFIG", "SET", "maxmemory", "0")
        log = h.log()
        self.assertNotIn("canary stale", log)
        self.assertIn("publish failed: redis refused it", log)
        m = scrape(h.port)
        self.assertEqual(m.get('herald_publish_errors_total{reason="redis_error"}'), 2)
        ok = json.loads(post(h.port, "full.t", b"after")[2])
        e = sub.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (ok["id"], "after"))


if __name__ == "__main__":
    import unittest
    unittest.main()
