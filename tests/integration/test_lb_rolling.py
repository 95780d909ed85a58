"""Rolling restart behind the load balancer: under a steady FCALL publish stream (~50/s), each
of three edges in turn gets SIGTERM (it drains: readiness goes false, clients get retry: and
are closed), exits, and is started again on the same port; the next one goes only once HAProxy
sees it UP again. Every client, reconnecting through HAProxy with Last-Event-ID, ends with
every event exactly once, in order."""

import signal
import time

import harness
from harness import wait_live_subscribed
from lbkit import LbTestCase, Publisher

TOPIC = "lb.rolling"


class LbRolling(LbTestCase):
    edge_args = ("--drain-timeout", "5")

    def test_restart_every_edge_one_by_one(self):
        lb = self.lb
        lb.wait_all_up()
        clients = self.start_clients(TOPIC)
        harness.log("clients on: %s" % [c.node for c in clients])
        wait_live_subscribed(self.r, TOPIC, n=3)

        pub = Publisher(self.srv.port, TOPIC, rate=50)
        self.threads.append(pub)
        pub.start()
        pub.wait_count(25)

        for h in self.hs:
            t0 = time.monotonic()
            h.kill(signal.SIGTERM)
            lb.wait_status(h, "DOWN", 10)
            harness.wait_until(lambda: not h.alive(), 15, what="%s to exit after SIGTERM" % h.node_id)
            code = h.proc.returncode
            self.assertEqual(code, 0, "%s exited with %s after SIGTERM:\n%s" % (
                h.node_id, code, h.log()))
            t_exit = time.monotonic()
            h.start()
            lb.wait_status(h, "UP", 15)
            harness.log("%s: drained and exited in %.0f ms, back UP in HAProxy %.0f ms later; "
                        "%d events published so far" % (
                            h.node_id, (t_exit - t0) * 1e3, (time.monotonic() - t_exit) * 1e3,
                            pub.count()))

        n = pub.count()
        pub.wait_count(n + 25)
        ids = pub.stop()
        harness.wait_until(lambda: all(c.count() >= len(ids) for c in clients), 20,
                           what="every client to receive all %d events" % len(ids))
        for c in clients:
            c.stop()
        for c in clients:
            got = c.stream_ids()
            self.assertEqual(len(got), len(set(got)), "%s got duplicates" % c.name)
            self.assertEqual(got, ids, "%s: not every event exactly once in order" % c.name)
            self.assertEqual(c.gaps, [], "%s was told of a gap" % c.name)
            self.assertGreaterEqual(len(c.reconnects), 1, "%s never moved: %r" % (c.name, c.conns))
        moves = sum(len(c.reconnects) for c in clients)
        worst = max(rc[1] for c in clients for rc in c.reconnects)
        harness.log("rolling restart of 3 edges: %d events, %d client reconnects, slowest new "
                    "stream %.1f ms after the old one ended; no event lost or repeated" % (
                        len(ids), moves, worst * 1e3))


if __name__ == "__main__":
    harness.main()
