"""Logs: every line the edge writes is one JSON object with ts, level, node, mod and msg; at
--log-level debug each SSE, WebSocket and long-poll connection gets one "connection open" and
one "connection closed" line (transport, peer, thread, conn; on close reason, duration, events
and bytes); no published payload ever reaches a log line, even from malformed input; and a
flood of one warning cause is written as a few lines that count what they suppressed."""

import json
import os
import re
import struct
import time

import harness
from harness import HeraldTestCase, split_cursor, wait_live_subscribed, wait_until
from wsclient import OP_CLOSE, WSClient, request

KEY = "logs-publish-key"
FIXED = ("ts", "level", "node", "mod", "msg")


def log_lines(h):
    """Every line of the edge's log, parsed; fails on a line that is not a JSON object."""
    with open(h.log_path, "rb") as f:
        data = f.read()
    out = []
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise AssertionError("log line %d is not JSON (%s): %r" % (n, exc, raw[:300]))
        if not isinstance(obj, dict):
            raise AssertionError("log line %d is not an object: %r" % (n, raw[:300]))
        out.append((raw, obj))
    return out


class Logs(HeraldTestCase):

    def publish(self, h, topic, payload):
        status, _, body = harness.http_get(h.port, "/publish/" + topic, method="POST",
                                           body=payload.encode(),
                                           headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(status, 200, body)
        return json.loads(body)["id"]

    def conn_lines(self, h, msg):
        return [o for _, o in log_lines(h) if o.get("msg") == msg and o.get("mod") == "service"]

    def test_connection_open_and_close_lines(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "logs-debug", ["--log-level", "debug", "--publish-key", KEY,
                                          "--threads", "2"])
        sse = self.sse(h.port, "/events/lg")
        sse.wait_retry()
        ws = WSClient(h.port)
        self._closers.append(ws)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": "lg", "id": 1}),
                         {"type": "subscribed", "topic": "lg", "id": 1})
        wait_live_subscribed(r, "lg", 1)
        ids = [self.publish(h, "lg", "event %d" % i) for i in range(3)]
        got = [split_cursor(e.id)[0] for e in sse.events(3)]
        self.assertEqual(got, ids)
        for _ in ids:
            ws.recv_until(lambda m: m.get("type") == "event")
        status, _, body = harness.http_get(h.port, "/poll/lg?timeout=0")
        self.assertEqual(status, 200, body)
        sse_bytes = len(sse.raw)
        sse.close()
        ws.send_frame(OP_CLOSE, struct.pack("!H", 1000))  # the client ends the WebSocket
        ws.close_sent = True
        self.assertTrue(ws.wait_tcp_closed())

        # two open and two close lines for the streams, one pair for the long-poll
        def lines_for(transport):
            opens = [o for o in self.conn_lines(h, "connection open")
                     if o.get("transport") == transport]
            closes = [o for o in self.conn_lines(h, "connection closed")
                      if o.get("transport") == transport]
            return opens, closes

        wait_until(lambda: all(len(lines_for(t)[1]) >= 1 for t in ("sse", "ws", "poll")),
                   what="close lines of the sse, ws and poll connections")
        for transport in ("sse", "ws", "poll"):
            opens, closes = lines_for(transport)
            self.assertEqual(len(opens), 1, (transport, opens))
            self.assertEqual(len(closes), 1, (transport, closes))
            o, c = opens[0], closes[0]
            for line in (o, c):
                self.assertEqual(line["level"], "debug")
                self.assertEqual(line["node"], "logs-debug")
                self.assertEqual(line["peer"], "127.0.0.1")
                self.assertIn(line["thread"], (0, 1))
                self.assertIsInstance(line["conn"], int)
                self.assertIs(line["tls"], False)
            self.assertEqual((o["thread"], o["conn"]), (c["thread"], c["conn"]),
                             "open and close lines name the same connection")
            self.assertIsInstance(c["reason"], str)
            self.assertGreaterEqual(c["duration_ms"], 0)
            self.assertGreater(c["bytes_out"], 0)
            self.assertGreater(c["bytes_in"], 0)
            harness.log("%s close line: %s" % (transport, json.dumps(c)))
        _, (sse_close,) = lines_for("sse")
        _, (ws_close,) = lines_for("ws")
        self.assertEqual(sse_close["events"], 3)
        self.assertEqual(ws_close["events"], 3)
        self.assertGreaterEqual(sse_close["bytes_out"], sse_bytes)  # body plus headers
        self.assertEqual(ws_close["reason"], "peer sent close")
        self.assertEqual(sse_close["reason"], "peer closed")

    def test_no_payload_in_logs_at_info_level(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "logs-info", ["--log-level", "info", "--publish-key", KEY])
        wait_until(lambda: harness.lease_holder(r) == "logs-info", what="ingest leader")
        secret = "PAYLOAD-%s" % os.urandom(6).hex()
        sse = self.sse(h.port, "/events/quiet")
        sse.wait_retry()
        ws = WSClient(h.port, headers={"Authorization": "Bearer " + KEY})
        self._closers.append(ws)
        request(ws, {"type": "subscribe", "topic": "quiet", "id": 1})
        wait_live_subscribed(r, "quiet", 1)
        # stored and delivered: HTTP publish, raw PUBLISH, WebSocket publish
        self.publish(h, "quiet", secret + "-http")
        r.publish("quiet", secret + "-raw")
        ws.send_json({"type": "publish", "topic": "quiet", "data": secret + "-ws", "id": 2})
        got = [e.data for e in sse.events(3)]
        self.assertEqual(sorted(got), sorted([secret + "-http", secret + "-raw", secret + "-ws"]))
        # refused or malformed: the payload must not be echoed into a log line either
        r.publish("bad topic!", secret + "-badtopic")
        r.publish("quiet", secret * 5000)  # larger than --max-message-bytes
        ws.send_text('{"type":"publish","topic":"quiet","data":"%s-badjson' % secret)
        ws.send_json({"type": secret + "-type", "topic": "quiet"})
        harness.raw_request(h.port, ("POST /publish/bad%%20topic HTTP/1.1\r\nHost: x\r\n"
                                     "Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
                                     % (KEY, len(secret), secret)).encode())
        harness.raw_request(h.port, ("GET /events/%s%%00 HTTP/1.1\r\n\r\n" % secret).encode())
        harness.raw_request(h.port, b"\x16\x03" + secret.encode() + b"\r\n\r\n")
        def ingest_rejected():
            status, _, body = harness.http_get(h.port, "/metrics")
            self.assertEqual(status, 200)
            return int(re.search(rb"herald_ingest_rejected_total (\d+)", body).group(1))

        # both refused raw messages went through the ingest path (and its log) before the check
        wait_until(lambda: ingest_rejected() >= 2, what="2 raw messages refused")
        self.assertTrue(h.alive())
        h.stop()
        lines = log_lines(h)
        self.assertGreater(len(lines), 3)
        for raw, obj in lines:
            for k in FIXED:
                self.assertIn(k, obj, raw)
            self.assertIn(obj["level"], ("info", "warn", "error"), raw)
            self.assertNotIn(secret.encode(), raw, "a payload reached the log: %r" % raw[:300])
        # the refusals themselves were logged, without their payload
        self.assertTrue(any(o.get("msg", "").startswith("raw message ignored") for _, o in lines),
                        [o.get("msg") for _, o in lines])

    def test_a_flood_of_one_warning_is_rate_limited(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "logs-flood")
        wait_until(lambda: int(r.cmd("PUBSUB", "NUMPAT")) >= 1, what="raw ingest listening")
        n = 500
        r.pipeline([("PUBLISH", "no spaces allowed %d" % i, "x") for i in range(n)])
        msg = "raw message ignored: bad topic name or payload too large"

        def flood_lines():
            return [o for _, o in log_lines(h) if o.get("msg") == msg]

        # the count of what was suppressed comes with the next line of the same cause, which
        # the limiter lets through at most once a second: keep the cause coming until it does
        extra = 0
        end = harness.deadline(20)
        while not any(o.get("suppressed") for o in flood_lines()):
            self.assertLess(time.monotonic(), end, "no line with a suppressed count:\n%s" % h.log())
            r.publish("still no spaces", "x")
            extra += 1
            time.sleep(0.1)
        lines = flood_lines()
        for o in lines:
            self.assertEqual(o["level"], "warn")
        harness.log("%d+%d bad raw messages -> %d lines, suppressed %s" % (
            n, extra, len(lines), [o.get("suppressed") for o in lines]))
        self.assertLess(len(lines), n // 10, "the flood was not rate limited")
        # every message of the flood is accounted for: written or counted as suppressed
        self.assertGreaterEqual(len(lines) + sum(o.get("suppressed", 0) for o in lines), n)
        self.assertLessEqual(len(lines) + sum(o.get("suppressed", 0) for o in lines), n + extra)
        self.assertTrue(h.alive())


if __name__ == "__main__":
    harness.main()
