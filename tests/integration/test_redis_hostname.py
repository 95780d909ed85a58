"""Redis named by a host name (as in Compose files): the edge looks it up asynchronously on its
Redis thread (libevent's evdns, which also reads /etc/hosts), then connects, stores and delivers
as with a numeric address."""

import harness
from harness import HeraldTestCase, http_get, split_cursor, wait_live_subscribed, xrange

KEY = "k3y-hostname"


class RedisHostName(HeraldTestCase):

    def test_localhost(self):
        srv = self.redis()
        r = self.client(srv)
        # "localhost" comes from /etc/hosts: no DNS query leaves the machine.
        h = self.edge(srv, "edge-1", ["--redis", "redis://localhost:%d" % srv.port,
                                      "--publish-key", KEY])
        self.assertEqual(h.readyz(), 200)
        self.assertIn('"redis":"redis://localhost:%d"' % srv.port, h.log())
        topic = "named.host"
        c = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(r, topic)
        code, _, body = http_get(h.port, "/publish/" + topic, method="POST", body=b"hi",
                                 headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(code, 200, body)
        e = c.next_event()
        self.assertEqual(e.data, "hi")
        self.assertEqual([split_cursor(e.id)[0]], [eid for eid, _ in xrange(r, topic)])
        # raw PUBLISH ingest runs over the same resolved address
        r.publish(topic, "raw")
        self.assertEqual(c.next_event().data, "raw")
        harness.log("redis://localhost:%d: ready, HTTP and raw publishes delivered" % srv.port)


if __name__ == "__main__":
    harness.main()
