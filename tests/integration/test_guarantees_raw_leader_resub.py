"""Raw PUBLISHes stored in publish order when the ingest leader's own raw subscription is
replaced (FINDINGS F26, checker seed 237 --net-faults --redis-faults: `raw raw-121 stored after
raw-241`, near `client_kill ck-2 ingest`).

edge-1 leads, edge-2 stands by. edge-1's raw subscription is killed (CLIENT KILL by its name)
and a message published before it is back: only edge-2 hears it and keeps it. Before the fix
edge-1 led on and stored m-1.. heard on its new subscription; the gap's message stayed kept by
edge-2 and, when edge-2 led next, was stored behind them. A leader whose raw subscription was replaced now
stands by once it is back, so an edge that heard everything leads and stores it in order."""

import signal
import time

import harness
from harness import (HeraldTestCase, client_ids, lease_holder, raw_listeners, stored_data,
                     wait_until)

TOPIC = "rawlres"



class LeaderResubscribes(HeraldTestCase):

    def test_a_leader_whose_raw_subscription_was_replaced_stands_by(self):
        srv = self.redis()
        r = self.client(srv)
        args = ["--lease-ms", "1000"]
        e1 = self.edge(srv, "edge-1", args)
        wait_until(lambda: lease_holder(r) == "edge-1", 20, what="edge-1 leading")
        self.edge(srv, "edge-2", args)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="both edges on raw channels")
        self.assertEqual(r.publish(TOPIC, "warm-up"), 2)
        wait_until(lambda: stored_data(r, TOPIC) == ["warm-up"], 10, what="warm-up stored")
        time.sleep(3.5)  # edge-2 has listened for 3 lease periods: it may lead at once

        early = []  # attempts that missed the gap: published to both edges, stored in order
        for k in range(20):  # the kill and the publish must fall in edge-1's gap
            self.assertEqual(r.cmd("CLIENT", "KILL", "ID", client_ids(r)["herald-edge-1-ingest"]),
                             1)
            gap = "gap-%d" % k
            if r.publish(TOPIC, gap) == 1:
                break
            early.append(gap)
            wait_until(lambda: raw_listeners(r) == 2, 10, what="edge-1's raw subscription back")
            time.sleep(0.3)
        else:
            self.fail("never published inside edge-1's raw subscription gap")
        wait_until(lambda: raw_listeners(r) == 2, 10, what="edge-1's raw subscription back")
        time.sleep(0.2)
        for i in range(1, 5):
            self.assertEqual(r.publish(TOPIC, "m-%d" % i), 2)
            time.sleep(0.05)
        time.sleep(2.0)
        e1.kill(signal.SIGKILL)  # whatever edge-2 still keeps, it stores as the next leader
        wait_until(lambda: lease_holder(r) == "edge-2", 30, what="edge-2 leading")
        time.sleep(2.0)
        self.assertEqual(stored_data(r, TOPIC), ["warm-up"] + early + [gap] +
                         ["m-%d" % i for i in range(1, 5)],
                         "every raw message once, in publish order")


if __name__ == "__main__":
    harness.main()
