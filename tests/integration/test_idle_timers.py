"""Per-connection timers (edge/service.c, common/hb_wheel.h): what the 250 ms walk of every
subscription did, each connection now does on its own deadline. SSE peers that hang up or send
bytes are found through an epoll set within a tick; a heartbeat goes only to a stream that wrote
nothing for --heartbeat seconds; long-poll timeouts and WebSocket pings keep their timing."""

import json
import socket
import time

import harness
from harness import HeraldTestCase, fcall_publish, http_get, scrape, wait_live_subscribed, \
    wait_until
from hostile import assert_idle
from wsclient import WSClient, request

SSE = 'herald_connections{transport="sse"}'


class IdleTimers(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1", ["--heartbeat", "2", "--threads", "1"])

    def test_hung_up_and_talking_sse_peers_closed_within_a_second(self):
        keep = self.sse(self.h.port, "/events/keep")
        gone, talk = [], []
        for i in range(40):
            gone.append(self.sse(self.h.port, "/events/gone.%d" % (i % 4)))
        for i in range(10):
            talk.append(self.sse(self.h.port, "/events/talk"))
        wait_until(lambda: scrape(self.h.port)[SSE] == 51, 10, what="51 SSE streams")
        t0 = time.monotonic()
        for c in gone:
            c.sock.shutdown(socket.SHUT_WR)  # a FIN, nothing else: lws would never read it
        for c in talk:
            c.sock.sendall(b"x")  # an SSE client has nothing to send
        wait_until(lambda: scrape(self.h.port)[SSE] == 1, 5, what="hung-up streams closed")
        took = time.monotonic() - t0
        harness.log("50 SSE peers found gone in %.2fs" % took)
        self.assertLess(took, 1.5 * harness.SCALE)
        assert_idle(self, self.h)
        wait_live_subscribed(self.r, "keep")
        sid = fcall_publish(self.r, "keep", "still here")
        ev = keep.next_event(10)
        self.assertEqual(ev.data, "still here")
        self.assertTrue(ev.id.startswith(sid), (ev.id, sid))

    def test_heartbeat_only_when_nothing_was_written(self):
        quiet = self.sse(self.h.port, "/events/quiet")
        busy = self.sse(self.h.port, "/events/busy")
        wait_live_subscribed(self.r, "busy")
        n0 = len(busy.comments)
        end = time.monotonic() + 6
        sent = 0
        while time.monotonic() < end:  # an event every 0.5 s: never 2 s without a write
            fcall_publish(self.r, "busy", "e%d" % sent)
            sent += 1
            time.sleep(0.5)
        busy.events(sent, 10)
        quiet.wait_comments(3, 10)  # about one per 2 s on the quiet stream
        self.assertEqual([c for c in busy.comments[n0:] if c.strip() == "hb"], [],
                         "a stream that received events got heartbeats")
        hb = [c for c in quiet.comments if c.strip() == "hb"]
        self.assertGreaterEqual(len(hb), 2, quiet.comments)
        self.assertLessEqual(len(hb), 4, quiet.comments)  # 6-7 s at one per 2 s

    def test_keepalives_due_together_go_in_one_submission(self):
        """The heartbeats and pings one tick finds due are sent straight to their sockets, with
        io_uring in one submission: every idle stream and WebSocket still gets them, a pong
        keeps a WebSocket open, and none waits for a writable callback."""
        h = self.edge(self.srv, "edge-2", ["--heartbeat", "1", "--ws-ping-interval", "1",
                                           "--threads", "1"])
        streams = [self.sse(h.port, "/events/ka.%d" % (i % 3)) for i in range(20)]
        socks = [WSClient(h.port) for _ in range(20)]
        self.addCleanup(lambda: [w.sock.close() for w in socks])
        for w in socks:
            request(w, {"type": "subscribe", "topic": "ka.0"})
        m0 = scrape(h.port)
        end = time.monotonic() + 4 * harness.SCALE
        while time.monotonic() < end:  # every socket read (and pinged ones answered) in turn
            for w in socks:
                w.pump(0.01)
        for c in streams:
            c.wait_comments(3, 10)
        m1 = scrape(h.port)
        self.assertTrue(all(len(w.pings) >= 1 for w in socks), [len(w.pings) for w in socks])
        hb = sum(len([c for c in s.comments if c.strip() == "hb"]) for s in streams)
        self.assertGreaterEqual(hb, 60)
        self.assertEqual(m1['herald_connections{transport="ws"}'], 20, "a pong kept each open")
        sends = m1["herald_io_uring_sends_total"] - m0["herald_io_uring_sends_total"]
        subs = m1["herald_io_uring_submissions_total"] - m0["herald_io_uring_submissions_total"]
        harness.log("keepalives: %d heartbeats read; io_uring threads %d, %d sends in %d "
                    "submissions" % (hb, m1["herald_io_uring_threads"], sends, subs))
        if m1["herald_io_uring_threads"]:  # a kernel that refuses io_uring: send(2) each
            self.assertGreaterEqual(sends, 40)  # the streams' 3rd round at least, and pings
            self.assertLessEqual(subs * 5, sends, "keepalives due together, one submission")

    def test_long_poll_timeout_not_early_nor_late(self):
        t0 = time.monotonic()
        status, _, body = http_get(self.h.port, "/poll/lp?timeout=2", timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["events"], [])
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 2.0 + 0.6 * harness.SCALE)


if __name__ == "__main__":
    harness.main()
