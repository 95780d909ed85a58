"""An event the Redis thread drops for a service thread whose queue is full
(--service-queue-max) must not be lost in silence until the topic's next event (which, on a
quiet topic, may come hours later): the service thread is told at once (a sync message with the
topic's sequence), and that topic's subscriptions read on from history in place. No client is
closed for it: closing them (1011, as the edge did before) sent every subscriber of a hot topic
reconnecting at once after a burst.

One service thread, a queue of 64 messages, 40 SSE subscribers on a hot topic (the service
thread is far slower than the Redis thread) and a burst of 1500 pipelined publishes on it, with
one event of each of 4 quiet topics in the middle: each is dropped when it finds the queue full
(about half the time), and without the sync its subscriber waits for an event that never comes
(on a binary without it the test failed 5 of 5 runs). A client closed all the same reconnects
with its last id, as EventSource does, so that the order checks still say what it got; all must
get every event, in order, once each, and none may have been closed."""

import time

import harness
from harness import HeraldTestCase, SSEClient, split_cursor, wait_live_subscribed

TOPIC = "hd.t"
COLD = "hd.cold"
N = 1500
COLD = 4
CLIENTS = 40


class HandoffDrop(HeraldTestCase):

    def test_events_dropped_at_a_full_service_queue_are_read_on_in_place(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--ingest", "off", "--threads", "1",
                                      "--service-queue-max", "64", "--client-queue-max", "100000", "--history-max", "10000",
                                      "--client-queue-bytes", "1073741824"])
        clients = [self.sse(h.port, "/events/" + TOPIC) for _ in range(CLIENTS)]
        # quiet topics, one subscriber each: one event before, one in the burst, then nothing
        colds = {"hd.cold%d" % k: self.sse(h.port, "/events/hd.cold%d" % k) for k in range(COLD)}
        for t in [TOPIC] + list(colds):
            wait_live_subscribed(r, t)
        time.sleep(0.5)
        last = {}
        for t, c in colds.items():
            harness.fcall_publish(r, t, t + "-0")
            last[t] = c.next_event(10).id
        payload = "p" * 512
        # each quiet topic's next event goes in the middle of a burst, where the queue is full
        # most of the time (the service thread pops it whole, then takes a while); a burst that
        # happened not to overflow it (a slower Redis thread: ASan) is followed by another
        ids, want, drops = [], {t: [] for t in colds}, 0
        for burst in range(4):
            cmds = [["FCALL", "herald_publish", "1", TOPIC, "%d-%s" % (len(ids) + i, payload)]
                    for i in range(N)]
            at = {}
            for k, t in enumerate(colds):
                at[t] = (k + 1) * N // (COLD + 1) + k
                cmds.insert(at[t], ["FCALL", "herald_publish", "1", t, "%s-%d" % (t, burst + 1)])
            replies = [x.decode() if isinstance(x, bytes) else x for x in r.pipeline(cmds)]
            for t, i in at.items():
                want[t].append((replies[i], "%s-%d" % (t, burst + 1)))
            ids += [x for i, x in enumerate(replies) if i not in at.values()]
            drops = harness.scrape(h.port).get("herald_queue_drops_total", 0)
            if drops > 0:
                break
        self.assertGreater(drops, 0, "the bursts must overflow the service queue")

        dropped, reconnects = 0, 0
        for t in colds:
            c, got_t, closed = colds[t], [], False
            end = time.monotonic() + 15 * harness.SCALE
            while len(got_t) < len(want[t]) and time.monotonic() < end:
                c.pump(0.2)
                while c.pending():
                    e = c._events.pop(0)
                    got_t.append((split_cursor(e.id)[0], e.data))
                    last[t] = e.id
                if len(got_t) < len(want[t]) and c.closed:  # as EventSource: from its last id
                    closed = True
                    c.close()
                    c = SSEClient(h.port, "/events/" + t, {"Last-Event-ID": last[t]})
                    self._closers.append(c)
            self.assertEqual(got_t, want[t], "%s: an event dropped at the full queue and never "
                             "noticed (no later event to show it)" % t)
            dropped += closed

        got = [[] for _ in clients]
        end = time.monotonic() + 60 * harness.SCALE
        while time.monotonic() < end and any(len(g) < len(ids) for g in got):
            for i, c in enumerate(clients):
                if len(got[i]) >= len(ids):
                    continue
                c.pump(0.05)
                for e in c.pending():
                    self.assertIsNotNone(e.id, "client %d: %s %r" % (i, e.event, e.data))
                    got[i].append(split_cursor(e.id)[0])
                c._events.clear()
                if c.closed:  # as EventSource: again, from the last id it got
                    c.close()
                    last = got[i][-1] if got[i] else None
                    hdr = {"Last-Event-ID": last} if last else {}
                    clients[i] = c = SSEClient(h.port, "/events/" + TOPIC, hdr)
                    self._closers.append(c)
                    reconnects += 1
        for i, g in enumerate(got):
            self.assertEqual(len(g), len(set(g)), "client %d: an event twice" % i)
            self.assertEqual(g, ids[:len(g)], "client %d: out of order or with a hole" % i)
            self.assertEqual(len(g), len(ids), "client %d got %d of %d events" % (
                i, len(g), len(ids)))
        m = harness.scrape(h.port)
        self.assertEqual((reconnects, dropped), (0, 0), "clients closed for a dropped event "
                         "(hot topic, quiet topics): they should read on in place")
        self.assertGreater(m.get("herald_lost_catchups_total", 0), 0,
                           "no subscription read on after a dropped event")
        harness.log("hand-off drops: %d; read on in place: %d; every client got all %d events, "
                    "none closed" % (drops, m.get("herald_lost_catchups_total", 0), len(ids)))


if __name__ == "__main__":
    harness.main()
