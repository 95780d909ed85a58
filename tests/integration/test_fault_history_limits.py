"""History limits never turn into silent loss: a cursor whose successors were trimmed
(--history-max) or expired (--history-ttl) gets `herald.gap` first, then exactly what is
retained, then live events. A cursor whose successors are all retained gets no gap at all."""

import json

import harness
from harness import (HeraldTestCase, fcall_publish, split_cursor, stream_key,
                     wait_live_subscribed, wait_until, xrange)


class HistoryLimits(HeraldTestCase):

    extra_resets = 0

    def resume(self, h, topic, cursor):
        return self.sse(h.port, "/events/" + topic, {"Last-Event-ID": cursor})

    def expect_gap(self, c, topic, reasons=("trimmed",)):
        e = c.next_event()
        self.assertEqual(e.event, "herald.gap", "first event after the resume: %r" % (e,))
        gap = json.loads(e.data)
        self.assertEqual(set(gap), {"topic", "reason"}, e.data)
        self.assertEqual(gap["topic"], topic)
        self.assertIn(gap["reason"], reasons)
        return gap["reason"]

    def expect_exactly(self, c, entries, then_live=True, topic=None):
        got = c.events(len(entries)) if entries else []
        self.assertEqual([(split_cursor(e.id)[0], e.event, e.data.encode()) for e in got],
                         [(eid, None, f["d"]) for eid, f in entries])
        if then_live:
            sid = fcall_publish(self.r, topic, "live")
            e = c.next_event()
            # A live event that creates the stream anew (new epoch) may be announced with a
            # reset notice of its own; that is redundant after a gap, but never a loss.
            while e.event == "herald.gap" and json.loads(e.data) == {"topic": topic,
                                                                     "reason": "reset"}:
                self.extra_resets += 1
                e = c.next_event()
            self.assertEqual((e.event, split_cursor(e.id)[0], e.data), (None, sid, "live"))
        c.pump(0.3)
        self.assertEqual(c.pending(), [], "extra events")
        return got

    def test_trimmed_by_count(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        h = self.edge(self.srv, "edge-1", ["--history-max", "20", "--history-batch", "7"])
        topic = "fault.trim"
        live = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        n = 2000
        replies = self.r.pipeline([("FCALL", "herald_publish", 1, topic, "p-%d" % i)
                                   for i in range(n)])
        self.assertEqual([x for x in replies if isinstance(x, harness.RedisError)], [])
        ids = [x.decode() for x in replies]
        # A client that was connected all along saw every event, no gap.
        got = live.events(n)
        self.assertEqual([split_cursor(e.id)[0] for e in got], ids)
        self.assertEqual({e.event for e in got}, {None})

        retained = xrange(self.r, topic)
        self.assertLess(len(retained), 200, "--history-max 20 did not trim")
        first = ids.index(retained[0][0])
        self.assertEqual([eid for eid, _ in retained], ids[first:], "retained is a suffix")
        epoch = split_cursor(got[0].id)[1]

        # The cursor just before the first retained entry: nothing is missing. Without a
        # dense offset the edge cannot know that no entry between the two was trimmed, so a
        # (spurious) gap is allowed here; a missing gap below is not.
        c = self.resume(h, topic, "%s_%s" % (ids[first - 1], epoch))
        e = c.next_event()
        spurious = e.event == "herald.gap"
        if spurious:
            self.assertEqual(json.loads(e.data), {"topic": topic, "reason": "trimmed"})
            got = c.events(len(retained))
        else:
            got = [e] + c.events(len(retained) - 1)
        self.assertEqual([(split_cursor(e.id)[0], e.event, e.data.encode()) for e in got],
                         [(eid, None, f["d"]) for eid, f in retained])
        self.expect_exactly(c, [], topic=topic)
        c.close()
        # One further back: that entry (ids[first - 1]) was trimmed: gap, then retained.
        c = self.resume(h, topic, "%s_%s" % (ids[first - 2], epoch))
        self.expect_gap(c, topic)
        self.expect_exactly(c, xrange(self.r, topic), topic=topic)
        c.close()
        # From the very beginning, and with a bare stream id.
        c = self.resume(h, topic, ids[0])
        self.expect_gap(c, topic)
        self.expect_exactly(c, xrange(self.r, topic), topic=topic)
        harness.log("trimmed: %d published, %d retained (first at #%d); from the entry just "
                    "before it: %s; from earlier: gap" % (
                        n, len(retained), first,
                        "spurious gap" if spurious else "no gap (precise)"))

    def test_expired(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        h = self.edge(self.srv, "edge-1", ["--history-ttl", "1"])
        topic = "fault.ttl"
        c = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        for i in range(3):
            fcall_publish(self.r, topic, "old-%d" % i)
        cursor = c.next_event().id  # the client saw only old-0
        c.close()
        wait_until(lambda: self.r.cmd("EXISTS", stream_key(topic)) == 0, 10, interval=0.1,
                   what="the stream key to expire")

        # Nothing retained at all: the gap, then live events.
        c = self.resume(h, topic, cursor)
        reason_empty = self.expect_gap(c, topic, ("trimmed", "reset"))
        self.expect_exactly(c, [], topic=topic)
        c.close()

        # Expired, then new events: the gap, then the new events.
        wait_until(lambda: self.r.cmd("EXISTS", stream_key(topic)) == 0, 10, interval=0.1,
                   what="the stream key to expire again")
        for i in range(3):
            fcall_publish(self.r, topic, "new-%d" % i)
        c = self.resume(h, topic, cursor)
        reason_new = self.expect_gap(c, topic, ("trimmed", "reset"))
        retained = xrange(self.r, topic)
        self.assertEqual([f["d"] for _, f in retained], [b"new-0", b"new-1", b"new-2"])
        self.expect_exactly(c, retained, topic=topic)
        harness.log("expired: gap reason %r with nothing retained, %r after new events; %d "
                    "extra reset notice(s) before a live event" % (
                        reason_empty, reason_new, self.extra_resets))

    def test_trimmed_by_age(self):
        """--history-ttl also trims a live stream by age (MINID): entries older than the TTL
        are gone even though the key never expired."""
        self.srv = self.redis()
        self.r = self.client(self.srv)
        h = self.edge(self.srv, "edge-1", ["--history-ttl", "1"])
        topic = "fault.age"
        c = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        fcall_publish(self.r, topic, "a-0")
        fcall_publish(self.r, topic, "a-1")
        cursor = c.next_event().id
        c.close()
        # Keep publishing until a-1 has been trimmed by age (MINID ~ trims whole stream nodes
        # of 100 entries, so publish in batches).
        n = [0]

        def trimmed():
            self.r.pipeline([("FCALL", "herald_publish", 1, topic, "b-%d" % (n[0] + i))
                             for i in range(50)])
            n[0] += 50
            return b"a-1" not in [f["d"] for _, f in xrange(self.r, topic)]
        wait_until(trimmed, 15, interval=0.2, what="a-1 trimmed by age")
        self.assertEqual(self.r.cmd("EXISTS", stream_key(topic)), 1)
        c = self.resume(h, topic, cursor)
        self.expect_gap(c, topic)
        self.expect_exactly(c, xrange(self.r, topic), topic=topic)
        harness.log("trimmed by age after %d more publishes" % n[0])


if __name__ == "__main__":
    harness.main()
