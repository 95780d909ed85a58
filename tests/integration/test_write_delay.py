"""--write-delay-ms (opt-in write coalescing for hot topics): with a delay D, a subscriber's
events are written at most once per D, so a paced burst reaches an SSE or WebSocket subscriber
complete and in order in far fewer socket reads than events, none later than D (plus a generous
slack for a loaded machine). The first event after a quiet spell is not held. The per-client
queue bound still cuts a subscriber whose held queue outgrows it. Long-poll is never held. With
D = 0 (the default) nothing is held."""

import time

import harness
from harness import HeraldTestCase, fcall_publish, scrape, wait_live_subscribed
import test_poll
from test_ws_protocol import WSTestCase

D_MS = 200
N = 50           # events of the burst
RATE = 100.0     # events per second: ~0.5 s of burst, 20 events per D
SLACK_S = 2.0    # on top of D for a write: a loaded 2-core machine, never a tight bound


def delayed(port):
    return scrape(port).get("herald_writes_delayed_total")


def start_publisher(r_port, topic, n, rate, errors):
    """Publishes n events `rate` per second on its own connection, each payload
    'i:<index>:<monotonic publish time>' (made as it is published); returns the thread."""
    return harness.paced_publisher(r_port, topic,
                                   ("i:%d:%.6f" % (i, time.monotonic()) for i in range(n)),
                                   rate, [], errors)


def count_reads(obj, name):
    """Wraps obj's socket-read method `name`: returns the list that gets (time, bytes) of every
    non-empty read from now on."""
    reads = []
    inner = getattr(obj, name)

    def wrapped(end):
        chunk = inner(end)
        if chunk:
            reads.append((time.monotonic(), len(chunk)))
        return chunk
    setattr(obj, name, wrapped)
    return reads


class Checks:
    """Assertions shared by the SSE and WebSocket cases."""

    def check_burst(self, payloads, recv_times, reads, d_ms):
        idx = [int(p.split(":")[1]) for p in payloads]
        self.assertEqual(idx, list(range(N)), "events lost, duplicated or reordered")
        pub = [float(p.split(":")[2]) for p in payloads]
        late = max(rt - pt for rt, pt in zip(recv_times, pub))
        self.assertLess(late, (d_ms / 1000.0 + SLACK_S) * harness.SCALE,
                        "an event waited %.3f s with --write-delay-ms %d" % (late, d_ms))
        harness.log("--write-delay-ms %d: %d events in %d reads, latest %.0f ms after its "
                    "publish" % (d_ms, N, len(reads), late * 1000))
        return pub[-1] - pub[0]


class SSEWriteDelay(HeraldTestCase, Checks):

    def run_burst(self, d_ms, topic):
        srv = self.redis()
        self.r = self.client(srv)
        self.h = self.edge(srv, "edge-1", ["--write-delay-ms", str(d_ms),
                                           "--heartbeat", "3600"])
        c = self.sse(self.h.port, "/events/" + topic)
        self.assertEqual(c.status, 200)
        c.wait_retry()
        wait_live_subscribed(self.r, topic)
        reads = count_reads(c, "_recv")
        errors = []
        th = start_publisher(srv.port, topic, N, RATE, errors)
        payloads, recv_times = [], []
        for _ in range(N):
            ev = c.next_event(timeout=10.0)
            payloads.append(ev.data)
            recv_times.append(time.monotonic())
        th.join(30)
        self.assertEqual(errors, [])
        span = self.check_burst(payloads, recv_times, reads, d_ms)
        return c, reads, span

    def test_burst_coalesced_complete_in_order(self):
        c, reads, span = self.run_burst(D_MS, "hot.sse")
        # one write per D (and the first at once); a read may split a write or be late and
        # merge two, so the bound is loose, but far below one read per event
        bound = min(N // 2, int(span / (D_MS / 1000.0) * 1.5) + 4)
        self.assertLessEqual(len(reads), bound,
                             "%d reads for %d events over %.2f s" % (len(reads), N, span))
        self.assertGreater(delayed(self.h.port), 0)
        # after a quiet spell longer than D, one event goes out at once: not a delayed write
        before = delayed(self.h.port)
        time.sleep(2 * D_MS / 1000.0)  # the quiet spell under test, not synchronisation
        self.r.cmd("FCALL", "herald_publish", 1, "hot.sse", "i:%d:0" % N)
        self.assertEqual(c.next_event().data, "i:%d:0" % N)
        self.assertEqual(delayed(self.h.port), before)
        self.assertEqual(c.pending(), [])

    def test_zero_delay_holds_nothing(self):
        c, reads, span = self.run_burst(0, "cold.sse")
        self.assertEqual(delayed(self.h.port), 0)
        self.assertEqual(c.pending(), [])

    def test_a_held_client_at_its_queue_bound_is_written_not_cut(self):
        """A delay long next to the queue bound: the held queue reaches --client-queue-max
        before its write is due. The client reads, so it is written then (the bound is on what
        its socket did not take, never on what the edge held back), not cut off as slow, and
        gets every event once, in order, long before the 60 delays of 1 s would allow."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--write-delay-ms", "1000", "--client-queue-max", "16",
                                      "--heartbeat", "3600"])
        c = self.sse(h.port, "/events/cut")
        c.wait_retry()
        wait_live_subscribed(r, "cut")
        r.cmd("FCALL", "herald_publish", 1, "cut", "first")
        self.assertEqual(c.next_event().data, "first")  # its release starts the delay
        errors = []
        th = start_publisher(srv.port, "cut", 60, RATE, errors)
        got = [int(c.next_event(20).data.split(":")[1]) for _ in range(60)]
        th.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(got, list(range(60)), "every event once, in order")
        self.assertEqual(scrape(h.port).get("herald_slow_disconnects_total"), 0)


class WSWriteDelay(WSTestCase, Checks):

    def run_burst(self, d_ms, topic):
        self.start(["--write-delay-ms", str(d_ms)])
        ws = self.ws(self.h)
        self.subscribe(ws, topic, rid=1)
        wait_live_subscribed(self.r, topic)
        reads = count_reads(ws, "_recv_some")
        errors = []
        th = start_publisher(self.srv.port, topic, N, RATE, errors)
        payloads, recv_times = [], []
        for _ in range(N):
            m = ws.recv_json(timeout=10.0)
            self.assertEqual(m["type"], "event", m)
            self.assertEqual(m["topic"], topic, m)
            payloads.append(m["data"])
            recv_times.append(time.monotonic())
        th.join(30)
        self.assertEqual(errors, [])
        span = self.check_burst(payloads, recv_times, reads, d_ms)
        return ws, reads, span

    def test_burst_coalesced_complete_in_order(self):
        ws, reads, span = self.run_burst(D_MS, "hot.ws")
        bound = min(N // 2, int(span / (D_MS / 1000.0) * 1.5) + 4)
        self.assertLessEqual(len(reads), bound,
                             "%d reads for %d events over %.2f s" % (len(reads), N, span))
        self.assertGreater(delayed(self.h.port), 0)
        # replies are not held behind events: a ping is answered, and nothing else is pending
        self.assert_pong_next(ws, "after the delayed burst")

    def test_zero_delay_holds_nothing(self):
        ws, reads, span = self.run_burst(0, "cold.ws")
        self.assertEqual(delayed(self.h.port), 0)
        self.assert_pong_next(ws, "after the burst")


class PollWriteDelay(test_poll.Poll):
    """Long-poll is never held: with a delay far longer than the polls, consecutive polls that
    each wait for the next event get it, and nothing is counted as a delayed write."""

    def test_long_poll_unaffected(self):
        self.start(["--write-delay-ms", "1000"])
        topic = "poll.delay"
        since = self.cursor(topic, fcall_publish(self.r, topic, "before"))
        got = []
        for i in range(5):
            t, out = self.background_poll(topic, since, 30)
            wait_live_subscribed(self.r, topic)
            sid = fcall_publish(self.r, topic, "p-%d" % i)
            obj = self.finish(t, out)
            self.assertEqual(obj, {"events": [self.ev(topic, sid, "p-%d" % i)],
                                   "next": self.cursor(topic, sid)})
            got.append(obj["events"][0]["data"])
            since = obj["next"]
        self.assertEqual(got, ["p-%d" % i for i in range(5)])
        self.assertEqual(delayed(self.h.port), 0)


for _name in [n for n in dir(test_poll.Poll) if n.startswith("test_")]:
    setattr(PollWriteDelay, _name, None)  # test_poll's own tests run there, not again here


if __name__ == "__main__":
    harness.main()
