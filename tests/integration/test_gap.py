"""Gaps are told, never silent: a cursor whose history was trimmed gets `herald.gap` with
reason "trimmed", a cursor from a deleted-and-recreated stream gets reason "reset"; then the
client receives exactly what is retained, then live events."""

import json

import harness
from harness import (HeraldTestCase, fcall_publish, split_cursor, stream_key,
                     wait_live_subscribed, xrange)


class Gap(HeraldTestCase):

    def expect_gap(self, c, topic, reason):
        e = c.next_event()
        self.assertEqual(e.event, "herald.gap", "first event after the resume: %r" % (e,))
        self.assertEqual(json.loads(e.data), {"topic": topic, "reason": reason}, e.data)
        return e

    def expect_retained(self, c, topic):
        retained = xrange(self.r, topic)
        got = c.events(len(retained))
        self.assertEqual([(split_cursor(e.id)[0], e.data.encode()) for e in got],
                         [(eid, f["d"]) for eid, f in retained])
        return got

    def expect_live(self, c, topic):
        sid = fcall_publish(self.r, topic, "live-after-gap")
        e = c.next_event()
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "live-after-gap"))
        c.pump(0.5)
        self.assertEqual(c.pending(), [], "unexpected extra events")

    def test_trimmed(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        h = self.edge(self.srv, "edge-1", ["--history-max", "10"])
        topic = "gap.trim"
        first = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        fcall_publish(self.r, topic, "p-0")
        cursor = first.next_event().id
        first.close()
        replies = self.r.pipeline([("FCALL", "herald_publish", 1, topic, "p-%d" % i)
                                   for i in range(1, 500)])
        errors = [x for x in replies if isinstance(x, harness.RedisError)]
        self.assertEqual(errors, [])
        xlen = self.r.cmd("XLEN", stream_key(topic))
        self.assertLess(xlen, 500, "--history-max 10 did not trim")

        c = self.sse(h.port, "/events/" + topic, {"Last-Event-ID": cursor})
        self.expect_gap(c, topic, "trimmed")
        got = self.expect_retained(c, topic)
        self.assertEqual(got[-1].data, "p-499")
        self.expect_live(c, topic)
        harness.log("gap trimmed: 500 published, %d retained, resumed from %s" % (xlen, cursor))

    def test_reset(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        a, b = self.edges(self.srv, 2)
        topic = "gap.reset"
        first = self.sse(a.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        for i in range(3):
            fcall_publish(self.r, topic, "old-%d" % i)
        old = first.events(3)
        first.close()
        old_epoch = split_cursor(old[-1].id)[1]

        self.assertEqual(self.r.cmd("DEL", stream_key(topic)), 1)
        for i in range(3):
            fcall_publish(self.r, topic, "new-%d" % i)

        c = self.sse(b.port, "/events/" + topic, {"Last-Event-ID": old[-1].id})
        self.expect_gap(c, topic, "reset")
        got = self.expect_retained(c, topic)
        self.assertEqual([e.data for e in got], ["new-0", "new-1", "new-2"])
        new_epoch = split_cursor(got[0].id)[1]
        self.assertNotEqual(new_epoch, old_epoch, "a recreated stream must get a new epoch")
        self.expect_live(c, topic)
        harness.log("gap reset: epoch %s -> %s" % (old_epoch, new_epoch))


if __name__ == "__main__":
    harness.main()
