"""An operator looking at `CLIENT LIST` on Redis sees which edge holds which connection, and can
`CLIENT KILL` one edge's: each edge names its connections herald-<node id>-<cmd|sub|ingest>."""

import harness
from harness import HeraldTestCase, client_ids, wait_until


def names(r):
    return sorted(client_ids(r))


class ClientNames(HeraldTestCase):

    def test_each_connection_is_named_after_its_edge(self):
        srv = self.redis()
        r = self.client(srv)
        self.edges(srv, 2)
        want = sorted("herald-edge-%d-%s" % (i, k) for i in (1, 2)
                      for k in ("cmd", "sub", "ingest"))
        wait_until(lambda: names(r) == want, 10 * harness.SCALE, interval=0.1,
                   what="the edges' connections named %r (got %r)" % (want, names(r)))

        # one edge's command connection killed by name: it comes back, named again
        old = client_ids(r)["herald-edge-2-cmd"]
        self.assertEqual(r.cmd("CLIENT", "KILL", "ID", old), 1)
        wait_until(lambda: names(r) == want and client_ids(r)["herald-edge-2-cmd"] != old,
                   10 * harness.SCALE, interval=0.1,
                   what="edge-2's command connection back and named")


if __name__ == "__main__":
    harness.main()
