"""Raw PUBLISH ingest: exactly one edge (the ingest leader) stores each raw message once, in
publish order; internal, '__' and invalid channels are never ingested."""

import harness
from harness import (HeraldTestCase, lease_holder, stream_key, wait_until, xrange)

N = 200


class RawIngest(HeraldTestCase):

    def wait_leader(self, r):
        node = wait_until(lambda: lease_holder(r), 20, what="an ingest leader (%s)" % harness.LEASE_KEY)
        self.assertIsNotNone(self.edge_by_node(node), "lease held by unknown node %r" % node)
        return node

    def store_and_check(self, nedges):
        srv = self.redis()
        r = self.client(srv)
        edges = self.edges(srv, nedges)
        leader = self.wait_leader(r)
        topic = "raw.%d" % nedges
        # A subscriber on the last edge sees the ingested messages live, with their stream IDs.
        sub = self.sse(edges[-1].port, "/events/" + topic)
        harness.wait_live_subscribed(r, topic)

        payloads = [("m-%04d" % i).encode() for i in range(N)]
        receivers = r.pipeline([("PUBLISH", topic, p) for p in payloads])
        self.assertTrue(all(n >= nedges for n in receivers),
                        "every edge listens to raw channels: PUBLISH receivers %r" % receivers[:5])
        # Ingest is in publish order: once a sentinel published last is stored, all is in.
        r.publish(topic, "sentinel")
        wait_until(lambda: any(f.get("d") == b"sentinel" for _, f in xrange(r, topic, "-", "+")),
                   20, what="the sentinel in %s" % stream_key(topic))
        entries = xrange(r, topic)
        stored = [f.get("d") for _, f in entries]
        self.assertEqual(stored, payloads + [b"sentinel"])
        for _, f in entries:
            self.assertNotIn("e", f)

        got = sub.events(N + 1)
        self.assertEqual([e.data.encode() for e in got], payloads + [b"sentinel"])
        self.assertEqual([harness.split_cursor(e.id)[0] for e in got], [eid for eid, _ in entries])
        harness.log("raw ingest, %d edge(s): leader %s, published %d, stored %d" % (
            nedges, leader, N + 1, len(entries)))
        return srv, r, edges

    def test_one_edge(self):
        self.store_and_check(1)

    def test_three_edges(self):
        self.store_and_check(3)

    def test_not_ingested(self):
        srv = self.redis()
        r = self.client(srv)
        edges = self.edges(srv, 2)
        self.wait_leader(r)
        skipped = ["__keyspace@0__:x", "herald:foo", "__foo", "__keyevent@0__/del", "bad topic",
                   "bad#topic", "x" * 129, ""]
        for ch in skipped:
            r.publish(ch, "payload of " + ch)
        r.publish("ok-topic", "sentinel")
        wait_until(lambda: xrange(r, "ok-topic"), 20, what="the sentinel on ok-topic")
        for ch in skipped:
            self.assertEqual(r.cmd("EXISTS", stream_key(ch)), 0, "channel %r was ingested" % ch)
        keys = [k.decode("utf-8", "replace") for k in r.cmd("KEYS", "*")]
        for k in keys:
            for bad in ("keyspace", "keyevent", "foo", "bad"):
                self.assertNotIn(bad, k, "unexpected key %r (all keys: %r)" % (k, keys))
        self.assertEqual([f["d"] for _, f in xrange(r, "ok-topic")], [b"sentinel"])
        for h in edges:
            self.assertEqual(h.readyz(), 200)
            self.assert_serving(h)
        harness.log("not ingested: %d channels; keys now %r" % (len(skipped), sorted(keys)))


if __name__ == "__main__":
    harness.main()
