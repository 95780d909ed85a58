"""A peer that hangs up must not make the edge spin (SSE streams and waiting long-polls). lws 4.1 does not read an h1
connection while its endless SSE response is open, yet polls its socket for input: once the
peer sent its FIN (readable for good, level-triggered) the service thread woke in a loop, and
the hang-up was found only by the next housekeeping tick (up to 250 ms), and then closed only
at lws' next timeout check. With clients coming and going all the time the thread ran at
79-94 % of a core for nothing (strace: thousands of wake-ups per hang-up). The SSE peer set
(ctimer.c) is now itself in the loop, and a peer found gone is closed at once. A waiting
long-poll is a connection lws does not read either: it spun the same way (91 % of a core) until
its timeout; it is in the peer set while it waits.

Measured as the edge's CPU over a churn of SSE clients that each hang up with a FIN (a shutdown
of their write side, the socket kept open as a browser's half-close would): now about 1 %. The
bound (30 %) is far from both, on a loaded 2-core machine and under ASan."""

import socket
import time

import harness
from harness import HeraldTestCase, SSEClient, scrape, wait_until
from hostile import cpu_seconds

SSE = 'herald_connections{transport="sse"}'


POLL = 'herald_connections{transport="poll"}'


class HangupSpin(HeraldTestCase):

    def test_hung_up_sse_peers_do_not_spin_the_edge(self):
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--threads", "1"])
        wait_until(lambda: h.readyz() == 200, 10, what="ready")
        live = []
        c0, t0 = cpu_seconds(h.proc.pid), time.monotonic()
        end = t0 + 3.0
        n = 0
        while time.monotonic() < end:
            c = SSEClient(h.port, "/events/churn.%d" % (n % 8))
            c.wait_retry(10)
            c.sock.shutdown(socket.SHUT_WR)  # a FIN; the socket stays open on our side
            live.append(c)
            n += 1
            time.sleep(0.02)
        share = (cpu_seconds(h.proc.pid) - c0) / (time.monotonic() - t0)
        harness.log("%d SSE clients hung up over 3 s: edge CPU %.0f%% of a core"
                    % (n, share * 100))
        for c in live:
            c.close()
        self.assertGreater(n, 20, "the churn ran")
        self.assertLess(share, 0.3, "the edge spun on hung-up SSE peers")
        wait_until(lambda: scrape(h.port)[SSE] == 0, 10, what="every hung-up stream closed")

    def test_hung_up_long_polls_do_not_spin_the_edge(self):
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--threads", "1"])
        wait_until(lambda: h.readyz() == 200, 10, what="ready")
        live = []
        c0, t0 = cpu_seconds(h.proc.pid), time.monotonic()
        n = 0
        while time.monotonic() < t0 + 3.0:
            s = socket.create_connection(("127.0.0.1", h.port))
            s.sendall(b"GET /poll/churn.%d?timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n" % (n % 8))
            wait_until(lambda: scrape(h.port)[POLL] >= 1, 10, what="the poll waiting")
            s.shutdown(socket.SHUT_WR)  # gone before its answer (60 s away)
            live.append(s)
            n += 1
            time.sleep(0.02)
        share = (cpu_seconds(h.proc.pid) - c0) / (time.monotonic() - t0)
        harness.log("%d long-polls hung up over 3 s: edge CPU %.0f%% of a core"
                    % (n, share * 100))
        self.assertGreater(n, 20, "the churn ran")
        self.assertLess(share, 0.3, "the edge spun on hung-up long-polls")
        wait_until(lambda: scrape(h.port)[POLL] == 0, 10, what="every hung-up poll closed")
        for s in live:
            s.close()


if __name__ == "__main__":
    harness.main()
