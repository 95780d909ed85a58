"""/readyz does not depend on per-topic subscription state: a storm of new topics (per-user
topics) must not take a healthy edge out of the balancer, nor log a not ready/ready pair per
topic."""

import threading
import time
import urllib.parse

import harness
from harness import HeraldTestCase, SSEClient, fcall_publish, http_get

TOPICS_PER_CONN = 50
CONNS = 10


class ReadyzTopicStorm(HeraldTestCase):

    def test_readyz_stays_200_while_topics_are_new(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1")
        statuses = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                statuses.append(http_get(h.port, "/readyz", timeout=5.0)[0])

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        clients = []
        try:
            for i in range(CONNS):
                topics = ["storm.%d.%d" % (i, j) for j in range(TOPICS_PER_CONN)]
                path = "/events?" + "&".join("topic=" + urllib.parse.quote(t, safe="")
                                             for t in topics)
                c = SSEClient(h.port, path)
                self._closers.append(c)
                self.assertEqual(c.status, 200)
                clients.append((c, topics))

            def all_subscribed():
                n = r.cmd("PUBSUB", "NUMSUB", *[harness.live_channel(t)
                                                 for _, ts in clients for t in ts])
                return all(n[k] >= 1 for k in range(1, len(n), 2))
            harness.wait_until(all_subscribed, 30 * harness.SCALE, what="500 live subscriptions")
            time.sleep(0.2)
        finally:
            stop.set()
            poller.join(10)
        bad = [s for s in statuses if s != 200]
        harness.log("readyz storm: %d polls, %d not 200" % (len(statuses), len(bad)))
        self.assertGreater(len(statuses), 20, "the poller hardly ran")
        self.assertEqual(bad, [], "/readyz left 200 while new topics were subscribed")
        # once per transition, not per topic: after start-up, no not-ready line at all
        self.assertNotIn('"not ready"', h.log())
        # the topics really work
        c, topics = clients[-1]
        sid = fcall_publish(r, topics[-1], "x")
        e = c.next_event(10)
        self.assertEqual(e.data.count('"x"') >= 1 or "x" in e.data, True, e.data)
        self.assertIn(sid, e.id)


if __name__ == "__main__":
    harness.main()
