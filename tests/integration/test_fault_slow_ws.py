"""A stalled WebSocket reader is closed with 1008, the others are served, and it resumes exactly.

One WebSocket client subscribes, reads its first event, then stops reading (small SO_RCVBUF and
MSS, a capped --send-buffer on the edge, so the kernel holds little for it) while FAST_CLIENTS
others on the same topic read a steady stream. The others get every event, in order, and stay
open; the stalled one is cut off once its queue passes --client-queue-max (the slow-disconnect
counter says so). When it reads again, what it gets is in order and ends in a close frame with
code 1008; it then resumes with `since` on a new connection and gets exactly what it missed.
"""

import json
import socket
import time

import harness
from harness import HeraldTestCase, split_cursor, wait_live_subscribed
from wsclient import WSClient

FAST_CLIENTS = 20
EVENTS = 600
PAYLOAD = 1000   # bytes per event
RATE = 300       # events per second
QUEUE_MAX = 64
TOPIC = "fault.slowws"


def events_of(msgs):
    """(stream id, data) of the event messages among msgs."""
    return [(split_cursor(m["id"])[0], m["data"]) for m in msgs
            if isinstance(m, dict) and m.get("type") == "event"]


class SlowWebSocket(HeraldTestCase):

    def test_stalled_ws_reader_is_closed_1008_and_resumes(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--client-queue-max", str(QUEUE_MAX), "--history-batch",
                                      str(QUEUE_MAX // 2), "--send-buffer", "16384"])
        fast = []
        for _ in range(FAST_CLIENTS):
            ws = WSClient(h.port)
            self._closers.append(ws.sock)
            ws.send_json({"type": "subscribe", "topic": TOPIC})
            self.assertEqual(ws.recv_json()["type"], "subscribed")
            fast.append(ws)

        def stall(sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        slow = WSClient(h.port, tune=stall)
        self._closers.append(slow.sock)
        slow.send_json({"type": "subscribe", "topic": TOPIC})
        self.assertEqual(slow.recv_json()["type"], "subscribed")
        wait_live_subscribed(r, TOPIC)

        payloads = ["ev-%04d-" % i + "x" * (PAYLOAD - 8) for i in range(EVENTS)]
        ids = [harness.fcall_publish(r, TOPIC, payloads[0])]
        first = slow.recv_json()
        self.assertEqual((first["type"], first["data"]), ("event", payloads[0]))
        # From here on the stalled client reads nothing until it was cut off.

        pub_err = []
        th = harness.paced_publisher(srv.port, TOPIC, payloads[1:], RATE, ids, pub_err)
        got = [[] for _ in fast]
        end = harness.deadline(60)
        while time.monotonic() < end:
            for i, ws in enumerate(fast):
                ws.pump(0.002)
                while ws._messages:
                    op, data = ws._messages.pop(0)
                    got[i].append(data)
            if not th.is_alive() and all(len(g) >= EVENTS for g in got):
                break
            if any(ws.closed for ws in fast):
                break
        th.join(5)
        self.assertEqual(pub_err, [])
        want = list(zip(ids, payloads))
        for i, (ws, g) in enumerate(zip(fast, got)):
            self.assertFalse(ws.closed, "fast client %d was closed (code %r, reason %r)" % (
                i, ws.close_code, ws.close_reason))
            self.assertEqual(events_of([json.loads(d) for d in g]), want,
                             "fast client %d: every event, in order" % i)

        # The stalled client was cut off as slow; read what it can still get, then the close.
        harness.wait_until(lambda: harness.scrape(h.port).get(
            "herald_slow_disconnects_total") == 1.0, 20, what="the slow disconnect")
        code = slow.wait_closed(timeout=20)
        self.assertEqual(code, 1008, "close reason %r" % slow.close_reason)
        self.assertIn("slow consumer", slow.close_reason or "")
        seen = events_of([first] + slow.pending())
        self.assertEqual(seen, want[:len(seen)], "what the stalled client got is in order")
        self.assertLess(len(seen), EVENTS, "it was cut off before the end")
        m = harness.scrape(h.port)
        self.assertEqual(m.get("herald_slow_disconnects_total"), 1.0, m)
        self.assertEqual(m.get("herald_queue_drops_total", 0.0), 0.0, m)

        # Resume with the last id it had: exactly the missing events, then nothing more.
        again = WSClient(h.port)
        self._closers.append(again.sock)
        last = [m for m in [first] + slow.pending() if m.get("type") == "event"][-1]["id"]
        again.send_json({"type": "subscribe", "topic": TOPIC, "since": last})
        self.assertEqual(again.recv_json()["type"], "subscribed")
        missing = want[len(seen):]
        replay = []
        end = harness.deadline(20)
        while len(replay) < len(missing) and time.monotonic() < end:
            replay += events_of([again.recv_json(timeout=20)])
        self.assertEqual(replay, missing)
        again.pump(0.5)
        self.assertEqual(events_of(again.pending()), [], "extra events after the resume")
        harness.log("slow ws: %d fast clients got %d events each in order; the stalled one was "
                    "closed 1008 after %d events and resumed %d" % (
                        FAST_CLIENTS, EVENTS, len(seen), len(replay)))


if __name__ == "__main__":
    harness.main()
