"""WebSocket transport (GET /ws, subprotocol herald.v1), checked against PROTOCOL.md: the
handshake, subscribe/unsubscribe with exact event objects and ids, resume with `since` (history
then live, no duplicate, no gap) and gap notices, topic limits, JSON and protocol-level ping,
fragmented masked messages, every error code, the close codes, publish with and without auth.
After each bad case a second client on the same edge must still receive events."""

import base64
import json
import signal
import threading
import time

import harness
from harness import (HeraldTestCase, fcall_publish, stream_key, wait_live_subscribed, xrange)
from wsclient import (OP_BINARY, OP_PING, OP_TEXT, Closed, WSClient, encode_frame, request)

KEY = "s3cret-publish-key"


def epoch_of(r, topic):
    e = r.cmd("GET", "herald:{%s}:epoch" % topic)
    assert e is not None, "no epoch key for %r" % topic
    return e.decode()


def wait_many_subscribed(r, topics, timeout=10.0):
    chans = [harness.live_channel(t) for t in topics]

    def ok():
        reply = r.cmd("PUBSUB", "NUMSUB", *chans)
        return all(reply[i] >= 1 for i in range(1, len(reply), 2))
    harness.wait_until(ok, timeout, what="live subscriptions for %d topics" % len(topics))


class WSTestCase(HeraldTestCase):
    """Helpers shared by the WebSocket tests."""

    def start(self, args=(), n=1):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.hs = [self.edge(self.srv, "edge-%d" % (i + 1), list(args)) for i in range(n)]
        self.h = self.hs[0]
        self.watch_n = 0
        self.watcher = self.ws(self.h)
        self.subscribe(self.watcher, "watch", rid="w")
        wait_live_subscribed(self.r, "watch")

    def ws(self, h, **kw):
        c = WSClient(h.port, **kw)
        self._closers.append(c)
        return c

    def cursor(self, topic, sid):
        return "%s_%s" % (sid, epoch_of(self.r, topic))

    def expected(self, topic, sid, data, event=None):
        ev = {"type": "event", "topic": topic, "id": self.cursor(topic, sid), "data": data}
        if event is not None:
            ev["event"] = event
        return ev

    def subscribe(self, ws, topic, since=None, rid=None):
        msg = {"type": "subscribe", "topic": topic}
        if since is not None:
            msg["since"] = since
        if rid is not None:
            msg["id"] = rid
        reply = request(ws, msg)
        want = {"type": "subscribed", "topic": topic}
        if rid is not None:
            want["id"] = rid
        self.assertEqual(reply, want, "subscribe %r" % (msg,))
        return reply

    def assert_pong_next(self, ws, what):
        """A JSON ping whose pong must be the very next message: nothing else was queued."""
        ws.send_json({"type": "ping", "id": "sentinel"})
        m = ws.recv_json()
        self.assertEqual((m.get("type"), m.get("id")), ("pong", "sentinel"),
                         "%s: unexpected message %r" % (what, m))

    def check_watcher(self, what=""):
        """The watching client on the same edge still receives a freshly published event."""
        self.assertTrue(self.h.alive(), "edge died after %s:\n%s" % (what, self.h.log()))
        self.watch_n += 1
        data = "w-%d" % self.watch_n
        sid = fcall_publish(self.r, "watch", data)
        m = self.watcher.recv_json()
        self.assertEqual(m, self.expected("watch", sid, data),
                         "watcher after %s" % (what or "the previous step"))

    def assert_error(self, ws, msg, code, rid=None, raw=None):
        """Send msg (dict) or raw text; expect exactly an error with `code` and the echoed id;
        the connection stays open."""
        if raw is not None:
            ws.send_text(raw)
        else:
            ws.send_json(msg)
        _, m = ws.recv_until(lambda x: x.get("type") not in ("event", "gap"), keep=True)
        what = raw if raw is not None else msg
        self.assertEqual(m.get("type"), "error", "%r: %r" % (what, m))
        self.assertEqual(m.get("code"), code, "%r: %r" % (what, m))
        self.assertIsInstance(m.get("message"), str, "%r: %r" % (what, m))
        self.assertTrue(m["message"], "%r: empty message" % (what,))
        self.assertNotIn("\n", m["message"], "%r: message is not one line" % (what,))
        if rid is None:
            self.assertIsNone(m.get("id"), "%r: no id was sent, got %r" % (what, m))
            self.assertEqual(set(m) - {"type", "code", "message", "id"}, set(), m)
        else:
            self.assertIn("id", m, "%r: id not echoed: %r" % (what, m))
            self.assertEqual(m["id"], rid, "%r: id not echoed: %r" % (what, m))
            self.assertIs(type(m["id"]), type(rid), "%r: id type changed: %r" % (what, m))
        self.assert_pong_next(ws, "after %r" % (what,))
        self.check_watcher(repr(what))
        return m


class Handshake(WSTestCase):

    def test_with_and_without_subprotocol(self):
        self.start()
        a = self.ws(self.h, protocols=["herald.v1"])
        self.assertEqual(a.protocol, "herald.v1")
        b = self.ws(self.h, protocols=["chat.other", "herald.v1"])
        self.assertEqual(b.protocol, "herald.v1", "herald.v1 must be picked from a list")
        c = self.ws(self.h, protocols=None)
        self.assertIsNone(c.protocol, "no subprotocol may be chosen when none was offered")
        for ws, name in ((a, "herald.v1"), (b, "list"), (c, "none")):
            self.subscribe(ws, "hs.topic", rid=name)
        wait_live_subscribed(self.r, "hs.topic")
        sid = fcall_publish(self.r, "hs.topic", "hello")
        for ws in (a, b, c):
            self.assertEqual(ws.recv_json(), self.expected("hs.topic", sid, "hello"))
        self.check_watcher("handshakes")

    def test_upgrade_response_names_node(self):
        self.start()
        a = self.ws(self.h)
        self.assertEqual(a.headers.get("x-herald-node"), "edge-1",
                         "every HTTP response carries X-Herald-Node, the 101 too: %r" % (
                             a.headers,))

    def test_permessage_deflate_is_declined(self):
        """A client that offers permessage-deflate gets a 101 without it (RFC 7692: a server
        may decline; edge/service.c says why) and uncompressed events."""
        self.start()
        ws = self.ws(self.h, deflate=True)
        self.assertFalse(ws.deflate, "permessage-deflate was negotiated: %r" % (ws.headers,))
        self.subscribe(ws, "deflate.t", rid=1)
        wait_live_subscribed(self.r, "deflate.t")
        payload = "compressible " * 300
        sid = fcall_publish(self.r, "deflate.t", payload)
        self.assertEqual(ws.recv_json(), self.expected("deflate.t", sid, payload))
        self.assertFalse(any(f.rsv & 4 for f in ws.frames), "a compressed frame")


class Subscribe(WSTestCase):

    def test_live_events_exact(self):
        self.start()
        ws = self.ws(self.h)
        topic = "ws.live"
        self.subscribe(ws, topic, rid=1)
        wait_live_subscribed(self.r, topic)
        cases = [("one", None), ("two\nlines\r\nthree", "greet"), ("h\u00e9llo \u2603", None),
                 ('{"json":true}', "app.update"), ("", None)]
        want = []
        for data, ev in cases:
            sid = fcall_publish(self.r, topic, data, ev)
            want.append(self.expected(topic, sid, data, ev))
        got = [ws.recv_json() for _ in cases]
        self.assertEqual(got, want)
        # a payload that is not valid UTF-8 is sent base64-encoded
        raw = b"\xff\xfe\x00bin\x80"
        sid = fcall_publish(self.r, topic, raw)
        m = ws.recv_json()
        self.assertEqual(m, {"type": "event", "topic": topic, "id": self.cursor(topic, sid),
                             "data": base64.b64encode(raw).decode(), "encoding": "base64"})
        self.assert_pong_next(ws, "after live events")

    def test_subscribe_without_request_id(self):
        self.start()
        ws = self.ws(self.h)
        self.subscribe(ws, "ws.noid")  # the reply must carry no id
        self.assertEqual(request(ws, {"type": "unsubscribe", "topic": "ws.noid"}),
                         {"type": "unsubscribed", "topic": "ws.noid"})

    def test_resume_since_on_another_edge(self):
        self.start(n=2)
        topic = "ws.resume"
        sids = [fcall_publish(self.r, topic, "ev-%d" % i) for i in range(1, 6)]
        for since, name in ((self.cursor(topic, sids[1]), "cursor"), (sids[1], "bare id")):
            ws = self.ws(self.hs[1])
            self.subscribe(ws, topic, since=since, rid=name)
            got = [ws.recv_json() for _ in range(3)]
            self.assertEqual(got, [self.expected(topic, sids[i], "ev-%d" % (i + 1))
                                   for i in range(2, 5)], "since %s" % name)
            self.assert_pong_next(ws, "after history (%s)" % name)
            ws.close()
        # since = the newest cursor: nothing, then live
        ws = self.ws(self.hs[1])
        self.subscribe(ws, topic, since=self.cursor(topic, sids[-1]), rid=2)
        self.assert_pong_next(ws, "nothing after the newest cursor")
        wait_live_subscribed(self.r, topic)
        sid = fcall_publish(self.r, topic, "live")
        self.assertEqual(ws.recv_json(), self.expected(topic, sid, "live"))

    def test_resume_while_publishing_no_dup_no_gap(self):
        self.start()
        topic = "ws.merge"
        first = [fcall_publish(self.r, topic, "m-%d" % i) for i in range(50)]
        pub = self.client(self.srv)
        done = threading.Event()
        errors = []

        def publisher():
            try:
                for i in range(50, 250):
                    fcall_publish(pub, topic, "m-%d" % i)
            except Exception as e:  # reported below
                errors.append(e)
            finally:
                done.set()
        t = threading.Thread(target=publisher, daemon=True)
        ws = self.ws(self.h)
        t.start()
        self.subscribe(ws, topic, since=self.cursor(topic, first[9]), rid="m")
        self.assertTrue(done.wait(30 * harness.SCALE), "publisher did not finish")
        t.join()
        self.assertEqual(errors, [])
        want = [(eid, f["d"].decode()) for eid, f in xrange(self.r, topic)][10:]
        self.assertEqual(len(want), 240)
        got = []
        while len(got) < len(want):
            m = ws.recv_json()
            self.assertEqual(m.get("type"), "event", m)
            got.append((m["id"].split("_")[0], m["data"]))
        self.assertEqual(got, want, "history then live must be exact")
        self.assert_pong_next(ws, "after the merge")

    def test_gap_trimmed(self):
        self.start(["--history-max", "10"])
        topic = "ws.trim"
        cur = self.cursor(topic, fcall_publish(self.r, topic, "p-0"))
        replies = self.r.pipeline([("FCALL", "herald_publish", 1, topic, "p-%d" % i)
                                   for i in range(1, 500)])
        self.assertEqual([x for x in replies if isinstance(x, harness.RedisError)], [])
        retained = xrange(self.r, topic)
        self.assertLess(len(retained), 500, "--history-max 10 did not trim")
        ws = self.ws(self.h)
        self.subscribe(ws, topic, since=cur, rid="t")
        self.assertEqual(ws.recv_json(), {"type": "gap", "topic": topic, "reason": "trimmed"})
        got = [ws.recv_json() for _ in retained]
        self.assertEqual(got, [self.expected(topic, eid, f["d"].decode()) for eid, f in retained])
        wait_live_subscribed(self.r, topic)
        sid = fcall_publish(self.r, topic, "after")
        self.assertEqual(ws.recv_json(), self.expected(topic, sid, "after"))

    def test_gap_reset(self):
        self.start()
        topic = "ws.reset"
        old = [fcall_publish(self.r, topic, "old-%d" % i) for i in range(3)]
        old_cur = self.cursor(topic, old[-1])
        self.assertEqual(self.r.cmd("DEL", stream_key(topic)), 1)
        new = [fcall_publish(self.r, topic, "new-%d" % i) for i in range(3)]
        self.assertNotEqual(old_cur.split("_")[1], epoch_of(self.r, topic),
                            "a recreated stream must get a new epoch")
        ws = self.ws(self.h)
        self.subscribe(ws, topic, since=old_cur, rid="r")
        self.assertEqual(ws.recv_json(), {"type": "gap", "topic": topic, "reason": "reset"})
        got = [ws.recv_json() for _ in new]
        self.assertEqual(got, [self.expected(topic, new[i], "new-%d" % i) for i in range(3)])
        self.assert_pong_next(ws, "after reset history")

    def test_many_topics_default_limit(self):
        self.start()
        ws = self.ws(self.h)
        topics = ["many.%02d" % i for i in range(64)]
        for i, t in enumerate(topics):
            ws.send_json({"type": "subscribe", "topic": t, "id": i})
        replies = [ws.recv_json() for _ in topics]
        self.assertEqual(replies, [{"type": "subscribed", "topic": t, "id": i}
                                   for i, t in enumerate(topics)])
        self.assert_error(ws, {"type": "subscribe", "topic": "many.64", "id": 64},
                          "too_many_topics", 64)
        wait_many_subscribed(self.r, topics)
        want = {}
        for t in reversed(topics):
            sid = fcall_publish(self.r, t, "to " + t)
            want[t] = self.expected(t, sid, "to " + t)
        got = {}
        for _ in topics:
            m = ws.recv_json()
            self.assertNotIn(m["topic"], got, "duplicate event %r" % m)
            got[m["topic"]] = m
        self.assertEqual(got, want)

    def test_topic_limit_lowered(self):
        self.start(["--max-topics-per-connection", "3"])
        ws = self.ws(self.h)
        for t in ("lim.a", "lim.b", "lim.c"):
            self.subscribe(ws, t, rid=t)
        self.assert_error(ws, {"type": "subscribe", "topic": "lim.d", "id": "d"},
                          "too_many_topics", "d")
        _, _, body = harness.http_get(self.h.port, "/metrics")
        self.assertIn(b'herald_rejected_total{reason="too_many_topics"} 1\n', body)
        self.assertEqual(request(ws, {"type": "unsubscribe", "topic": "lim.a", "id": 1}),
                         {"type": "unsubscribed", "topic": "lim.a", "id": 1})
        self.subscribe(ws, "lim.d", rid="d2")
        # the limit is per connection: another client may subscribe too
        other = self.ws(self.h)
        for t in ("lim.a", "lim.b", "lim.c"):
            self.subscribe(other, t)

    def test_unsubscribe_stops_events(self):
        self.start()
        ws = self.ws(self.h)
        self.subscribe(ws, "un.a", rid=1)
        self.subscribe(ws, "un.b", rid=2)
        wait_many_subscribed(self.r, ["un.a", "un.b"])
        sa = fcall_publish(self.r, "un.a", "a-1")
        self.assertEqual(ws.recv_json(), self.expected("un.a", sa, "a-1"))
        self.assertEqual(request(ws, {"type": "unsubscribe", "topic": "un.a", "id": 3}),
                         {"type": "unsubscribed", "topic": "un.a", "id": 3})
        fcall_publish(self.r, "un.a", "a-2")
        sb = fcall_publish(self.r, "un.b", "b-1")
        self.assertEqual(ws.recv_json(), self.expected("un.b", sb, "b-1"),
                         "no event of an unsubscribed topic may arrive")
        self.assert_pong_next(ws, "after unsubscribe")
        self.assert_error(ws, {"type": "unsubscribe", "topic": "un.a", "id": 4},
                          "not_subscribed", 4)
        # subscribing again works and resumes normally
        self.subscribe(ws, "un.a", rid=5)
        wait_live_subscribed(self.r, "un.a")
        sa = fcall_publish(self.r, "un.a", "a-3")
        self.assertEqual(ws.recv_json(), self.expected("un.a", sa, "a-3"))


class Control(WSTestCase):

    def test_json_and_protocol_ping(self):
        self.start()
        ws = self.ws(self.h)
        self.assertEqual(request(ws, {"type": "ping", "id": 7}), {"type": "pong", "node": "edge-1", "id": 7})
        self.assertEqual(request(ws, {"type": "ping"}), {"type": "pong", "node": "edge-1"})
        ws.ping(b"are-you-there")
        self.assertEqual(ws.wait_pong(), b"are-you-there")
        ws.ping(b"")
        self.assertEqual(ws.wait_pong(), b"")
        self.check_watcher("pings")

    def test_fragmented_masked_subscribe(self):
        self.start()
        ws = self.ws(self.h)
        msg = json.dumps({"type": "subscribe", "topic": "frag.t", "id": "f"})
        ping = encode_frame(OP_PING, b"mid-message")
        ws.send_fragmented(msg, 3, between=[ping])
        self.assertEqual(ws.wait_pong(), b"mid-message")
        self.assertEqual(ws.recv_json(), {"type": "subscribed", "topic": "frag.t", "id": "f"})
        wait_live_subscribed(self.r, "frag.t")
        sid = fcall_publish(self.r, "frag.t", "x")
        self.assertEqual(ws.recv_json(), self.expected("frag.t", sid, "x"))
        # a long message in many small fragments
        ws.send_fragmented(json.dumps({"type": "ping", "id": "p" * 300}), 40)
        self.assertEqual(ws.recv_json(), {"type": "pong", "node": "edge-1", "id": "p" * 300})
        self.check_watcher("fragmented messages")

    def test_close_handshake(self):
        self.start()
        ws = self.ws(self.h)
        self.subscribe(ws, "close.t", rid=1)
        ws.send_frame(0x8, b"\x03\xe8bye")
        ws.close_sent = True
        self.assertEqual(ws.wait_closed(), 1000, "the server echoes a normal close")
        self.assertTrue(ws.wait_tcp_closed(), "the server ends the TCP connection after close")
        self.check_watcher("a normal close")

    def test_drain_closes_1001(self):
        self.start()
        ws = self.ws(self.h)
        self.subscribe(ws, "drain.t", rid=1)
        self.h.kill(signal.SIGTERM)
        self.assertEqual(ws.wait_closed(15), 1001, "SIGTERM drain closes WebSockets with 1001")
        self.h.proc.wait(30 * harness.SCALE)

    def test_drain_closes_publishers_after_their_answers(self):
        """A WebSocket that only publishes is drained too (it was left open until
        --drain-timeout, then dropped without a close frame); one whose publish waits for
        Redis gets that publish's answer first, then 1001."""
        self.start(["--publish-key", KEY, "--drain-timeout", "20"])
        idle_pub = self.ws(self.h, headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(request(idle_pub, {"type": "publish", "topic": "dr.p", "data": "a",
                                            "id": 1})["type"], "published")
        left = self.ws(self.h)  # subscribed, then unsubscribed from everything
        self.subscribe(left, "dr.l", rid=1)
        self.assertEqual(request(left, {"type": "unsubscribe", "topic": "dr.l", "id": 2}),
                         {"type": "unsubscribed", "topic": "dr.l", "id": 2})
        busy = self.ws(self.h, headers={"Authorization": "Bearer " + KEY})
        for t in ("dr.a", "dr.b"):  # reached through each of its topics
            self.subscribe(busy, t, rid=t)
        self.srv.proc.send_signal(signal.SIGSTOP)
        try:
            busy.send_json({"type": "publish", "topic": "dr.p", "data": "b", "id": 2})
            time.sleep(0.3 * harness.SCALE)
            t0 = time.monotonic()
            self.h.kill(signal.SIGTERM)
            self.assertEqual(idle_pub.wait_closed(5), 1001, "a publisher-only WebSocket")
            self.assertEqual(left.wait_closed(5), 1001, "one with no subscription left")
            self.assertLess(time.monotonic() - t0, 3 * harness.SCALE)
            time.sleep(0.5 * harness.SCALE)
            self.assertFalse(busy.closed, "closed with a publish unanswered")
        finally:
            self.srv.proc.send_signal(signal.SIGCONT)
        msg = busy.recv_json(10)
        self.assertEqual((msg["type"], msg["id"]), ("published", 2), msg)
        self.assertEqual(busy.wait_closed(5), 1001)
        self.h.proc.wait(10 * harness.SCALE)
        self.assertLess(time.monotonic() - t0, 8 * harness.SCALE, "the drain waited")

    def test_server_pings_idle_connections(self):
        self.start(["--ws-ping-interval", "1"])
        ok = self.ws(self.h)
        mute = self.ws(self.h, auto_pong=False)
        self.subscribe(ok, "idle.t", rid=1)
        self.subscribe(mute, "idle.t", rid=2)
        ok.wait_ping(10)
        ok.wait_ping(10)
        mute.wait_ping(10)
        # the client that never answers is closed; the one that answers is kept
        mute.wait_closed(30)
        self.assertFalse(ok.closed, "a client answering pings was closed (code %r)" % (
            ok.close_code,))
        wait_live_subscribed(self.r, "idle.t")
        sid = fcall_publish(self.r, "idle.t", "still here")
        self.assertEqual(ok.recv_json(), self.expected("idle.t", sid, "still here"))
        harness.log("pings seen by the answering client: %d" % len(ok.pings))


class Errors(WSTestCase):

    def test_every_error_code_keeps_connection(self):
        self.start(["--publish-key", KEY])
        ws = self.ws(self.h)
        self.assert_error(ws, None, "bad_json", raw="not json")
        self.assert_error(ws, None, "bad_json", raw='{"type":"subscribe",')
        self.assert_error(ws, None, "bad_json", raw="[1,2]")
        self.assert_error(ws, None, "bad_json", raw='"subscribe"')
        self.assert_error(ws, {"type": "subscribe", "id": 1}, "bad_request", 1)
        self.assert_error(ws, {"type": "unsubscribe", "id": 1.5}, "bad_request", 1.5)
        self.assert_error(ws, {"type": "frobnicate", "id": "x"}, "unknown_type", "x")
        self.assert_error(ws, {"type": "subscribe", "topic": "a b", "id": True},
                          "bad_topic", True)
        self.assert_error(ws, {"type": "subscribe", "topic": "", "id": 3}, "bad_topic", 3)
        self.assert_error(ws, {"type": "subscribe", "topic": "t" * 129, "id": 4},
                          "bad_topic", 4)
        self.assert_error(ws, {"type": "subscribe", "topic": "a:b", "id": 5}, "bad_topic", 5)
        for bad in ("abc", "1-", "1-2_UPPER", "1-2_" + "a" * 17, "18446744073709551616-0"):
            self.assert_error(ws, {"type": "subscribe", "topic": "err.c", "since": bad,
                                   "id": bad}, "bad_cursor", bad)
        # a refused subscribe left no subscription behind
        self.subscribe(ws, "err.c", rid="ok")
        self.assert_error(ws, {"type": "subscribe", "topic": "err.c", "id": 6},
                          "already_subscribed", 6)
        self.assert_error(ws, {"type": "unsubscribe", "topic": "err.never", "id": 7},
                          "not_subscribed", 7)
        self.assert_error(ws, {"type": "publish", "topic": "err.p", "data": "x", "id": 8},
                          "forbidden", 8)
        # the subscription survived all of it
        wait_live_subscribed(self.r, "err.c")
        sid = fcall_publish(self.r, "err.c", "still subscribed")
        self.assertEqual(ws.recv_json(), self.expected("err.c", sid, "still subscribed"))

    def test_too_large_publish(self):
        self.start(["--publish-key", KEY, "--max-message-bytes", "1024"])
        ws = self.ws(self.h, headers={"Authorization": "Bearer " + KEY})
        self.assert_error(ws, {"type": "publish", "topic": "big", "data": "x" * 1025, "id": 1},
                          "too_large", 1)
        self.assertIsNone(self.r.cmd("GET", "herald:{big}:epoch"), "nothing may be stored")
        r = request(ws, {"type": "publish", "topic": "big", "data": "x" * 1024, "id": 2})
        self.assertEqual(r.get("type"), "published", r)

    def test_unavailable_when_redis_is_down(self):
        self.start(["--publish-key", KEY])
        ws = self.ws(self.h, headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(request(ws, {"type": "publish", "topic": "down", "data": "a",
                                      "id": 1})["type"], "published")
        self.srv.stop()
        ws.send_json({"type": "publish", "topic": "down", "data": "b", "id": 2})
        m = ws.recv_json(20)
        self.assertEqual((m.get("type"), m.get("code"), m.get("id")), ("error", "unavailable", 2),
                         m)
        self.assert_pong_next(ws, "after unavailable")

    def check_closed_with(self, ws, code, what):
        got = ws.wait_closed()
        self.assertEqual(got, code, "%s: close code %r (reason %r)" % (what, got,
                                                                      ws.close_reason))
        self.check_watcher(what)

    def test_binary_frame_closes_1003(self):
        self.start()
        ws = self.ws(self.h)
        ws.send_frame(OP_BINARY, b"\x00\x01binary")
        self.check_closed_with(ws, 1003, "binary frame")

    def test_oversized_frame_closes_1009(self):
        self.start(["--max-message-bytes", "1024"])
        ok = self.ws(self.h)
        ok.send_text(json.dumps({"type": "ping", "id": "x" * 5000}))  # 5 kB < 1024 + 4096
        self.assertEqual(ok.recv_json(), {"type": "pong", "node": "edge-1", "id": "x" * 5000})
        ws = self.ws(self.h)
        ws.send_text(json.dumps({"type": "ping", "id": "x" * 6000}))
        self.check_closed_with(ws, 1009, "one 6 kB frame")
        ws = self.ws(self.h)
        ws.send_fragmented(json.dumps({"type": "ping", "id": "y" * 6000}), 4)
        self.check_closed_with(ws, 1009, "a 6 kB message in 4 fragments")

    def test_unmasked_frame_is_harmless(self):
        # RFC 6455 wants 1002 for an unmasked client frame, but libwebsockets 4.1 does not
        # check the mask bit and gives the edge no way to see it (PROTOCOL.md, known
        # deviations). What must hold: the frame is read correctly, nothing breaks, and every
        # other client keeps being served.
        self.start()
        ws = self.ws(self.h)
        ws.send_raw(encode_frame(OP_TEXT, b'{"type":"ping","id":7}', masked=False))
        msg = ws.recv_json(5)
        self.assertEqual(msg, {"type": "pong", "node": "edge-1", "id": 7})
        self.check_watcher("an unmasked frame")


class Publish(WSTestCase):

    def test_publish_with_and_without_auth(self):
        self.start(["--publish-key", KEY], n=2)
        topic = "wspub.t"
        sub = self.ws(self.hs[1])  # on the other edge
        self.subscribe(sub, topic, rid="s")
        wait_live_subscribed(self.r, topic)

        anon = self.ws(self.h)
        self.assert_error(anon, {"type": "publish", "topic": topic, "data": "no", "id": 1},
                          "forbidden", 1)
        r = request(anon, {"type": "auth", "token": "wrong", "id": 2})
        self.assertNotEqual(r.get("type"), "authed", r)
        self.assert_error(anon, {"type": "publish", "topic": topic, "data": "no", "id": 3},
                          "forbidden", 3)
        self.assertEqual(request(anon, {"type": "auth", "token": KEY, "id": 4}),
                         {"type": "authed", "id": 4})
        r = request(anon, {"type": "publish", "topic": topic, "data": "by token", "id": 5})
        self.assertEqual(set(r), {"type", "topic", "event_id", "id"}, r)
        self.assertEqual((r["type"], r["topic"], r["id"]), ("published", topic, 5))
        self.assertRegex(r["event_id"], r"^\d+-\d+$")
        self.assertEqual(sub.recv_json(), self.expected(topic, r["event_id"], "by token"))

        hdr = self.ws(self.h, headers={"Authorization": "Bearer " + KEY})
        r = request(hdr, {"type": "publish", "topic": topic, "data": "by header",
                          "event": "note", "id": "h"})
        self.assertEqual((r["type"], r["topic"], r["id"]), ("published", topic, "h"), r)
        self.assertEqual(sub.recv_json(), self.expected(topic, r["event_id"], "by header",
                                                        "note"))
        self.assertEqual([(eid, f) for eid, f in xrange(self.r, topic)][-1],
                         (r["event_id"], {"d": b"by header", "e": b"note"}))
        self.assert_error(hdr, {"type": "publish", "topic": "bad topic", "data": "x", "id": 9},
                          "bad_topic", 9)
        self.assert_error(hdr, {"type": "publish", "topic": topic, "data": "x",
                                "event": "bad event", "id": 10}, "bad_request", 10)
        self.assert_error(hdr, {"type": "publish", "topic": topic, "id": 11}, "bad_request", 11)
        self.assert_pong_next(sub, "only the published events reached the subscriber")

    def test_publish_forbidden_without_key_configured(self):
        self.start()
        ws = self.ws(self.h, headers={"Authorization": "Bearer anything"})
        self.assert_error(ws, {"type": "publish", "topic": "nokey", "data": "x", "id": 1},
                          "forbidden", 1)


if __name__ == "__main__":
    harness.main()
