"""One event larger than --client-queue-bytes, to clients that keep up.

The bound is there to cut off clients that fall behind. It used to be checked as "queued bytes
plus this event": an event larger than the bound disconnected every subscriber of its topic as
"slow", however fast they read; and a stored one did it again on each resume from before it, so
those clients could never get past it. Such events exist without any hostile client: an edge
with `--max-message-bytes` above `--client-queue-bytes` accepts them, and so did an earlier
deployment with other settings, or a direct `XADD`. Now a client is cut off when what it
already has queued passes the bound, so one event of any size reaches a client that keeps up,
live and on resume; a client that does not read is still cut off."""

import socket
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed
from wsclient import WSClient

BOUND = 65536
BIG = 300 * 1024  # payload bytes: about 4.7 times the bound


class LargeEvent(HeraldTestCase):

    def test_an_event_larger_than_the_bound_reaches_clients_that_keep_up(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--ingest", "off", "--client-queue-bytes", str(BOUND),
                                 "--max-message-bytes", str(1024 * 1024)])
        sse = self.sse(h.port, "/events/le.t")
        ws = WSClient(h.port)
        self._closers.append(ws)
        ws.send_json({"type": "subscribe", "topic": "le.t"})
        self.assertEqual(ws.recv_json()["type"], "subscribed")
        wait_live_subscribed(r, "le.t")
        time.sleep(0.3)
        first = fcall_publish(r, "le.t", "small-0")
        self.assertEqual(sse.next_event(10).data, "small-0")
        big = "b" * BIG
        bid = fcall_publish(r, "le.t", big)
        after = fcall_publish(r, "le.t", "small-1")

        e = sse.next_event(20)
        self.assertEqual((split_cursor(e.id)[0], len(e.data)), (bid, BIG), "live SSE")
        self.assertEqual(sse.next_event(10).data, "small-1")
        m = ws.recv_until(lambda m: m.get("type") == "event")[1]
        if m["data"] == "small-0":
            m = ws.recv_until(lambda m: m.get("type") == "event")[1]
        self.assertEqual((split_cursor(m["id"])[0], len(m["data"])), (bid, BIG), "live WS")

        # a resume from before it: once, in order, then on
        ep = split_cursor(e.id)[1]
        res = self.sse(h.port, "/events/le.t", headers={"Last-Event-ID": "%s_%s" % (first, ep)})
        got = [res.next_event(20) for _ in range(2)]
        self.assertEqual([(split_cursor(x.id)[0], len(x.data)) for x in got],
                         [(bid, BIG), (after, len("small-1"))], "resume over the large event")
        self.assertEqual(harness.scrape(h.port).get("herald_slow_disconnects_total"), 0.0)

    def test_a_client_that_does_not_read_is_still_cut_off(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--ingest", "off", "--client-queue-bytes", str(BOUND),
                                 "--max-message-bytes", str(1024 * 1024)])
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", h.port))
        s.sendall(b"GET /events/le.s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        self._closers.append(s)
        wait_live_subscribed(r, "le.s")
        time.sleep(0.3)
        for i in range(40):  # 40 x 300 KB, never read
            fcall_publish(r, "le.s", "x" * BIG)
        harness.wait_until(
            lambda: harness.scrape(h.port).get("herald_slow_disconnects_total", 0) >= 1,
            20 * harness.SCALE, interval=0.1, what="the stalled client cut off")
        self.assert_serving(h)


if __name__ == "__main__":
    harness.main()
