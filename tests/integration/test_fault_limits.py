"""Connection and request limits: past --max-connections (and --max-connections-per-ip) an SSE
client gets 200 + `retry:` + close, so EventSource keeps retrying; oversized headers, an
over-long path and a slowloris client are refused or closed; every case ends with the edge
alive and a normal client served."""

import socket
import subprocess
import time

import harness
from harness import HeraldTestCase, fcall_publish, parse_response, wait_live_subscribed, wait_until

_HELP = None


def has_flag(flag):
    global _HELP
    if _HELP is None:
        _HELP = subprocess.run([harness.HERALD_BIN, "--help"], capture_output=True,
                               text=True).stdout
    return flag in _HELP


metrics = harness.scrape  # the edge always has /metrics


class RawSSE:
    """An SSE request from a chosen source address, read as raw bytes."""

    def __init__(self, port, path, source="127.0.0.1", timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout * harness.SCALE)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream"
                           "\r\n\r\n" % path).encode())
        self.data = bytearray()
        self.closed = False

    def read_until(self, pred, timeout=10.0):
        """Reads until pred(self) or EOF or the deadline; returns pred(self)."""
        end = harness.deadline(timeout)
        while not pred(self) and not self.closed:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.data += chunk
        return pred(self)

    def response(self):
        return parse_response(bytes(self.data))

    def body(self):
        i = self.data.find(b"\r\n\r\n")
        return bytes(self.data[i + 4:]) if i >= 0 else b""

    def close(self):
        self.sock.close()


def has_retry(c):
    return b"retry: " in c.body() and c.body().endswith(b"\n\n")


class Limits(HeraldTestCase):

    def raw(self, port, path, source="127.0.0.1"):
        c = RawSSE(port, path, source)
        self._closers.append(c)
        return c

    def assert_refused_with_retry(self, c, what):
        """200 + a retry line + close, and nothing else."""
        self.assertTrue(c.read_until(lambda x: x.closed, 10), "%s: not closed; got %r" % (
            what, bytes(c.data[:300])))
        resp = c.response()
        self.assertIsNotNone(resp, "%s: no response head: %r" % (what, bytes(c.data[:300])))
        self.assertEqual(resp[0], 200, "%s: EventSource stops retrying on non-200" % what)
        self.assertEqual(resp[1].get("content-type"), "text/event-stream", what)
        self.assertRegex(c.body(), rb"^retry: \d+\n\n$", what)

    def assert_open(self, c, what):
        self.assertTrue(c.read_until(has_retry, 10), "%s: no retry line: %r" % (
            what, bytes(c.data[:300])))
        self.assertFalse(c.closed, "%s was closed" % what)
        self.assertEqual(c.response()[0], 200)

    def test_max_connections(self):
        srv = self.redis()
        r = self.client(srv)
        # --heartbeat 1: a closed client is noticed by a write (see test_closed_client_frees_its_slot)
        h = self.edge(srv, "edge-1", ["--max-connections", "5", "--heartbeat", "1"])
        topic = "fault.maxconn"
        keep = [self.raw(h.port, "/events/" + topic) for _ in range(5)]
        for i, c in enumerate(keep):
            self.assert_open(c, "client %d of 5" % (i + 1))
        sixth = self.raw(h.port, "/events/" + topic)
        self.assert_refused_with_retry(sixth, "6th client")
        # The five still get events.
        wait_live_subscribed(r, topic)
        fcall_publish(r, topic, "still-served")
        for c in keep:
            self.assertTrue(c.read_until(lambda x: b"data: still-served\n\n" in x.data, 10))
        m = metrics(h.port)
        self.assertGreaterEqual(m.get('herald_rejected_total{reason="max_connections"}', 0), 1, m)
        self.assertEqual(sum(v for k, v in m.items() if k.split("{")[0] == "herald_connections"),
                         5, m)
        # A slot frees up: a normal client is served again.
        keep[0].close()
        wait_until(lambda: self.try_serving(h), 10, what="a client served after a slot freed")
        harness.log("max-connections 5: 6th got 200 + retry + close; metrics checked")

    def test_closed_client_frees_its_slot(self):
        """A client that closes its connection gives its slot back promptly, not only at the
        next heartbeat (15 s by default): a browser reload must not count twice."""
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--max-connections", "2"])
        a = self.raw(h.port, "/events/fault.slot")
        b = self.raw(h.port, "/events/fault.slot")
        self.assert_open(a, "first client")
        self.assert_open(b, "second client")
        a.close()
        t0 = time.monotonic()
        wait_until(lambda: self.try_serving(h), 3, what="the closed client's slot")
        harness.log("closed client's slot reused after %.2fs" % (time.monotonic() - t0))

    def try_serving(self, h):
        c = RawSSE(h.port, "/events/alive-check")
        try:
            c.read_until(has_retry, 5)
            c.read_until(lambda x: x.closed, 0.3)
            return has_retry(c) and not c.closed
        finally:
            c.close()

    def test_max_connections_per_ip(self):
        if not has_flag("--max-connections-per-ip"):
            self.skipTest("herald has no --max-connections-per-ip yet")
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--max-connections-per-ip", "3", "--heartbeat", "1"])
        topic = "fault.perip"
        # Clients of this test come from 127.0.0.3: the harness's own readiness probes come
        # from 127.0.0.1, and a probe connection still closing would hold one of the slots.
        src = "127.0.0.3"
        keep = [self.raw(h.port, "/events/" + topic, src) for _ in range(3)]
        for i, c in enumerate(keep):
            self.assert_open(c, "%s client %d of 3" % (src, i + 1))
        fourth = self.raw(h.port, "/events/" + topic, src)
        self.assert_refused_with_retry(fourth, "4th client from " + src)
        for i, c in enumerate(keep):  # still served after the 4th was turned away
            self.assertTrue(c.read_until(lambda x: b": hb" in bytes(x.data), 5),
                            "%s client %d lost its stream" % (src, i + 1))
        other = self.raw(h.port, "/events/" + topic, "127.0.0.4")
        self.assert_open(other, "client from 127.0.0.4")
        m = metrics(h.port)
        self.assertGreaterEqual(m.get('herald_rejected_total{reason="per_ip"}', 0), 1, m)
        self.assertEqual(m.get('herald_rejected_total{reason="max_connections"}'), 0,
                         "a per-address refusal is counted under its own reason only")
        keep[0].close()

        def served_again():
            c = self.raw(h.port, "/events/alive-check", src)
            c.read_until(has_retry, 5)
            c.read_until(lambda x: x.closed, 0.3)
            ok = has_retry(c) and not c.closed
            c.close()
            return ok
        wait_until(served_again, 10, what="a %s client after a slot freed" % src)

    def test_per_ip_slots_are_given_back(self):
        """Short requests (health checks from a load balancer) give their per-address slot
        back when they end: the limit counts open connections, not requests ever made."""
        if not has_flag("--max-connections-per-ip"):
            self.skipTest("herald has no --max-connections-per-ip yet")
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--max-connections-per-ip", "3"])
        codes = []
        for _ in range(10):
            try:
                codes.append(harness.http_get(h.port, "/healthz", timeout=2)[0])
            except OSError as e:
                codes.append(type(e).__name__)
        self.assertEqual(codes, [200] * 10, "10 sequential /healthz with a per-IP limit of 3")

    def test_huge_headers(self):
        srv = self.redis()
        h = self.edge(srv)
        hdrs = "".join("X-Pad-%d: %s\r\n" % (i, "a" * 1000) for i in range(100))
        req = ("GET /events/t HTTP/1.1\r\nHost: x\r\n%s\r\n" % hdrs).encode()
        self.assertGreater(len(req), 100000)
        out = harness.raw_request(h.port, req, timeout=10)
        resp = parse_response(out)
        if resp is not None:  # an answer is fine as long as it is a refusal
            self.assertTrue(400 <= resp[0] < 500, "100 KB of headers answered %r" % (out[:200],))
        self.assert_serving(h)
        if has_flag("--max-header-bytes"):
            # Just under the limit is served; just over is refused.
            h2 = self.edge(srv, "edge-2", ["--max-header-bytes", "2048"])
            base = "GET /events/t HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
            small = base.replace("X-Pad: ", "X-Pad: " + "a" * (1500 - len(base)))
            big = base.replace("X-Pad: ", "X-Pad: " + "a" * (2600 - len(base)))
            s = socket.create_connection(("127.0.0.1", h2.port), timeout=5 * harness.SCALE)
            try:
                s.sendall(small.encode())
                got = b""
                while b"retry:" not in got:
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "1500 bytes of headers were refused: %r" % got)
                    got += chunk
                self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
            finally:
                s.close()
            out = harness.raw_request(h2.port, big.encode(), timeout=5)
            resp = parse_response(out)
            self.assertTrue(resp is None or 400 <= resp[0] < 500,
                            "2600 bytes of headers over a 2048 limit: %r" % (out[:200],))
            self.assert_serving(h2)
        harness.log("100 KB of headers: %r" % (out[:40],))

    def test_slowloris(self):
        if not has_flag("--handshake-timeout"):
            self.skipTest("herald has no --handshake-timeout yet")
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--handshake-timeout", "2"])
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        self._closers.append(s)
        s.sendall(b"GET /events/t HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        header = b"X-Slow: " + b"a" * 60
        closed_after = None
        s.settimeout(1.0)  # one byte per second, the attack's pace
        for i in range(len(header)):
            if time.monotonic() - t0 > 15:  # long enough to see when it does close
                break
            try:
                s.sendall(header[i:i + 1])
                data = s.recv(4096)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            if not data or b"HTTP/1.1 4" in data:
                closed_after = time.monotonic() - t0
                break
        self.assertIsNotNone(closed_after, "a slowloris client was still open after %.1fs "
                             "with --handshake-timeout 2" % (time.monotonic() - t0))
        # The edge's own timer: a loaded (sanitizer) build may add a little, not seconds.
        self.assertLess(closed_after, 2 + 1.0 * harness.SCALE,
                        "slowloris closed only after %.1fs with --handshake-timeout 2" %
                        closed_after)
        self.assert_serving(h)
        harness.log("slowloris closed after %.1fs (--handshake-timeout 2)" % closed_after)
        m = metrics(h.port)
        self.assertGreaterEqual(m.get('herald_rejected_total{reason="incomplete_request"}', 0),
                                1, "the cut-off is counted: %r" % m)

    def test_long_path(self):
        srv = self.redis()
        h = self.edge(srv)
        path = "/events/" + "a" * 2992
        self.assertEqual(len(path), 3000)
        out = harness.raw_request(h.port, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        resp = parse_response(out)
        self.assertIsNotNone(resp, "no answer to a 3000-byte path: %r" % (out[:200],))
        self.assertIn(resp[0], (400, 414), out[:300])
        self.assert_serving(h)


if __name__ == "__main__":
    harness.main()
