"""The function library removed from a running Redis (`FUNCTION FLUSH`, `FUNCTION DELETE`, or a
`FUNCTION RESTORE ... FLUSH` of another dump): before, every edge of the deployment turned
`/readyz` 503 for good (its heartbeat, publishes and refills all answered `ERR Function not
found`) until it was restarted. An edge whose heartbeat is answered so connects again, and the
connection's set-up loads the library; then it is ready and delivering."""

import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until


class LibraryFlushed(HeraldTestCase):

    def test_the_library_is_loaded_again(self):
        srv = self.redis()
        r = self.client(srv)
        h1, h2 = self.edges(srv, 2, args=["--ingest", "off"])
        subs = [self.sse(h.port, "/events/lf.t") for h in (h1, h2)]
        wait_live_subscribed(r, "lf.t")
        time.sleep(0.3)
        sid = fcall_publish(r, "lf.t", "before")
        for s in subs:
            self.assertEqual(s.next_event(10).data, "before")

        r.cmd("FUNCTION", "FLUSH")
        # the first edge whose heartbeat meets the gap loads the library again; the other may
        # find it back before its own heartbeat does
        lost = lambda h: harness.scrape(h.port).get("herald_redis_library_lost_total", 0)
        wait_until(lambda: lost(h1) + lost(h2) >= 1 and r.cmd("FUNCTION", "LIST"),
                   15 * harness.SCALE, interval=0.1, what="the library loaded again")
        self.assertTrue(any("function library missing" in h.log() for h in (h1, h2)))
        for h in (h1, h2):
            wait_until(lambda: h.readyz() == 200, 15 * harness.SCALE, interval=0.1,
                       what="edge %s ready again" % h.node_id)
        sid = fcall_publish(r, "lf.t", "after")
        for s in subs:
            e = s.next_event(10)
            self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"))


if __name__ == "__main__":
    harness.main()
