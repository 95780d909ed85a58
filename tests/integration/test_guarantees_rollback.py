"""Redis restored from an older dump (a restart from a snapshot taken before the last events):
the stream keeps its epoch but loses its tail. A client resuming with a cursor past the restored
tail is told `reset` and continues from the stream's tail (PROTOCOL.md): it must not be sent
again the events it already had, up to its cursor, which the edge's own refill brings back
(checker seed 33 --net-faults: `before-start`, events older than the cursor after the reset).

The edge is cut off from Redis (a proxy of ours) after its subscriber got e-1; e-2 and e-3 are
published and saved (SAVE), e-4..e-6 published after; Redis restarts from that dump (e-1..e-3).
A client resumes at e-6 on the cut-off edge; the cut heals: the edge refills e-2, e-3 for its
topic while the client's resume is answered `reset`."""

import json
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until
from proxykit import TcpProxy

TOPIC = "rb.t"


class Rollback(HeraldTestCase):

    def test_resume_past_a_rolled_back_tail_gets_no_old_events_again(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = TcpProxy(srv.port)
        h = self.edge_behind(proxy, args=["--ingest", "off", "--heartbeat", "1"])
        a = self.sse(h.port, "/events/" + TOPIC)  # keeps the topic subscribed on the edge
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        ids = [fcall_publish(r, TOPIC, "e-1")]
        self.assertEqual(a.next_event(10).data, "e-1")
        epoch = r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()

        proxy.cut()
        wait_until(lambda: h.readyz() == 503, 10 * harness.SCALE, interval=0.1,
                   what="/readyz 503 once the edge is cut off")
        ids += [fcall_publish(r, TOPIC, "e-%d" % i) for i in (2, 3)]
        r.cmd("SAVE")  # the dump Redis comes back from: e-1..e-3
        ids += [fcall_publish(r, TOPIC, "e-%d" % i) for i in (4, 5, 6)]
        r.close()
        srv.stop()  # --save "": nothing more is written
        srv.start()
        r2 = self.client(srv)
        self.assertEqual(len(r2.cmd("XRANGE", harness.stream_key(TOPIC), "-", "+")), 3)

        b = self.sse(h.port, "/events/" + TOPIC, {"Last-Event-ID": "%s_%s" % (ids[5], epoch)})
        time.sleep(0.3)  # its resume reaches the edge's broker before the heal
        proxy.heal()
        wait_until(lambda: h.readyz() == 200, 30 * harness.SCALE, interval=0.1,
                   what="/readyz 200 after the cut heals")
        wait_live_subscribed(r2, TOPIC)
        time.sleep(0.5)
        sid = fcall_publish(r2, TOPIC, "e-7")
        e = b.next_event(20 * harness.SCALE)
        self.assertEqual((e.event, json.loads(e.data)), ("herald.gap",
                                                         {"topic": TOPIC, "reason": "reset"}))
        e = b.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "e-7"),
                         "after the reset, the new event, not one the client had (up to e-6)")
        # the subscriber that stayed gets what it missed of the restored stream, then e-7
        got = [a.next_event(10).data for _ in range(3)]
        self.assertEqual(got, ["e-2", "e-3", "e-7"])


if __name__ == "__main__":
    harness.main()
