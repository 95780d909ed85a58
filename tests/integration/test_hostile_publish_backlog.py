"""Publishers that do not wait for answers while Redis is slow. Each publish waits for Redis in
the edge (hiredis' output buffer, a pending answer): nothing bounded how many, so one WebSocket
client sending publishes without waiting while Redis was stopped grew the edge by the whole of
what it sent (8,000 x 60 KiB: 8 -> 480 MiB).

Now a WebSocket connection has at most 16 publishes waiting: its input is not read until an
answer comes, so the rest waits in its socket (and the client's), and every publish is still
stored, once and in order, when Redis answers. And all publishes waiting for Redis together
are bounded in bytes (--publish-backlog-bytes): beyond, a publish is answered 503 /
`unavailable` at once, counted herald_rejected_total{reason="publish_backlog"}."""

import json
import os
import signal
import socket
import threading
import time

import harness
from harness import HeraldTestCase, http_get, scrape, wait_until, xrange
from wsclient import OP_TEXT, WSClient, encode_frame

KEY = "backlog-key"
TOPIC = "backlog"
SIZE = 60 * 1024


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class PublishBacklog(HeraldTestCase):

    def test_a_connection_that_does_not_wait_is_paced(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--publish-key", KEY])
        ws = WSClient(h.port, headers={"Authorization": "Bearer " + KEY})
        self._closers.append(ws)
        n = 400  # 24 MiB
        frames = [encode_frame(OP_TEXT, json.dumps(
            {"type": "publish", "topic": TOPIC, "data": "%05d" % i + "a" * (SIZE - 5),
             "id": i}).encode()) for i in range(n)]
        before = rss_kib(h.proc.pid)
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            ws.sock.setblocking(False)
            sent, i, off = 0, 0, 0
            end = time.monotonic() + 3 * harness.SCALE
            while i < n and time.monotonic() < end:
                try:
                    k = ws.sock.send(frames[i][off:])
                except BlockingIOError:
                    time.sleep(0.02)
                    continue
                sent += k
                off += k
                if off == len(frames[i]):
                    i, off = i + 1, 0
            grown = rss_kib(h.proc.pid) - before
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        total = sum(len(f) for f in frames)
        self.assertLess(sent, total // 2,
                        "the edge read on though its publishes waited: %d of %d bytes taken"
                        % (sent, total))
        self.assertLess(grown, 12 * 1024, "the edge grew by %d KiB" % grown)
        # Redis answers: the rest goes, every publish is answered and stored once, in order
        ws.sock.setblocking(True)
        rest = frames[i][off:] + b"".join(frames[i + 1:])
        sender = threading.Thread(target=ws.sock.sendall, args=(rest,), daemon=True)
        sender.start()
        got = []
        while len(got) < n:
            msg = ws.recv_json(20 * harness.SCALE)
            self.assertEqual(msg.get("type"), "published", msg)
            got.append(msg["id"])
        sender.join(10)
        self.assertEqual(got, list(range(n)))
        stored = [d["d"][:5].decode() for _, d in xrange(r, TOPIC)]
        self.assertEqual(stored, ["%05d" % k for k in range(n)])
        self.assert_serving(h)

    def test_a_paused_publisher_is_not_expired_for_its_unread_pongs(self):
        """The edge stops reading a WebSocket with 16 publishes waiting; its pongs then wait
        unread in the socket. A stall longer than twice the ping interval must not close it as
        silent (it was closed 1006 with its 16 publishes unanswered, and stored later: a
        reconnect-and-resend stored them twice)."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--publish-key", KEY, "--ws-ping-interval", "1",
                                 "--redis-timeout-ms", "60000"])
        ws = WSClient(h.port, headers={"Authorization": "Bearer " + KEY})
        self._closers.append(ws)
        n = 20
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            for i in range(n):
                ws.send_json({"type": "publish", "topic": "paused", "data": "p%d" % i, "id": i})
            time.sleep(4 * harness.SCALE)  # 4 ping intervals, the edge not reading
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        got = []
        while len(got) < n:
            msg = ws.recv_json(20 * harness.SCALE)
            self.assertEqual(msg.get("type"), "published", msg)
            got.append(msg["id"])
        self.assertEqual(got, list(range(n)))
        self.assertFalse(ws.closed, "closed %r" % ws.close_code)
        self.assertEqual([d["d"].decode() for _, d in xrange(r, "paused")],
                         ["p%d" % i for i in range(n)])
        # and it is still pinged (and answers) once read again
        ws.wait_ping(5 * harness.SCALE)

    def test_publishes_past_the_backlog_bound_are_refused_at_once(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--publish-key", KEY, "--publish-backlog-bytes", "65536"])
        results = {}

        def publish(k):
            results[k] = http_get(h.port, "/publish/" + TOPIC, method="POST",
                                  body=b"%d" % k + b"p" * (30000 - 1),
                                  headers={"Authorization": "Bearer " + KEY},
                                  timeout=30 * harness.SCALE)[:3:2]

        srv.proc.send_signal(signal.SIGSTOP)
        try:
            waiting = [threading.Thread(target=publish, args=(k,), daemon=True) for k in (1, 2)]
            for t in waiting:
                t.start()
            time.sleep(0.5 * harness.SCALE)  # both are sent to Redis
            publish(3)  # 90,000 bytes would wait: answered now, Redis still stopped
            self.assertEqual(results[3][0], 503, results[3])
            self.assertIn(b"too many publishes wait for Redis", results[3][1])
            self.assertEqual(scrape(h.port).get('herald_rejected_total{reason="publish_backlog"}'),
                             1)
            self.assertEqual(sorted(results), [3], "the first two wait for Redis")
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        for t in waiting:
            t.join(20 * harness.SCALE)
        self.assertEqual([results[k][0] for k in (1, 2)], [200, 200], results)
        self.assertEqual(sorted(d["d"][:1] for _, d in xrange(r, TOPIC)), [b"1", b"2"])
        # the backlog is given back with the answers: publishes go again
        self.assertEqual(http_get(h.port, "/publish/" + TOPIC, method="POST", body=b"4",
                                  headers={"Authorization": "Bearer " + KEY})[0], 200)
        self.assert_serving(h)


if __name__ == "__main__":
    harness.main()
