"""--idle-timeout: a keep-alive HTTP connection that sends nothing after its answer is closed
after the configured seconds; an SSE stream (an answer still in progress) is not."""

import socket
import time

import harness
from harness import HeraldTestCase, wait_until


class IdleTimeout(HeraldTestCase):

    def test_idle_keepalive_closed_sse_kept(self):
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--idle-timeout", "1", "--heartbeat", "1"])
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        s.settimeout(10)
        while not first.endswith(b"\r\n\r\nok\n"):  # the whole answer, head and body
            chunk = s.recv(4096)
            self.assertTrue(chunk, "closed before the answer: %r" % first)
            first += chunk
        self.assertTrue(first.startswith(b"HTTP/1.1 200"), first)
        sse = self.sse(h.port, "/events/idle.t")
        t0 = time.monotonic()
        s.settimeout(10)
        rest = s.recv(4096)  # b"" once the edge closed the idle connection
        waited = time.monotonic() - t0
        self.assertEqual(rest, b"", "idle keep-alive connection got data: %r" % rest)
        harness.log("idle keep-alive connection closed after %.2fs" % waited)
        self.assertLess(waited, 8, "idle connection kept %.1fs with --idle-timeout 1" % waited)
        # the SSE stream outlives the idle timeout: heartbeats keep coming
        def beats():
            sse.pump(0.2)
            return len(sse.comments) >= 3
        wait_until(beats, 10, what="SSE heartbeats past the timeout")
        self.assertFalse(sse.closed, "the SSE stream was closed by the idle timeout")
        s.close()


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
