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

    def test_repeated_payloads(self):
        """Raw messages with the same payload ("ping", "1", "refresh"), pipelined: each stored
        once, in order. The leader hears its own stored copies and matched them by topic and
        payload; a copy heard after its store call had answered matched a later message with
        the same payload, not sent yet, which was then dropped unstored: hundreds of 4,000
        lost in one burst out of three, without a metric moving."""
        srv = self.redis()
        r = self.client(srv)
        edges = self.edges(srv, 1)
        self.wait_leader(r)
        for rnd in range(4):
            topics = ["raw.same.%d.%d" % (rnd, k) for k in range(8)]
            want = {t: [] for t in topics}
            cmds = []
            for j in range(4000):
                t, p = topics[j % 8], b"same" if j % 10 else b"u%d" % j
                cmds.append(("PUBLISH", t, p))
                want[t].append(p)
            for t in topics:  # published last: once stored, the topic's burst is in
                cmds.append(("PUBLISH", t, b"sentinel"))
                want[t].append(b"sentinel")
            r.pipeline(cmds)
            for t in topics:
                wait_until(lambda t=t: (xrange(r, t, "-", "+") or [[0, {}]])[-1][1].get("d") ==
                           b"sentinel", 30, what="the sentinel in %s" % stream_key(t))
                self.assertEqual([f.get("d") for _, f in xrange(r, t)], want[t],
                                 "round %d, %s: stored differs from published" % (rnd, t))
        m = harness.scrape(edges[0].port)
        self.assertEqual(m.get("herald_ingested_total"), 4 * 4008)
        self.assertEqual(m.get("herald_ingest_rejected_total", 0), 0)

    def test_a_key_of_another_type_refuses_only_its_topic(self):
        """A topic whose stream key, or epoch key, was written around Herald with another
        type (a string, a hash): its raw message is refused, alone. The type error aborted the
        leader's whole store call, after the messages before it were stored: those were counted
        refused and the messages after it, of other topics, were never stored."""
        srv = self.redis()
        r = self.client(srv)
        edges = self.edges(srv, 1)
        self.wait_leader(r)
        for which in ("log", "epoch"):
            bad = "raw.wrongtype.%s" % which
            if which == "log":
                r.cmd("SET", stream_key(bad), "x")
            else:
                r.cmd("HSET", "herald:{%s}:epoch" % bad, "f", "v")
            topics = ["raw.wt.%s.%d" % (which, k) for k in range(4)]
            want = {t: [] for t in topics}
            cmds = []
            for i in range(50):
                cmds.append(("PUBLISH", topics[i % 4], "m%d" % i))
                want[topics[i % 4]].append(b"m%d" % i)
                if i == 25:
                    cmds.append(("PUBLISH", bad, "poison"))
            before = harness.scrape(edges[0].port)
            r.pipeline(cmds)  # one write: the leader stores it in one call
            for t in topics:
                wait_until(lambda t=t: len(xrange(r, t)) >= len(want[t]), 20,
                           what="%s stored" % t)
                self.assertEqual([f.get("d") for _, f in xrange(r, t)], want[t], t)
            m = harness.scrape(edges[0].port)
            self.assertEqual(m["herald_ingested_total"] - before.get("herald_ingested_total", 0),
                             50 + (which == "epoch"), which)
            if which == "log":  # a string where the stream is: refused, counted, left alone
                self.assertEqual(m["herald_ingest_rejected_total"] -
                                 before.get("herald_ingest_rejected_total", 0), 1)
                self.assertEqual(r.cmd("GET", stream_key(bad)), b"x")
            else:  # an epoch key that is no epoch is replaced, as one SET around Herald is
                self.assertEqual([f.get("d") for _, f in xrange(r, bad)], [b"poison"])

    def test_lease_taken_mid_flow(self):
        """The lease is taken from the leader while it stores a stream of raw messages (as when
        it stalled past the lease and another edge won it): its refused stores are kept again,
        in order, and stored once when it leads again; nothing is lost or stored twice."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edges(srv, 1)[0]
        self.wait_leader(r)
        topics = ["taken.%d" % i for i in range(4)]
        pub = self.client(srv)
        sent = {t: [] for t in topics}
        n = 0
        taken = False
        # ~1 raw message per millisecond, in small pipelines; the lease changes hands halfway.
        while n < 3000:
            if n == 1500 and not taken:
                r.cmd("SET", harness.LEASE_KEY, "someone-else:0", "PX", "1500")
                taken = True
            cmds = []
            for _ in range(10):
                t = topics[n % len(topics)]
                p = b"m-%05d" % n
                sent[t].append(p)
                cmds.append(("PUBLISH", t, p))
                n += 1
            pub.pipeline(cmds)
            harness.time.sleep(0.01)
        for t in topics:
            pub.publish(t, "end")
        for t in topics:
            wait_until(lambda: any(f.get("d") == b"end" for _, f in xrange(r, t)), 30,
                       what="the last raw message on " + t)
            self.assertEqual([f.get("d") for _, f in xrange(r, t)], sent[t] + [b"end"],
                             "raw messages on %s lost, repeated or reordered" % t)
        log = h.log()
        self.assertIn('"why":"fenced"', log, "the leader's stores were never refused")
        self.assertGreaterEqual(log.count('"msg":"ingest leader"'), 2, "no second leadership")
        harness.log("lease taken mid-flow: %d raw messages on %d topics stored once, in order"
                    % (n + len(topics), len(topics)))

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
