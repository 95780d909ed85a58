"""What every hostile-input test checks besides its own attack (tests/integration/test_hostile_*.py).

A hostile client must leave every other client served and the edge idle once it is gone:
    bystander = Bystander(self, h, r)        # an SSE subscriber on its own connection, before the attack
    ... attack ...
    bystander.check()                        # a fresh event still reaches it, in order, exactly once
    assert_idle(self, h)                     # the edge's CPU use is back near zero (no spin)
    self.assert_serving(h)                   # and a new client is answered
"""

import itertools
import os
import time

import harness
from harness import SCALE, SSEClient, split_cursor, wait_live_subscribed

_SEQ = itertools.count(1)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc/<pid>/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_idle(test, h, window=2.0, max_share=0.15, settle=15.0):
    """Within `settle` seconds (scaled) the edge must use under `max_share` of one core over a
    `window` of wall time: an edge spinning on a dead request never gets there."""
    end = time.monotonic() + settle * SCALE
    share = None
    while True:
        c0, t0 = cpu_seconds(h.proc.pid), time.monotonic()
        time.sleep(window)
        share = (cpu_seconds(h.proc.pid) - c0) / (time.monotonic() - t0)
        if share < max_share or time.monotonic() > end:
            break
    test.assertLess(share, max_share,
                    "edge %s still uses %.0f%% of a core after the attack" % (h.node_id, share * 100))


class Bystander:
    """A normal SSE subscriber on its own connection and topic; check() publishes one event and
    asserts that it (and nothing else) arrives next."""

    def __init__(self, test, h, r, topic=None):
        self.test, self.h, self.r = test, h, r
        self.topic = topic or "bystander.%d.%d" % (os.getpid(), next(_SEQ))
        self.sse = SSEClient(h.port, "/events/" + self.topic)
        test._closers.append(self.sse)
        test.assertEqual(self.sse.status, 200)
        wait_live_subscribed(r, self.topic)
        self.sent = 0
        self.check()

    def check(self, timeout=10.0):
        self.sent += 1
        payload = "bystander-%d" % self.sent
        sid = harness.fcall_publish(self.r, self.topic, payload)
        ev = self.sse.next_event(timeout)
        self.test.assertEqual((split_cursor(ev.id)[0], ev.data), (sid, payload),
                              "the bystander subscriber missed or reordered an event")
