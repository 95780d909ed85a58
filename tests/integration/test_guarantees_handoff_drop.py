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

import os
import time

import harness
from harness import HeraldTestCase, SSEClient, split_cursor, wait_live_subscribed, wait_until
from threadstop import ThreadStop

TOPIC = "hd.t"
COLD = "hd.cold"
N = 1500
COLD = 8
CLIENTS = 40


class HandoffDrop(HeraldTestCase):

    def test_events_dropped_at_a_full_service_queue_are_read_on_in_place(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--ingest", "off", "--threads", "1",
                                      "--service-queue-max", "64", "--client-queue-max", "100000", "--history-max", "10000",
                                      "--client-queue-bytes", "1073741824"])
        clients = [self.sse(h.port, "/events/" + TOPIC) for _ in range(CLIENTS)]
        # quiet topics, one subscriber each: one event before (every other one: none, so that
        # the first its thread would get may be the one dropped), one in the burst, then nothing
        colds = {"hd.cold%d" % k: self.sse(h.port, "/events/hd.cold%d" % k) for k in range(COLD)}
        for t in [TOPIC] + list(colds):
            wait_live_subscribed(r, t)
        time.sleep(0.5)
        last = {}
        for k, (t, c) in enumerate(colds.items()):
            if k % 2:
                continue
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
                    c = SSEClient(h.port, "/events/" + t,
                                  {"Last-Event-ID": last[t]} if last.get(t) else {})
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

    def test_the_first_event_a_thread_would_get_dropped(self):
        """A topic whose subscriber has had no event yet: its thread has no sequence of the
        topic to compare with, so the broker's later sync message was ignored and the dropped
        event was lost in silence (and a later event taken without noticing the hole)."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--ingest", "off", "--threads", "1",
                                      "--service-queue-max", "64"])
        filler = [self.sse(h.port, "/events/hd.filler")]
        cold = self.sse(h.port, "/events/hd.first")
        for t in ("hd.filler", "hd.first"):
            wait_live_subscribed(r, t)
        time.sleep(0.5)
        svc = [int(t) for t in os.listdir("/proc/%d/task" % h.proc.pid)
               if open("/proc/%d/task/%s/comm" % (h.proc.pid, t)).read().startswith("hb-svc-")]
        self.assertEqual(len(svc), 1)
        with ThreadStop(svc[0]):  # the service thread stops; its queue fills with the filler's
            r.pipeline([("FCALL", "herald_publish", "1", "hd.filler", "f%d" % i)
                        for i in range(80)])
            first = harness.fcall_publish(r, "hd.first", "first")
            wait_until(lambda: "service queue full" in h.log(), 10, what="the queue overflowing")
            time.sleep(0.3)  # the broker has handled the first event (dropped) by now
        e = cold.next_event(10 * harness.SCALE)
        self.assertEqual((split_cursor(e.id)[0], e.data), (first, "first"),
                         "the dropped first event must still come, before anything after it")
        self.assertFalse(cold.closed)


if __name__ == "__main__":
    harness.main()
