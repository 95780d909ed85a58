"""An operator looking at `CLIENT LIST` on Redis sees which edge holds which connection, and can
`CLIENT KILL` one edge's: each edge names its connections herald-<node id>-<cmd|sub|ingest>."""

import harness
from harness import HeraldTestCase, wait_until


def ids(r):
    """{name: client id} of the named connections."""
    out = {}
    for line in r.cmd("CLIENT", "LIST").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if f.get("name"):
            out[f["name"]] = f["id"]
    return out


def names(r):
    return sorted(f.split("=", 1)[1] for line in r.cmd("CLIENT", "LIST").decode().splitlines()
                  for f in line.split(" ") if f.startswith("name=") and f != "name=")


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
        old = ids(r)["herald-edge-2-cmd"]
        self.assertEqual(r.cmd("CLIENT", "KILL", "ID", old), 1)
        wait_until(lambda: names(r) == want and ids(r)["herald-edge-2-cmd"] != old,
                   10 * harness.SCALE, interval=0.1,
                   what="edge-2's command connection back and named")


if __name__ == "__main__":
    harness.main()
