"""Drain on SIGTERM: /readyz turns 503 "draining" at once, every SSE client gets a jittered
`retry:` line and then EOF, and the process exits with status 0 before --drain-timeout, even
with a client that stopped reading."""

import signal
import socket
import threading
import time

import harness
from harness import HeraldTestCase, fcall_publish, wait_live_subscribed

DRAIN_TIMEOUT = 5
RETRY_MS = 2000
CLIENTS = 8


class Drain(HeraldTestCase):

    def start(self, extra=()):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        h = self.edge(self.srv, "edge-1", ["--drain-timeout", str(DRAIN_TIMEOUT), "--retry-ms",
                                           str(RETRY_MS), "--threads", "2"] + list(extra))
        return h

    def watch_readyz(self, h, stop):
        """Polls /readyz as fast as it can from another thread; returns the list of answers."""
        seen = []

        def run():
            while not stop.is_set():
                try:
                    st, _, body = harness.http_get(h.port, "/readyz", timeout=1.0)
                    seen.append((st, body.strip().decode("utf-8", "replace")))
                except OSError:
                    seen.append(("refused", ""))
                    if not h.alive():
                        return
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return seen, t

    def wait_exit(self, h, t_sig):
        """Waits for the edge to exit; returns (exit code, seconds since the signal)."""
        end = t_sig + DRAIN_TIMEOUT + 5 * harness.SCALE
        while h.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.01)
        code = h.proc.poll()
        took = time.monotonic() - t_sig
        self.assertIsNotNone(code, "edge still running %.1fs after SIGTERM" % took)
        h.exit_code = code
        return code, took

    def test_sigterm_with_sse_clients(self):
        h = self.start()
        topic = "fault.drain"
        clients = [self.sse(h.port, "/events/" + topic) for _ in range(CLIENTS)]
        wait_live_subscribed(self.r, topic)
        fcall_publish(self.r, topic, "before")
        for c in clients:
            self.assertEqual(c.next_event().data, "before")
            self.assertEqual(c.retry, RETRY_MS)
        self.assertEqual(h.readyz(), 200)

        stop = threading.Event()
        seen, watcher = self.watch_readyz(h, stop)
        wait_until_seen = harness.deadline(5)
        while not seen and time.monotonic() < wait_until_seen:
            time.sleep(0.005)
        t_sig = time.monotonic()
        h.kill(signal.SIGTERM)

        retries = []
        for i, c in enumerate(clients):
            before = c.retry
            end = harness.deadline(DRAIN_TIMEOUT + 2)
            while not c.closed and time.monotonic() < end:
                c.pump(0.2)
            self.assertTrue(c.closed, "client %d not closed by the drain" % i)
            # the drain's retry line (the first one was the connect-time retry)
            tail = bytes(c.raw).rsplit(b"data: before\n\n", 1)[-1]
            self.assertRegex(tail, rb"^(: hb\n\n)*retry: \d+\n\n$", "client %d tail" % i)
            self.assertIsNotNone(c.retry)
            retries.append(c.retry)
            self.assertEqual(before, RETRY_MS)
        for ms in retries:
            self.assertGreaterEqual(ms, RETRY_MS // 2)
            self.assertLessEqual(ms, RETRY_MS * 3 // 2)
        code, took = self.wait_exit(h, t_sig)
        stop.set()
        watcher.join(5)
        self.assertEqual(code, 0, "exit status after the drain")
        self.assertLess(took, DRAIN_TIMEOUT, "exited only after --drain-timeout")
        answers = [a for a in seen if a[0] != "refused"]
        self.assertIn((503, "draining"), answers, "readyz answers: %r" % (sorted(set(seen),
                                                                               key=str),))
        first_draining = answers.index((503, "draining"))
        self.assertNotIn(200, [a[0] for a in answers[first_draining:]],
                         "ready again after draining started")
        harness.log("drain: %d clients closed, retry values %s, exit %d after %.2fs, readyz "
                    "answers %d (first 503 draining at #%d)" % (
                        len(clients), sorted(set(retries)), code, took, len(answers),
                        first_draining))

    def test_sigterm_with_a_stalled_client(self):
        """A client that stopped reading cannot take the retry line; the edge still exits 0
        by --drain-timeout, and the reading clients were closed cleanly."""
        h = self.start(["--client-queue-max", "100000", "--client-queue-bytes", "67108864"])
        topic = "fault.drain.stall"
        ok = self.sse(h.port, "/events/" + topic)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.connect(("127.0.0.1", h.port))
        self._closers.append(s)
        s.sendall(b"GET /events/" + topic.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_live_subscribed(self.r, topic)
        # Enough to fill the stalled client's socket buffers; the other client keeps reading.
        reply = self.r.pipeline([("FCALL", "herald_publish", 1, topic, "x" * 1000)
                                 for _ in range(300)])
        self.assertFalse([x for x in reply if isinstance(x, harness.RedisError)])
        ok.events(300)
        t_sig = time.monotonic()
        h.kill(signal.SIGTERM)
        end = harness.deadline(DRAIN_TIMEOUT + 2)
        while not ok.closed and time.monotonic() < end:
            ok.pump(0.2)
        self.assertTrue(ok.closed, "the reading client was not closed by the drain")
        self.assertRegex(bytes(ok.raw[-40:]), rb"retry: \d+\n\n$")
        code, took = self.wait_exit(h, t_sig)
        self.assertEqual(code, 0)
        # The edge's own deadline: allow what a loaded machine adds to leave the process.
        self.assertLess(took, DRAIN_TIMEOUT + 1.0 * harness.SCALE,
                        "exit took %.2fs with --drain-timeout %d" % (took, DRAIN_TIMEOUT))
        harness.log("drain with a stalled client: exit %d after %.2fs" % (code, took))

    def test_sigterm_while_redis_hangs(self):
        """Redis stops answering (SIGSTOP) while a client's history read is in flight; a
        SIGTERM must still end in a clean exit 0 by --drain-timeout: the reply that never
        came is dropped, not handed to a service thread that is already gone."""
        h = self.start()
        topic = "fault.drain.hang"
        live = self.sse(h.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        sid = fcall_publish(self.r, topic, "x")
        self.assertEqual(live.next_event().data, "x")
        self.srv.proc.send_signal(signal.SIGSTOP)
        try:
            resuming = self.sse(h.port, "/events/" + topic, {"Last-Event-ID": "0-1"})
            self.assertEqual(resuming.status, 200)
            t_sig = time.monotonic()
            h.kill(signal.SIGTERM)
            code, took = self.wait_exit(h, t_sig)
        finally:
            self.srv.proc.send_signal(signal.SIGCONT)
        self.assertEqual(code, 0, "exit status of a drain with a history read in flight:\n%s"
                         % (h.sanitizer_report() or h.log()[-3000:]))
        self.assertLess(took, DRAIN_TIMEOUT + 1.0 * harness.SCALE)
        harness.log("drain with Redis hung: exit %d after %.2fs (event %s)" % (code, took, sid))


if __name__ == "__main__":
    harness.main()
