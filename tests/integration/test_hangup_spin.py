"""A peer that hangs up must not make the edge spin (SSE streams and waiting long-polls). lws 4.1 does not read an h1
connection while its endless SSE response is open, yet polls its socket for input: once the
peer sent its FIN (readable for good, level-triggered) the service thread woke in a loop, and
the hang-up was found only by the next housekeeping tick (up to 250 ms), and then closed only
at lws' next timeout check. With clients coming and going all the time the thread ran at
79-94 % of a core for nothing (strace: thousands of wake-ups per hang-up). The SSE peer set
(ctimer.c) is now itself in the loop, and a peer found gone is closed at once. A waiting
long-poll is a connection lws does not read either: it spun the same way (91 % of a core) until
its timeout; it is in the peer set while it waits.

A request pipelined behind an SSE stream or a long-poll in the same packet is kept by lws in
its own buffer and serviced on every loop turn while the answer is open: one connection held
its thread at 100 % of a core for the stream's life. The edge now checks, once per such
answer on the next loop turn, whether lws keeps input it cannot serve: an SSE stream is
closed, a long-poll answered at once with Connection: close.

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


def sse_hanging_up(h, n):
    """An SSE client that got its stream, then sent a FIN (its socket stays open here)."""
    c = SSEClient(h.port, "/events/churn.%d" % (n % 8))
    c.wait_retry(10)
    c.sock.shutdown(socket.SHUT_WR)
    return c


def poll_hanging_up(h, n, s=None):
    """A long-poll that waits (its answer 60 s away), then its client sent a FIN."""
    s = s or socket.create_connection(("127.0.0.1", h.port))
    s.sendall(b"GET /poll/churn.%d?timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n" % (n % 8))
    wait_until(lambda: scrape(h.port)[POLL] >= 1, 10, what="the poll waiting")
    s.shutdown(socket.SHUT_WR)
    return s


def kept_alive_poll_hanging_up(h, n):
    """A keep-alive connection that long-polled before (answered), then waits in a second poll
    and its client sent a FIN: the second request's client joins the peer set as the first
    did (each request on a connection has a client record of its own)."""
    return poll_hanging_up(h, n, answered_poll(h, n))


def answered_poll(h, n):
    """A keep-alive connection whose first long-poll (timeout 0) was answered."""
    s = socket.create_connection(("127.0.0.1", h.port))
    s.sendall(b"GET /poll/churn.%d?timeout=0 HTTP/1.1\r\nHost: x\r\n\r\n" % (n % 8))
    s.settimeout(10)
    raw = b""
    while b"}" not in raw:
        chunk = s.recv(4096)
        assert chunk, "closed before the first answer"
        raw += chunk
    assert raw.startswith(b"HTTP/1.1 200"), raw[:60]
    return s


def poll_request_with_fin(h, n):
    """A kept-alive connection's second long-poll sent together with its client's FIN: the
    socket stays in the peer set between requests, so the hang-up may be seen before the
    request is served (and must still close the poll, not leave it waiting 60 s)."""
    s = answered_poll(h, n)
    s.sendall(b"GET /poll/churn.%d?timeout=60 HTTP/1.1\r\nHost: x\r\n\r\n" % (n % 8))
    s.shutdown(socket.SHUT_WR)
    return s


def sse_after_poll_hanging_up(h, n):
    """An SSE stream asked for on a connection that long-polled before (its socket joined the
    peer set for hang-ups only; the stream watches for input too), then its client's FIN."""
    s = answered_poll(h, n)
    s.sendall(b"GET /events/churn.%d HTTP/1.1\r\nHost: x\r\n\r\n" % (n % 8))
    raw = b""
    while b"retry:" not in raw:
        chunk = s.recv(4096)
        assert chunk, "closed before the stream began"
        raw += chunk
    s.shutdown(socket.SHUT_WR)
    return s


class HangupSpin(HeraldTestCase):

    def churn(self, make, gauge, what):
        """Clients made by make() one after the other for 3 s (one every ~20 ms) against a
        fresh edge: its CPU over that time stays far below a core, and each is closed."""
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--threads", "1"])
        wait_until(lambda: h.readyz() == 200, 10, what="ready")
        live = []
        c0, t0 = cpu_seconds(h.proc.pid), time.monotonic()
        while time.monotonic() < t0 + 3.0:
            live.append(make(h, len(live)))
            time.sleep(0.02)
        share = (cpu_seconds(h.proc.pid) - c0) / (time.monotonic() - t0)
        harness.log("%d %s hung up over 3 s: edge CPU %.0f%% of a core"
                    % (len(live), what, share * 100))
        self.assertGreater(len(live), 20, "the churn ran")
        self.assertLess(share, 0.3, "the edge spun on hung-up %s" % what)
        wait_until(lambda: scrape(h.port)[gauge] == 0, 10, what="every hung-up one closed")
        for c in live:
            c.close()

    def test_hung_up_sse_peers_do_not_spin_the_edge(self):
        self.churn(sse_hanging_up, SSE, "SSE clients")

    def test_hung_up_long_polls_do_not_spin_the_edge(self):
        self.churn(poll_hanging_up, POLL, "long-polls")

    def test_hung_up_kept_alive_long_polls_do_not_spin_the_edge(self):
        self.churn(kept_alive_poll_hanging_up, POLL, "kept-alive long-polls")

    def test_a_long_poll_sent_with_its_fin_is_closed(self):
        self.churn(poll_request_with_fin, POLL, "long-polls sent with their FIN")

    def test_an_sse_stream_after_a_long_poll_is_closed_on_hang_up(self):
        self.churn(sse_after_poll_hanging_up, SSE, "SSE streams after a long-poll")

    def pipelined(self, first):
        """One connection sending `first` and another request in one packet: the edge's CPU
        over 1.5 s after it, and all that connection received until the edge closed it."""
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--threads", "1"])
        wait_until(lambda: h.readyz() == 200, 10, what="ready")
        s = socket.create_connection(("127.0.0.1", h.port))
        self._closers.append(s)
        s.sendall(first + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        c0, t0 = cpu_seconds(h.proc.pid), time.monotonic()
        time.sleep(1.5)
        share = (cpu_seconds(h.proc.pid) - c0) / (time.monotonic() - t0)
        harness.log("a request pipelined behind %r: edge CPU %.0f%% of a core"
                    % (first[:20], share * 100))
        s.settimeout(10)
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        self.assertLess(share, 0.3, "the edge spun on the request pipelined behind it")
        self.assert_serving(h)
        return raw

    def test_a_request_pipelined_behind_an_sse_stream_closes_it(self):
        raw = self.pipelined(b"GET /events/pipe HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertNotIn(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain", raw,
                         "the pipelined request was not served")

    def test_a_request_pipelined_behind_a_long_poll_is_answered_and_closed(self):
        raw = self.pipelined(b"GET /poll/pipe?timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), raw[:200])
        self.assertIn(b"connection: close", head.lower(), head)
        self.assertIn(b'"events":[]', body, body)
        self.assertEqual(raw.count(b"HTTP/1.1"), 1, "the pipelined request was not served")


if __name__ == "__main__":
    harness.main()
