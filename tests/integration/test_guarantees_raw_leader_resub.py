"""Raw PUBLISHes stored in publish order when the ingest leader's own raw subscription is
replaced (FINDINGS F26, checker seed 237 --net-faults --redis-faults: `raw raw-121 stored after
raw-241`, near `client_kill ck-2 ingest`).

edge-1 leads, edge-2 stands by. edge-1's raw subscription is killed (CLIENT KILL by its name)
and m-0 published before it is back: only edge-2 hears it and keeps it. Before the fix
edge-1 led on and stored m-1.. heard on its new subscription; m-0 stayed kept by edge-2 and,
when edge-2 led next, was stored behind them. A leader whose raw subscription was replaced now
stands by once it is back, so an edge that heard everything leads and stores it in order."""

import signal
import time

import harness
from harness import HeraldTestCase, lease_holder, wait_until, xrange

TOPIC = "rawlres"


def raw_listeners(r):
    return r.cmd("CLIENT", "LIST").decode().count(" psub=1 ")


def client_id(r, name):
    for line in r.cmd("CLIENT", "LIST").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if f.get("name") == name:
            return f["id"]
    return None


def stored(r):
    return [d.get("d", b"").decode() for _, d in xrange(r, TOPIC)]


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
        wait_until(lambda: stored(r) == ["warm-up"], 10, what="warm-up stored")
        time.sleep(3.5)  # edge-2 has listened for 3 lease periods: it may lead at once

        for _ in range(20):  # the kill and the publish must fall in edge-1's gap
            self.assertEqual(r.cmd("CLIENT", "KILL", "ID", client_id(r, "herald-edge-1-ingest")),
                             1)
            if r.publish(TOPIC, "m-0") == 1:
                break
            time.sleep(0.5)  # edge-1 was back already: m-0 went to both; try again
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
        got = [x for x in stored(r) if x.startswith("m-")]
        # m-0 may appear more than once in the loop above's tries (each one published once)
        dedup = [x for i, x in enumerate(got) if x != "m-0" or "m-0" not in got[:i]]
        self.assertEqual(dedup, ["m-%d" % i for i in range(5)],
                         "every raw message in publish order: %r" % got)


if __name__ == "__main__":
    harness.main()
