"""Raw PUBLISHes stored in publish order across a function library removed from a running Redis
(FINDINGS F25, checker seed 234 --net-faults --redis-faults: `raw raw-123 stored after
raw-153`).

edge-1 leads the raw ingest, edge-2 stands by (it keeps what it hears until the leader's store
is known). The library is flushed and m-0 published at once: edge-1's store call is answered
`ERR Function not found` (nothing of it ran). Before the fix edge-1 counted m-0 refused and
stored m-1.. once the library was back; edge-2 still kept m-0 and, leading next (edge-1
killed), stored it after them. A store call that did not run now stores nothing and keeps its
messages for whoever leads next, in order (this edge too, once its connection has loaded the
library again)."""

import signal
import time

import harness
from harness import HeraldTestCase, lease_holder, raw_listeners, stored_data, wait_until

TOPIC = "rawlib"



class RawAcrossLibraryFlush(HeraldTestCase):

    def test_raw_order_kept_across_a_library_flush(self):
        srv = self.redis()
        r = self.client(srv)
        args = ["--lease-ms", "1000"]
        e1 = self.edge(srv, "edge-1", args)
        wait_until(lambda: lease_holder(r) == "edge-1", 20, what="edge-1 leading")
        self.edge(srv, "edge-2", args)
        wait_until(lambda: raw_listeners(r) == 2, 10, what="both edges on raw channels")
        self.assertEqual(r.publish(TOPIC, "warm-up"), 2)
        wait_until(lambda: stored_data(r, TOPIC) == ["warm-up"], 10, what="warm-up stored")
        time.sleep(1.5)  # edge-2 has listened for --lease-ms: it may take over
        lib = r.cmd("FUNCTION", "DUMP")

        r.cmd("FUNCTION", "FLUSH")
        self.assertEqual(r.publish(TOPIC, "m-0"), 2)  # its store meets the missing library
        time.sleep(0.3)
        r.cmd("FUNCTION", "RESTORE", lib, "REPLACE")  # (an edge may have loaded it already)
        for i in range(1, 5):
            r.publish(TOPIC, "m-%d" % i)
            time.sleep(0.05)
        time.sleep(2.0)
        self.assertIn('"why":"function library missing"', e1.log(),
                      "edge-1's store of m-0 met the missing library")
        e1.kill(signal.SIGKILL)  # whatever edge-2 still keeps, it stores as the next leader
        wait_until(lambda: lease_holder(r) == "edge-2", 30, what="edge-2 leading")
        time.sleep(2.0)
        self.assertEqual(stored_data(r, TOPIC), ["warm-up"] + ["m-%d" % i for i in range(5)],
                         "every raw message once, in publish order")


if __name__ == "__main__":
    harness.main()
