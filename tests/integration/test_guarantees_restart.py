"""Delivery across a Redis restart for subscribers that have not received any event yet.

The edge is frozen (SIGSTOP) around the restart so that the events published while it is away
are stored before it can resubscribe, deterministically: after SIGCONT it finds its connections
closed, reconnects and resubscribes, and must refill every topic from the position its
subscription had (not only from the last event it delivered, which it has none of).
"""

import json
import signal
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until


class FreshSubscribersAcrossRestart(HeraldTestCase):

    def _setup(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--heartbeat", "1"])
        # "old": a stream that exists before anyone subscribes; "new": none yet
        old_sid = fcall_publish(r, "g.old", "before-subscribe")
        subs = {}
        for topic in ("g.old", "g.new"):
            subs[topic] = [self.sse(h.port, "/events/" + topic)]
            wait_live_subscribed(r, topic)
        # a second subscriber joins later on each topic (same edge, same Redis subscription)
        time.sleep(0.2)
        for topic in subs:
            subs[topic].append(self.sse(h.port, "/events/" + topic))
        time.sleep(0.3)  # let the joins reach the broker
        return srv, r, h, subs, old_sid

    def _restart_behind_frozen_edge(self, srv, h, r, keep_data):
        lib = r.cmd("FUNCTION", "DUMP")  # an empty Redis has no function library either
        r.close()
        h.kill(signal.SIGSTOP)
        try:
            srv.restart(keep_data=keep_data)
            r2 = self.client(srv)
            if not keep_data:
                r2.cmd("FUNCTION", "RESTORE", lib)
            sids = {t: fcall_publish(r2, t, "while-away-" + t) for t in ("g.old", "g.new")}
            for t in sids:  # nobody is subscribed: only a refill can deliver these
                self.assertEqual(r2.cmd("PUBSUB", "NUMSUB", harness.live_channel(t))[1], 0)
        finally:
            h.kill(signal.SIGCONT)
        return r2, sids

    def test_restart_with_data(self):
        srv, r, h, subs, old_sid = self._setup()
        r2, sids = self._restart_behind_frozen_edge(srv, h, r, keep_data=True)
        for topic, clients in subs.items():
            for i, c in enumerate(clients):
                e = c.next_event(20 * harness.SCALE)
                self.assertNotEqual(e.event, "herald.gap", "%s #%d: %r" % (topic, i, e.data))
                self.assertEqual((split_cursor(e.id)[0], e.data), (sids[topic], "while-away-" + topic),
                                 "%s subscriber #%d" % (topic, i))
        # and live delivery goes on, without duplicates
        wait_live_subscribed(r2, "g.old")
        sid = fcall_publish(r2, "g.old", "after")
        for c in subs["g.old"]:
            e = c.next_event(10)
            self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"))
        self.assertEqual(old_sid < sids["g.old"], True)

    def test_restart_without_data(self):
        srv, r, h, subs, _ = self._setup()
        r2, sids = self._restart_behind_frozen_edge(srv, h, r, keep_data=False)
        # g.old: its stream (and epoch) is gone: a reset notice, then the new event
        for i, c in enumerate(subs["g.old"]):
            e = c.next_event(20 * harness.SCALE)
            self.assertEqual(e.event, "herald.gap", "g.old subscriber #%d got %r" % (i, e.data))
            self.assertEqual(json.loads(e.data), {"topic": "g.old", "reason": "reset"})
            e = c.next_event(10)
            self.assertEqual((split_cursor(e.id)[0], e.data), (sids["g.old"], "while-away-g.old"))
        # g.new had no stream when subscribed: everything in the new one is after the join
        # g.new: a reset too. Its subscription's position read found no stream, and the edge,
        # frozen, could not hear whether one was created and written before Redis lost it
        # (test_guarantees_wiped_cut's f.empty: then the reset is all that tells of the loss);
        # the dataset marker says Redis lost its data. Then the new stream's event.
        for i, c in enumerate(subs["g.new"]):
            e = c.next_event(20 * harness.SCALE)
            self.assertEqual(e.event, "herald.gap", "g.new subscriber #%d got %r" % (i, e.data))
            self.assertEqual(json.loads(e.data), {"topic": "g.new", "reason": "reset"})
            e = c.next_event(10)
            self.assertEqual((split_cursor(e.id)[0], e.data), (sids["g.new"], "while-away-g.new"),
                             "g.new subscriber #%d" % i)


if __name__ == "__main__":
    harness.main()
