"""Hostile HTTP/1.1 request life cycles (issue 14): pipelining after a publish, h2c upgrades and
the HTTP/2 preface, CONNECT, and ambiguous or malformed framing (RFC 9112 section 6.3).

Each test: a Bystander subscribes before the attack and still gets its events after it, the edge
is idle afterwards, a new client is served, and the attacked topic's stream holds exactly what
one well-framed request may store (XLEN), never a second copy.
"""

import socket
import time

import harness
from harness import HeraldTestCase, parse_response, xrange
from hostile import Bystander, assert_idle

KEY = "k3y-hostile-http"


def head(method, path, extra=(), key=KEY):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if key is not None:
        lines.append("Authorization: Bearer " + key)
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port, data, quiet=1.5, limit=8.0):
    """Send `data` on one connection; read until the server closes, `quiet` seconds pass with
    nothing new, or `limit` seconds in all. -> (bytes received, closed by the server?)"""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * harness.SCALE)
    out, closed = bytearray(), False
    end = time.monotonic() + limit * harness.SCALE
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        s.settimeout(quiet * harness.SCALE)
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return bytes(out), closed


def responses(raw, to_head=False):
    """Split concatenated HTTP/1.1 responses (Content-Length framed) -> [(status, hdrs, body)].
    to_head: answers to HEAD requests, which have no content whatever their Content-Length."""
    out = []
    while raw:
        p = parse_response(raw)
        if p is None or not (p[3] or to_head):
            break
        status, hdrs, body, _ = p
        if to_head:
            body = b""
        out.append((status, hdrs, body))
        raw = raw[raw.find(b"\r\n\r\n") + 4 + len(body):]
    return out


class HostileHTTP(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1", ["--publish-key", KEY])
        self.bystander = Bystander(self, self.h, self.r)

    def after_attack(self):
        self.bystander.check()
        assert_idle(self, self.h)
        self.assert_serving(self.h)

    def xlen(self, topic):
        return int(self.r.cmd("XLEN", harness.stream_key(topic)))

    # ---- class 1: exactly one body completion per request ----

    def test_pipelined_request_after_publish_stores_once(self):
        topic = "pipe.after.publish"
        data = (head("POST", "/publish/" + topic, ["Content-Length: 5"]) + b"hello" +
                head("GET", "/healthz", key=None))
        raw, _ = exchange(self.h.port, data)
        got = responses(raw)
        self.assertGreaterEqual(len(got), 1, raw[:400])
        self.assertEqual(got[0][0], 200, raw[:400])
        # the pipelined request is answered after the publish, or the connection is closed
        if len(got) > 1:
            self.assertEqual((got[1][0], got[1][2]), (200, b"ok\n"), raw[:600])
        # nothing stored twice, even while Redis answers: wait a little for strays
        time.sleep(0.5 * harness.SCALE)
        self.assertEqual(self.xlen(topic), 1)
        self.assertEqual(xrange(self.r, topic)[0][1].get("d"), b"hello")
        self.after_attack()

    def test_zero_length_publish_with_pipelined_request(self):
        topic = "pipe.zero"
        data = (head("POST", "/publish/" + topic, ["Content-Length: 0"]) +
                head("GET", "/healthz", key=None) + head("GET", "/healthz", key=None))
        raw, _ = exchange(self.h.port, data)
        got = responses(raw)
        self.assertGreaterEqual(len(got), 1, raw[:400])
        self.assertEqual(got[0][0], 200, raw[:400])
        for st, _, body in got[1:]:
            self.assertEqual((st, body), (200, b"ok\n"), raw[:800])
        time.sleep(0.5 * harness.SCALE)
        self.assertEqual(self.xlen(topic), 1)
        self.after_attack()

    def test_many_pipelined_publishes_in_one_send(self):
        topic = "pipe.many"
        data = b"".join(head("POST", "/publish/" + topic, ["Content-Length: 2"]) + b"%02d" % i
                        for i in range(20))
        raw, _ = exchange(self.h.port, data, quiet=2.0)
        got = responses(raw)
        statuses = [st for st, _, _ in got]
        ok = statuses.count(200)
        # publishes answered 200, then at most one pipelined publish refused (400, closed)
        self.assertEqual(statuses, [200] * ok + [400] * (len(statuses) - ok), raw[:600])
        self.assertLessEqual(len(statuses) - ok, 1, raw[:600])
        time.sleep(0.5 * harness.SCALE)
        # each answered publish stored exactly once, in order; none stored without an answer
        stored = [f.get("d") for _, f in xrange(self.r, topic)]
        self.assertEqual(stored, [b"%02d" % i for i in range(ok)])
        self.after_attack()

    def test_keep_alive_publishes_and_pipelined_gets_still_served(self):
        # the life cycle must not cost normal use: publishes one after the other on one
        # kept-alive connection, and GETs pipelined in one send, are all answered in order
        topic = "keepalive.pub"
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=5 * harness.SCALE)
        try:
            for i in range(3):
                s.sendall(head("POST", "/publish/" + topic, ["Content-Length: 1"]) + b"%d" % i)
                buf = b""
                while not (parse_response(buf) or (0, 0, 0, False))[3]:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "closed after publish %d" % i)
                    buf += chunk
                self.assertEqual(parse_response(buf)[0], 200, buf[:300])
                self.assertNotEqual(parse_response(buf)[1].get("connection"), "close")
        finally:
            s.close()
        self.assertEqual([f.get("d") for _, f in xrange(self.r, topic)], [b"0", b"1", b"2"])
        raw, _ = exchange(self.h.port, head("GET", "/healthz", key=None) +
                          head("GET", "/readyz", key=None) + head("GET", "/healthz", key=None))
        self.assertEqual([(st, b) for st, _, b in responses(raw)],
                         [(200, b"ok\n"), (200, b"ready\n"), (200, b"ok\n")], raw[:600])
        self.after_attack()

    def test_pipelined_body_after_answered_request_refused(self):
        # libwebsockets 4.1 takes the body of a request parsed from bytes it had already read
        # from the start of those bytes (the request's own head) and then loops for ever on
        # the finished body: a spinning thread whose other clients starve. Such a request is
        # refused (400, closed) before any body is read, whatever came before it.
        firsts = {
            "GET": head("GET", "/healthz", key=None),
            "publish": head("POST", "/publish/pipe.first", ["Content-Length: 1"]) + b"1",
        }
        seconds = {
            "publish": head("POST", "/publish/pipe.second", ["Content-Length: 3"]) + b"abc",
            "publish no length": head("POST", "/publish/pipe.second") + b"abc",
            "GET with length": head("GET", "/healthz", ["Content-Length: 3"], key=None) + b"abc",
        }
        for fw, first in firsts.items():
            for sw, second in seconds.items():
                with self.subTest(first=fw, second=sw):
                    t0 = time.monotonic()
                    raw, closed = exchange(self.h.port, first + second + self.SMUGGLED)
                    got = [st for st, _, _ in responses(raw)]
                    self.assertTrue(got and got[0] == 200, "%s, %s: %r" % (fw, sw, raw[:300]))
                    self.assertIn(got[1:], ([], [400]), "%s, %s: %r" % (fw, sw, raw[:600]))
                    self.assertTrue(closed, "%s, %s: left open" % (fw, sw))
                    self.assertLess(time.monotonic() - t0, 1.4 * harness.SCALE,
                                    "%s, %s: not closed promptly" % (fw, sw))
        time.sleep(0.3 * harness.SCALE)
        self.assertEqual(self.xlen("pipe.second"), 0)
        self.assertEqual(self.xlen("framing.smuggled"), 0)
        self.assertEqual([f.get("d") for _, f in xrange(self.r, "pipe.first")], [b"1"] * 3)
        self.after_attack()

    # ---- class 6: HTTP/2 cleartext ----

    H2C = ["Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
           "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]

    def assert_refused(self, raw, closed, what, statuses=(400,)):
        got = responses(raw)
        if got:
            self.assertIn(got[0][0], statuses, "%s: %r" % (what, raw[:300]))
            self.assertEqual(len(got), 1, "%s: %r" % (what, raw[:600]))
        else:
            self.assertEqual(raw, b"", "%s: neither a response nor a close: %r" % (what, raw[:300]))
        self.assertNotIn(b" 101 ", raw.split(b"\r\n", 1)[0], what)
        self.assertTrue(closed, "%s: the connection was left open" % what)

    def test_h2c_upgrade_refused(self):
        for path in ("/healthz", "/events/h2c.t"):
            with self.subTest(path):
                raw, closed = exchange(self.h.port, head("GET", path, self.H2C, key=None))
                self.assert_refused(raw, closed, "h2c " + path)
                self.assertIsNotNone(parse_response(raw), raw[:300])
        # other upgrades than websocket: refused too
        raw, closed = exchange(self.h.port, head("GET", "/healthz", [
            "Connection: Upgrade", "Upgrade: foo/1"], key=None))
        self.assertTrue(responses(raw) and responses(raw)[0][0] >= 400, raw[:300])
        self.after_attack()

    def test_h2c_publish_stores_nothing(self):
        topic = "h2c.pub"
        raw, closed = exchange(self.h.port, head("POST", "/publish/" + topic,
                                                  self.H2C + ["Content-Length: 1"]) + b"x")
        self.assert_refused(raw, closed, "h2c publish")
        self.assertEqual(self.xlen(topic), 0)
        self.after_attack()

    def test_http2_prior_knowledge_preface_refused(self):
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        raw, closed = exchange(self.h.port, preface)
        self.assert_refused(raw, closed, "PRI preface", statuses=(400, 403, 405, 501))
        self.after_attack()

    def test_h2c_through_haproxy_refused(self):
        import lbkit
        lb = lbkit.HAProxy([self.h])
        self._closers.append(lb)
        lb.wait_all_up()
        raw, closed = exchange(lb.port, head("GET", "/healthz", self.H2C, key=None))
        got = responses(raw)
        self.assertTrue(got, raw[:300])
        self.assertGreaterEqual(got[0][0], 400, raw[:300])
        self.assertNotIn(b" 101 ", raw, raw[:300])
        self.after_attack()

    # ---- class 8: methods Herald does not serve ----

    def test_connect_refused_and_closed(self):
        t0 = time.monotonic()
        raw, closed = exchange(self.h.port, b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n",
                               quiet=5.0)
        got = responses(raw)
        self.assertTrue(got, "CONNECT: no answer: %r" % raw[:300])
        self.assertIn(got[0][0], (405, 501), raw[:300])
        self.assertIn("GET", got[0][1].get("allow", ""), raw[:300])
        self.assertTrue(closed, "CONNECT: the connection was left open")
        self.assertLess(time.monotonic() - t0, 4.0 * harness.SCALE, "CONNECT: not closed promptly")
        self.after_attack()

    def test_connect_after_request_refused(self):
        data = head("GET", "/healthz", key=None) + b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n"
        raw, closed = exchange(self.h.port, data, quiet=5.0)
        got = responses(raw)
        self.assertEqual([g[0] for g in got][:1], [200], raw[:300])
        self.assertTrue(len(got) == 1 or got[1][0] in (405, 501), raw[:600])
        self.assertTrue(closed, "pipelined CONNECT: the connection was left open")
        self.after_attack()

    def test_other_methods_refused_with_allow(self):
        for m in ("PUT", "DELETE", "PATCH", "HEAD"):
            with self.subTest(m):
                raw, closed = exchange(self.h.port, head(m, "/publish/m.t", ["Content-Length: 0"]))
                got = responses(raw, to_head=m == "HEAD")
                self.assertTrue(got, "%s: %r" % (m, raw[:300]))
                self.assertIn(got[0][0], (405, 501), raw[:300])
                if m == "HEAD":  # no content after the head (RFC 9110 section 9.3.2)
                    self.assertTrue(raw.endswith(b"\r\n\r\n"), raw[:300])
                self.assertTrue(got[0][1].get("allow"), raw[:300])
                self.assertTrue(closed, m)
        self.assertEqual(self.xlen("m.t"), 0)
        self.after_attack()

    # ---- class 10: framing validated before anything is acted on ----

    SMUGGLED = head("POST", "/publish/framing.smuggled", ["Content-Length: 3"]) + b"bad"

    FRAMING = {
        "CL and TE": (["Content-Length: 4", "Transfer-Encoding: chunked"], b"0\r\n\r\n"),
        "TE and CL": (["Transfer-Encoding: chunked", "Content-Length: 4"], b"0\r\n\r\n"),
        "TE space before colon": (["Transfer-Encoding : chunked"], b"3\r\nabc\r\n0\r\n\r\n"),
        "CL space before colon": (["Content-Length : 3"], b"abc"),
        "TE tab before colon": (["Transfer-Encoding\t: chunked"], b"3\r\nabc\r\n0\r\n\r\n"),
        "empty CL": (["Content-Length:"], b"abc"),
        "duplicate CL": (["Content-Length: 3", "Content-Length: 5"], b"abcde"),
        "duplicate equal CL": (["Content-Length: 3", "Content-Length: 3"], b"abc"),
        "CL list": (["Content-Length: 3, 3"], b"abc"),
        "CL plus sign": (["Content-Length: +3"], b"abc"),
        "CL hex": (["Content-Length: 0x3"], b"abc"),
        "CL negative": (["Content-Length: -1"], b"abc"),
        "CL huge": (["Content-Length: 99999999999999999999999"], b"abc"),
        "CL trailing junk": (["Content-Length: 3x"], b"abc"),
        "TE gzip": (["Transfer-Encoding: gzip", "Content-Length: 3"], b"abc"),
        "TE chunked twice": (["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                             b"0\r\n\r\n"),
        "TE not chunked last": (["Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n"),
    }

    def test_ambiguous_framing_refused(self):
        for what, (extra, body) in self.FRAMING.items():
            with self.subTest(what):
                topic = "framing." + "".join(ch if ch.isalnum() else "_" for ch in what)
                raw, closed = exchange(self.h.port, head("POST", "/publish/" + topic, extra) +
                                       body + self.SMUGGLED)
                got = responses(raw)
                self.assertTrue(got, "%s: no answer: %r" % (what, raw[:300]))
                self.assertEqual(got[0][0], 400, "%s: %r" % (what, raw[:300]))
                self.assertEqual(len(got), 1, "%s: more than one answer: %r" % (what, raw[:600]))
                self.assertTrue(closed, "%s: the connection was left open" % what)
                self.assertEqual(self.xlen(topic), 0, what)
        self.assertEqual(self.xlen("framing.smuggled"), 0)
        self.after_attack()

    def test_body_on_get_refused(self):
        cases = {
            "CL on GET": (["Content-Length: 5"], b"GET /x"),
            "TE on GET": (["Transfer-Encoding: chunked"], b"0\r\n\r\n"),
            "CL on GET SSE": (["Content-Length: 5"], b"hello"),
        }
        for what, (extra, body) in cases.items():
            with self.subTest(what):
                path = "/events/get.body" if "SSE" in what else "/healthz"
                raw, closed = exchange(self.h.port, head("GET", path, extra, key=None) + body +
                                       self.SMUGGLED)
                got = responses(raw)
                self.assertTrue(got, "%s: %r" % (what, raw[:300]))
                self.assertEqual(got[0][0], 400, "%s: %r" % (what, raw[:300]))
                self.assertEqual(len(got), 1, "%s: %r" % (what, raw[:600]))
                self.assertTrue(closed, what)
        self.assertEqual(self.xlen("framing.smuggled"), 0)
        self.after_attack()

    def test_publish_without_length_refused(self):
        topic = "framing.nolength"
        raw, closed = exchange(self.h.port, head("POST", "/publish/" + topic) + b"abc" +
                               self.SMUGGLED)
        got = responses(raw)
        self.assertTrue(got, raw[:300])
        self.assertEqual(got[0][0], 411, raw[:300])
        self.assertTrue(closed)
        self.assertEqual(self.xlen(topic), 0)
        self.assertEqual(self.xlen("framing.smuggled"), 0)
        self.after_attack()

    def test_malformed_heads_store_at_most_once(self):
        # What libwebsockets parses itself: a bare LF ends a line (RFC 9112 section 2.2 lets a
        # recipient accept it), so the request after it is a well-framed second request. A NUL
        # or an obs-fold line hides the Content-Length after it inside a name lws does not
        # know: the publish has no length (411, closed) and the bytes after it are never
        # parsed as a request.
        cases = {
            "bare LF": (b"POST /publish/odd.lf HTTP/1.1\nHost: x\nAuthorization: Bearer " +
                        KEY.encode() + b"\nContent-Length: 3\n\nabc", 1),
            "NUL in header": (head("POST", "/publish/odd.nul", ["X-A: a\x00b",
                                                                "Content-Length: 3"]) + b"abc", 0),
            "obs-fold": (head("POST", "/publish/odd.fold", ["X-A: a", " folded",
                                                            "Content-Length: 3"]) + b"abc", 0),
        }
        for what, (data, follow) in cases.items():
            with self.subTest(what):
                before = self.xlen("framing.smuggled")
                raw, closed = exchange(self.h.port, data + self.SMUGGLED)
                got = responses(raw)
                self.assertTrue(got, "%s: %r" % (what, raw[:300]))
                self.assertIn(got[0][0], (200, 400, 411), "%s: %r" % (what, raw[:300]))
                self.assertLessEqual(len(got), 1 + follow, "%s: %r" % (what, raw[:600]))
                self.assertLessEqual(self.xlen("framing.smuggled") - before, follow,
                                     "%s: %r" % (what, raw[:600]))
                if not follow:
                    self.assertTrue(closed, what)
        for t in ("odd.lf", "odd.nul", "odd.fold"):
            self.assertLessEqual(self.xlen(t), 1, t)
        self.after_attack()


if __name__ == "__main__":
    harness.main()
