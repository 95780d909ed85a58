"""A service thread's request for a topic (its SUB) refused because the hand-off queue to the
broker thread is full (65,536 requests) is sent again by the thread's housekeeping once there
is room, and its clients, answered before, lose nothing: the topic is refilled from the time
they asked, however late the request gets through.

The queue is filled deterministically: the broker thread alone is stopped (ptrace) while one
WebSocket client subscribes to and unsubscribes from made-up topics (two requests a pair); a
fresh SSE subscriber then asks for its topic, whose request is refused, and an event is stored.
Once the broker runs again the subscriber must get that event and the next, exactly."""

import json
import time

import harness
from harness import (HeraldTestCase, fcall_publish, scrape, split_cursor, wait_live_subscribed,
                     wait_until)
from threadstop import ThreadStop
from wsclient import OP_TEXT, WSClient, encode_frame

TOPIC = "g.retried"
QUEUE = 65536  # edge/main.c: the requests to the broker thread


def drops(h):
    return scrape(h.port).get("herald_queue_drops_total", 0)


class SubRetry(HeraldTestCase):

    def test_refused_sub_is_sent_again_and_loses_nothing(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--threads", "1", "--topic-rate", "0",
                                       "--client-queue-max", "1000000",
                                       "--client-queue-bytes", "1073741824"])
        ws = WSClient(h.port)
        self._closers.append(ws)
        with ThreadStop(h.proc.pid):  # the broker thread (the process' main thread) alone
            pairs, sent = QUEUE // 2 + 100, 0
            while sent < pairs and drops(h) == 0:
                buf = b""
                for i in range(sent, min(pairs, sent + 500)):
                    for kind in ("subscribe", "unsubscribe"):
                        buf += encode_frame(OP_TEXT, json.dumps({"type": kind,
                                                                 "topic": "fill.%d" % i}).encode())
                ws.send_raw(buf)
                sent = min(pairs, sent + 500)
                ws.pump(0.01)  # read the replies as they come
            wait_until(lambda: drops(h) > 0, 30, what="the request queue full")
            c = self.sse(h.port, "/events/" + TOPIC)  # answered; its SUB is refused
            self.assertEqual(c.status, 200)
            time.sleep(0.6)  # housekeeping retries (every 250 ms) meet a full queue still
            sid = fcall_publish(r, TOPIC, "while-refused")
        wait_live_subscribed(r, TOPIC, timeout=60)
        sid2 = fcall_publish(r, TOPIC, "after")
        got = [(split_cursor(e.id)[0], e.data) for e in c.events(2, 30 * harness.SCALE)]
        self.assertEqual(got, [(sid, "while-refused"), (sid2, "after")])
        c.pump(0.3)
        self.assertEqual(c.pending(), [])
        self.assertFalse(c.closed)


if __name__ == "__main__":
    harness.main()
