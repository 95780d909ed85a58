"""Redis comes back EMPTY while clients are connected: the history they were following is gone
and the next stream of the topic is a new one (new epoch). Every connected client must get
`herald.gap` reason "reset" before the first new event, never a silent jump to the new stream;
a client resuming later with a cursor from before the restart gets the reset first too."""

import json

import harness
from harness import (HeraldTestCase, RedisError, fcall_publish, split_cursor,
                     wait_live_subscribed, wait_until, xrange)

TOPIC = "fault.empty"
RESET = {"topic": TOPIC, "reason": "reset"}


class RedisEmpty(HeraldTestCase):

    def publish_retrying(self, r, payload):
        """FCALL right after a restart: the edges load the function library again when they
        reconnect; retry only while it is not there yet."""
        def go():
            try:
                return fcall_publish(r, TOPIC, payload)
            except RedisError as e:
                if "function" in str(e).lower():
                    return None
                raise
        return wait_until(go, 15, interval=0.05, what="FCALL herald_publish after restart")

    def test_restart_empty_signals_reset(self):
        srv = self.redis()
        r = self.client(srv)
        edges = self.edges(srv, 2, ["--heartbeat", "1"])
        clients = [self.sse(h.port, "/events/" + TOPIC) for h in edges for _ in range(3)]
        wait_live_subscribed(r, TOPIC, n=2)
        old_ids = [fcall_publish(r, TOPIC, "old-%d" % i) for i in range(5)]
        old = [c.events(5) for c in clients]
        for got in old:
            self.assertEqual([split_cursor(e.id)[0] for e in got], old_ids)
        old_epoch = split_cursor(old[0][-1].id)[1]
        old_cursor = old[0][-1].id
        r.close()

        srv.restart(keep_data=False)
        r = self.client(srv)
        # empty: the topic's stream and epoch are gone (the edges may already have set the
        # dataset marker, herald:dataset, by which they tell Redis lost its data)
        self.assertEqual(r.cmd("EXISTS", harness.stream_key(TOPIC), "herald:{%s}:epoch" % TOPIC), 0)
        for h in edges:
            wait_until(lambda: h.readyz() == 200, 30, what="%s ready after restart" % h.node_id)
        new_ids = [self.publish_retrying(r, "new-0")]
        new_ids += [fcall_publish(r, TOPIC, "new-%d" % i) for i in range(1, 5)]
        stored = [eid for eid, _ in xrange(r, TOPIC)]
        self.assertEqual(stored, new_ids)

        notices = 0
        for i, c in enumerate(clients):
            e = c.next_event(15)
            self.assertEqual((e.event, e.id), ("herald.gap", None),
                             "client %d: first event after Redis came back empty: %r" % (i, e))
            self.assertEqual(json.loads(e.data), RESET)
            got = c.events(5, timeout=15)
            self.assertEqual([(e.event, split_cursor(e.id)[0], e.data) for e in got],
                             [(None, x, "new-%d" % k) for k, x in enumerate(new_ids)],
                             "client %d after the reset" % i)
            new_epoch = split_cursor(got[0].id)[1]
            self.assertNotEqual(new_epoch, old_epoch)
            c.pump(0.2)
            self.assertEqual(c.pending(), [], "client %d: extra events" % i)
            self.assertFalse(c.closed)
            notices += 1

        # Later: a client resuming with a cursor from before the restart, on either edge.
        for h in edges:
            c = self.sse(h.port, "/events/" + TOPIC, {"Last-Event-ID": old_cursor})
            e = c.next_event()
            self.assertEqual((e.event, json.loads(e.data)), ("herald.gap", RESET),
                             "resume with an old cursor on %s: %r" % (h.node_id, e))
            got = c.events(len(new_ids))
            self.assertEqual([split_cursor(x.id)[0] for x in got], new_ids)
            sid = fcall_publish(r, TOPIC, "live")
            e = c.next_event()
            self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "live"))
            new_ids.append(sid)
        harness.log("redis restarted empty: %d connected clients got reset then the new "
                    "stream (epoch %s -> %s); old-cursor resumes on 2 edges got reset first" % (
                        notices, old_epoch, new_epoch))

    def test_restart_empty_before_any_new_event_on_the_topic(self):
        """Redis comes back empty and the first new event on the topic arrives through the
        edge's history fill rather than the live channel (published before the edge
        resubscribed): still a reset notice first."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--heartbeat", "1"])
        c = self.sse(h.port, "/events/" + TOPIC)
        wait_live_subscribed(r, TOPIC)
        fcall_publish(r, TOPIC, "old")
        self.assertEqual(c.next_event().data, "old")
        r.close()
        srv.stop()
        wait_until(lambda: h.readyz() == 503, 10, what="/readyz 503")
        srv.start()  # empty
        r = self.client(srv)
        # Publish as soon as FCALL works, before the edge is back (it may or may not be).
        sid = self.publish_retrying(r, "first-new")
        e = c.next_event(20)
        self.assertEqual((e.event, json.loads(e.data) if e.event else e.data),
                         ("herald.gap", RESET), "first event after an empty restart: %r" % (e,))
        e = c.next_event(20)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "first-new"))
        wait_until(lambda: h.readyz() == 200, 30, what="/readyz 200")
        sid2 = fcall_publish(r, TOPIC, "second-new")
        e = c.next_event()
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid2, "second-new"))
        c.pump(0.2)
        self.assertEqual(c.pending(), [])


if __name__ == "__main__":
    harness.main()
