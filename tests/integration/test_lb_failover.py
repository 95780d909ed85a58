"""Failover through the load balancer: clients connect through HAProxy (deploy/haproxy.cfg) to
three edges; the edge the first client is on is SIGKILLed while events are published with
FCALL herald_publish at about 50/s. Every client on it reconnects through the LB with its
Last-Event-ID, lands on another edge and ends with every event exactly once, in order. The
reconnect time (kill -> 200 from the new edge, and -> first event from it) is printed."""

import signal
import time

import harness
from harness import wait_live_subscribed
from lbkit import LbTestCase, Publisher

TOPIC = "lb.failover"


class LbFailover(LbTestCase):

    def test_sigkill_the_clients_edge(self):
        lb = self.lb
        lb.wait_all_up()
        # Six clients: round-robin puts two on each edge.
        clients = self.start_clients(TOPIC)
        nodes = [c.node for c in clients]
        harness.log("clients on: %s" % nodes)
        self.assertEqual(sorted(set(nodes)), ["edge-1", "edge-2", "edge-3"],
                         "round-robin should spread 6 clients over 3 edges")
        wait_live_subscribed(self.r, TOPIC, n=3)  # one live subscription per edge

        pub = Publisher(self.srv.port, TOPIC, rate=50)
        self.threads.append(pub)
        pub.start()
        pub.wait_count(25)

        victim_node = clients[0].node
        victim = self.edge_by_node(victim_node)
        moving = [c for c in clients if c.node == victim_node]
        staying = [c for c in clients if c.node != victim_node]
        killed_at = time.monotonic()
        victim.kill(signal.SIGKILL)
        harness.log("SIGKILLed %s after %d events; %d client(s) on it" % (
            victim_node, pub.count(), len(moving)))

        harness.wait_until(lambda: all(c.reconnects and c.reconnects[0][2] is not None
                                       for c in moving), 15,
                           what="clients of %s to reconnect and get an event" % victim_node)
        n_at_reconnect = pub.count()
        pub.wait_count(n_at_reconnect + 50)  # one more second of live traffic after failover
        ids = pub.stop()
        harness.wait_until(lambda: all(c.count() >= len(ids) for c in clients), 15,
                           what="every client to receive all %d events" % len(ids))
        for c in clients:
            c.stop()

        for c in clients:
            got = c.stream_ids()
            self.assertEqual(len(got), len(set(got)), "%s got duplicates" % c.name)
            self.assertEqual(got, ids, "%s: not every event exactly once in order" % c.name)
            self.assertEqual(c.gaps, [], "%s was told of a gap" % c.name)
            self.assertEqual(c.data, ["p%d" % (i + 1) for i in range(len(ids))])
        for c in staying:
            self.assertEqual(c.reconnects, [], "%s (not on the killed edge) reconnected" % c.name)
        for c in moving:
            self.assertEqual(len(c.reconnects), 1, "%s: %r" % (c.name, c.conns))
            ended, to_head, to_event, before, after = c.reconnects[0]
            self.assertEqual(before, victim_node)
            self.assertNotEqual(after, victim_node)
            self.assertIn(after, {"edge-1", "edge-2", "edge-3"})
            harness.log("reconnect %s: %s -> %s; stream end %.1f ms after the kill, new stream "
                        "%.1f ms after the kill, first event after it %.1f ms after the kill" % (
                            c.name, before, after, (ended - killed_at) * 1e3,
                            (ended + to_head - killed_at) * 1e3,
                            (ended + to_event - killed_at) * 1e3))
        harness.log("published %d events at ~50/s; all %d clients got each exactly once, in order"
                    % (len(ids), len(clients)))


if __name__ == "__main__":
    harness.main()
