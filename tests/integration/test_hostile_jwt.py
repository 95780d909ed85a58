"""Hostile JWT numbers (issue 14, class 7): validly signed tokens whose NumericDate claims are
out of range, mistyped or fractional.

PROTOCOL.md ("Token number rules"): exp, nbf and iat must be JSON numbers between 0 and
253402300799 (9999-12-31T23:59:59Z) in seconds; anything else (milliseconds such as 10^13,
INT64_MAX, 2^53, negative numbers, strings) refuses the token. A fraction is allowed and rounded
towards refusal. Before the fix an exp of 10^13 overflowed the expiry timer's microseconds, the
timer fired at once, re-armed itself and froze the service thread at 100 % CPU: nobody else on
it was served and SIGTERM never finished the drain. Each case runs with one service thread, so
the bystander shares the attacker's thread.
"""

import time
import unittest

import harness
from harness import HeraldTestCase, SSEClient, make_jwt
from hostile import Bystander, assert_idle
from wsclient import WSClient, request

SECRET = "hostile-jwt-secret"
INT64_MAX = 2**63 - 1
TIME_MAX = 253402300799


def token(**claims):
    c = {"sub": "mallory", "subscribe": ["*"]}
    c.update(claims)
    return make_jwt(SECRET, c)


class HostileJWT(HeraldTestCase):

    def start(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1", ["--jwt-secret", SECRET, "--threads", "1",
                                                "--jwt-leeway", "5", "--allow-anonymous", "on"])
        self.bystander = Bystander(self, self.h, self.r)

    def ws(self, **kw):
        c = WSClient(self.h.port, **kw)
        self._closers.append(c)
        return c

    def refused_everywhere(self, tok, why):
        """The token is refused on every transport, with the reason when the transport has one."""
        ws = self.ws(headers={"Authorization": "Bearer " + tok})
        self.assertEqual(ws.wait_closed(), 1008, why)
        self.assertIn(why, ws.close_reason)
        sse = SSEClient(self.h.port, "/events/t1?token=" + tok)
        self._closers.append(sse)
        self.assertEqual(sse.status, 401, why)
        status, _, body = harness.http_get(self.h.port, "/poll/t1?timeout=1&token=" + tok)
        self.assertEqual(status, 401, why)
        self.assertIn(why.encode(), body)
        ws = self.ws()
        reply = request(ws, {"type": "auth", "token": tok, "id": 1})
        self.assertEqual((reply.get("type"), reply.get("code")), ("error", "unauthorized"), why)
        self.assertIn(why, reply.get("message", ""))
        return reply

    def finish(self):
        self.bystander.check()
        assert_idle(self, self.h)
        self.assert_serving(self.h)
        for c in self._closers:  # the drain would wait (up to --drain-timeout) for idle sockets
            if c is not self.bystander.sse and not isinstance(c, harness.RedisClient):
                c.close()
        t0 = time.monotonic()
        code = self.h.stop(timeout=10)
        self.assertEqual(code, 0, "herald did not exit cleanly on SIGTERM")
        self.assertLess(time.monotonic() - t0, 8 * harness.SCALE, "SIGTERM drain took too long")

    def test_exp_in_milliseconds_is_refused_and_the_thread_stays_free(self):
        self.start()
        ms = int(time.time() * 1000) + 3600 * 1000  # an hour ahead, written in milliseconds
        self.refused_everywhere(token(exp=ms), "exp")
        self.refused_everywhere(token(exp=10**13), "exp")
        self.finish()

    def test_extreme_numbers_are_refused_without_overflow(self):
        self.start()
        now = int(time.time())
        cases = [
            ("exp", INT64_MAX), ("exp", 2**63), ("exp", 2**64 + 5), ("exp", 2**53),
            ("exp", 9.2e18), ("exp", 1e300), ("exp", -1), ("exp", "123"), ("exp", None),
            ("exp", TIME_MAX + 1), ("nbf", -1), ("nbf", INT64_MAX), ("nbf", -2**63),
            ("nbf", "0"), ("nbf", 1e19), ("iat", -1), ("iat", 10**13), ("iat", "now"),
        ]
        for claim, value in cases:
            claims = {"exp": now + 3600}
            claims[claim] = value
            with self.subTest(claim=claim, value=value):
                ws = self.ws()
                reply = request(ws, {"type": "auth", "token": token(**claims), "id": 1})
                self.assertEqual((reply.get("type"), reply.get("code")), ("error", "unauthorized"),
                                 "%s=%r accepted" % (claim, value))
                self.assertIn(claim, reply.get("message", ""))
                ws.close()
        self.finish()

    def test_in_range_numbers_still_work(self):
        self.start()
        now = int(time.time())
        # the latest NumericDate allowed: accepted, and its far expiry must not spin either
        for exp in (TIME_MAX, now + 3600.75, now + 10**9):
            with self.subTest(exp=exp):
                ws = self.ws(headers={"Authorization": "Bearer " + token(exp=exp, iat=now,
                                                                         nbf=now - 1.5)})
                reply = request(ws, {"type": "subscribe", "topic": "t1", "id": 1})
                self.assertEqual(reply, {"type": "subscribed", "topic": "t1", "id": 1})
                sse = SSEClient(self.h.port, "/events/t2?token=" + token(exp=exp))
                self._closers.append(sse)
                self.assertEqual(sse.status, 200)
        # a fraction is rounded towards refusal: exp in the past by less than a second + leeway
        ws = self.ws()
        reply = request(ws, {"type": "auth", "token": token(exp=now - 6.5), "id": 2})
        self.assertEqual(reply.get("code"), "unauthorized")
        self.finish()

    def test_short_lived_token_still_ends_the_connection(self):
        """The expiry timer still works after its delay is bounded."""
        self.start()
        exp = int(time.time()) + 1
        ws = self.ws(headers={"Authorization": "Bearer " + token(exp=exp)})
        self.assertEqual(request(ws, {"type": "ping", "id": 1}), {"type": "pong", "node": "edge-1", "id": 1})
        # leeway 5 s: closed with 1008 within about exp + 6 s
        code = ws.wait_closed(15)
        self.assertEqual(code, 1008)
        self.finish()


if __name__ == "__main__":
    unittest.main()
