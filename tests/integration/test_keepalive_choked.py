"""SSE heartbeats to a subscriber whose socket is full (a slow client).

A heartbeat goes straight to the socket (edge/ctimer.c, hb_client_send_keepalive()) only when
nothing of the client's waits; otherwise it goes through the client's queue, behind what
libwebsockets still holds. With the ring (--io-uring) a heartbeat that finds the socket full
(-EAGAIN inside the submission) is handed to libwebsockets whole. Either way a heartbeat may
never land inside an event's frame, nor an event be lost, repeated or reordered because of one.

One subscriber with a small receive buffer (SO_RCVBUF 4096, MSS 536) and --send-buffer 16384
reads in fits: a burst of events is published, then it reads nothing for 2.3 s (two heartbeat
ticks at --heartbeat 1), then reads a few kilobytes, eight times, so its socket stands full at
different places in the stream while heartbeats fall due; then it reads everything. Every
block is parsed strictly (the retry line, `id:` + `data:` events, `: hb` heartbeats whole and
only between frames); the events are exactly the published ones, in order; a heartbeat was
sent while the socket was full (one lies before the last event); the connection stays open.
Both edge variants: `--io-uring off` (send(2)) and the default.
"""

import time

import harness
from harness import HeraldTestCase, wait_live_subscribed
from test_send_paused_reader import Sub, payload, stall

EDGE_ARGS = ["--send-buffer", "16384", "--heartbeat", "1", "--client-queue-max", "100000",
             "--client-queue-bytes", str(64 << 20), "--ws-ping-interval", "0"]
CYCLES = 8
BURST = 5          # events of 3,000 bytes per cycle: about 15 KB, the socket's room and more
STALL = 2.3        # seconds without reading: two heartbeats due


class KeepaliveChoked(HeraldTestCase):

    def run_case(self, variant):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", EDGE_ARGS + variant)
        topic = "choked"
        marker = harness.fcall_publish(r, topic, "marker")
        sub = Sub(h.port, "sse", topic, marker, tune=stall, heartbeats=True)
        self._closers.append(sub.sock)
        wait_live_subscribed(r, topic)
        ids, sent = [], []
        for cycle in range(CYCLES):
            for k in range(BURST):
                p = payload(cycle * BURST + k)
                ids.append(harness.fcall_publish(r, topic, p))
                sent.append(p)
            time.sleep(STALL)
            sub.read(0.01, 2000 + 1500 * cycle)  # a fit: the socket full at another place
        self.assertTrue(sub.read_until(len(sent), 30), "%d of %d events" % (
            len(sub.events), len(sent)))
        time.sleep(1.5)   # the idle stream's own heartbeat comes after the last event
        sub.read(0.3)
        self.assertFalse(sub.closed, "the subscriber was closed")
        self.assertEqual(sub.pos, len(sub.buf), "a partial block at the end")
        got = [(harness.split_cursor(c)[0], d) for c, d, _, _ in sub.events]
        self.assertEqual(got, list(zip(ids, sent)))
        last_event = sub.events[-1][2]
        choked = [o for o in sub.heartbeats if o < last_event]
        m = harness.scrape(h.port)
        harness.log("%s: %d events, %d heartbeats (%d sent while choked, before the last "
                    "event); io_uring sends %s" % (
                        " ".join(variant) or "(default)", len(got), len(sub.heartbeats),
                        len(choked), "%d" % m["herald_io_uring_sends_total"]
                        if "herald_io_uring_sends_total" in m else "n/a"))
        self.assertGreater(len(choked), 0, "no heartbeat while the socket was full")
        self.assertGreater(len(sub.heartbeats), len(choked), "no heartbeat once idle")
        self.assertEqual(m.get("herald_slow_disconnects_total", 0.0), 0.0)

    def test_send_syscall(self):
        self.run_case(["--io-uring", "off"])

    def test_default(self):
        self.run_case([])


if __name__ == "__main__":
    harness.main()
