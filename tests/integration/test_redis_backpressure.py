"""Redis that stops reading while the edge has more to write to it than the socket takes.

The edge writes the commands it queues for Redis once per loop turn, straight from its Redis
connection's deferred write (edge/rconn.c); only what the socket does not take waits for
EPOLLOUT. With Redis stopped (SIGSTOP) and 24 publishes of 1 MiB waiting, most of that output
cannot be written: the edge must wait for the socket without spinning (a deferred write that
rescheduled itself would hold a core), and once Redis runs again every publish must be stored
exactly once, byte for byte, and answered 200."""

import os
import signal
import threading
import time

import harness
from harness import HeraldTestCase, http_get, wait_until

KEY = "bp-key"
N = 24
SIZE = 1024 * 1024


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


class RedisBackpressure(HeraldTestCase):

    def test_publishes_wait_for_a_stopped_redis_without_spinning(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--ingest", "off", "--publish-key", KEY,
                                 "--max-message-bytes", str(SIZE)])
        bodies = [bytes([ord("a") + i % 26]) * (SIZE - 16) + b"%016d" % i for i in range(N)]
        results = [None] * N

        def publish(i):
            try:
                results[i] = http_get(h.port, "/publish/bp.%d" % i, method="POST",
                                      body=bodies[i], timeout=60,
                                      headers={"Authorization": "Bearer " + KEY})
            except Exception as e:  # reported below
                results[i] = e

        srv.proc.send_signal(signal.SIGSTOP)
        try:
            ts = [threading.Thread(target=publish, args=(i,)) for i in range(N)]
            for t in ts:
                t.start()
            # the bodies are read and the commands queued for Redis: 24 MiB, which takes an
            # ASan build on a loaded machine more than a second; a window of 0.3 s with
            # under 0.05 s of CPU says it is done (an edge that spins never gets one: after
            # 10 s the measurement below runs anyway and fails)
            deadline = time.monotonic() + 10 * harness.SCALE
            while time.monotonic() < deadline:
                w0 = cpu_s(h.proc.pid)
                time.sleep(0.3)
                if cpu_s(h.proc.pid) - w0 < 0.05:
                    break
            c0 = cpu_s(h.proc.pid)
            time.sleep(1.5)
            spent = cpu_s(h.proc.pid) - c0
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        self.assertLess(spent, 0.5, "the edge used %.2f s of CPU in 1.5 s waiting for Redis"
                        % spent)
        for t in ts:
            t.join(60)
        for i, res in enumerate(results):
            self.assertNotIsInstance(res, Exception, "publish %d: %r" % (i, res))
            self.assertEqual(res[0], 200, "publish %d answered %r" % (i, res[:1]))
        for i in range(N):
            got = harness.xrange(r, "bp.%d" % i)
            self.assertEqual(len(got), 1, "bp.%d: %d entries" % (i, len(got)))
            self.assertEqual(got[0][1]["d"], bodies[i], "bp.%d: the stored bytes" % i)


if __name__ == "__main__":
    harness.main()
