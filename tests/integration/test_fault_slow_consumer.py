"""A stalled reader is cut off, nobody else waits for it, and it resumes exactly.

One client connects and stops reading (small SO_RCVBUF, small MSS so the edge's kernel send
buffer stays small too, never recv) while FAST_CLIENTS others on the same topic are served a
steady stream. The others get every event, in order; the stalled one is disconnected once its
queue passes --client-queue-max; the edge's RSS stays bounded; the stalled client then resumes
with the last id it had and gets exactly the events it missed.
"""

import os
import selectors
import socket
import time

import harness
from harness import HeraldTestCase, split_cursor, wait_live_subscribed

# 1000 is the goal; it stays well under 40 s in the ASan build (measured: about 8 s there,
# 6 s in release, on 2 cores), so the full count is used.
FAST_CLIENTS = int(os.environ.get("HERALD_FAULT_CLIENTS", "1000"))
EVENTS = 600
PAYLOAD = 200          # bytes per event
RATE = 200             # events per second
QUEUE_MAX = 192  # about 1 s of events: room for a loaded CI machine, far below EVENTS
TOPIC = "fault.slow"
RSS_GROWTH_MAX = 96 * 1024 * 1024  # bytes the edge may grow by while streaming
# Client source addresses: spread over 127.0.0.2-9 so a per-IP limit never applies here.
SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


metrics = harness.scrape  # the edge always has /metrics


def herald_flags():
    import subprocess
    return subprocess.run([harness.HERALD_BIN, "--help"], capture_output=True,
                          text=True).stdout


class MuxClient:
    """One SSE connection read by the multiplexer: checks the response head, then splits the
    body (the edge writes LF-only lines, no chunking) into (id, event, data) events."""

    def __init__(self, port, path, source, tune=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if tune:
            tune(self.sock)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream"
                           "\r\n\r\n" % path).encode())
        self.sock.setblocking(False)
        self.head = None
        self.buf = b""
        self.events = []
        self.retry = None
        self.closed = False

    def feed(self, chunk):
        if not chunk:
            self.closed = True
            return
        self.buf += chunk
        if self.head is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head, self.buf = self.buf[:i].decode("latin-1"), self.buf[i + 4:]
            assert self.head.startswith("HTTP/1.1 200"), self.head
            assert "chunked" not in self.head.lower(), self.head
        assert b"\r" not in self.buf, "the edge writes LF-only lines"
        blocks = self.buf.split(b"\n\n")
        self.buf = blocks.pop()
        for block in blocks:
            ev_id = ev_name = None
            data = []
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    continue
                field, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if field == b"id":
                    ev_id = value.decode()
                elif field == b"event":
                    ev_name = value.decode()
                elif field == b"data":
                    data.append(value)
                elif field == b"retry":
                    self.retry = int(value)
            if data:
                self.events.append((ev_id, ev_name, b"\n".join(data)))


class SlowConsumer(HeraldTestCase):

    def test_stalled_reader_is_cut_off_and_resumes(self):
        srv = self.redis()
        r = self.client(srv)
        # History pages must fit the queue (test_resume_longer_than_queue checks the default).
        # A capped kernel send buffer: without it the kernel may autotune the stalled
        # client's buffer past what the whole run sends, on a loaded machine.
        args = ["--client-queue-max", str(QUEUE_MAX), "--history-batch", str(QUEUE_MAX // 2),
                "--threads", "2", "--send-buffer", "16384"]
        if "--max-connections-per-ip" in herald_flags():
            args += ["--max-connections-per-ip", "4096"]
        # A small ASan quarantine, so that RSS measures what the edge holds, not what ASan
        # keeps of freed memory.
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"}
        h = self.edge(srv, "edge-1", args, env=env)
        t0 = time.monotonic()

        sel = selectors.DefaultSelector()
        fast = []
        try:
            for i in range(FAST_CLIENTS):
                c = MuxClient(h.port, "/events/" + TOPIC, SOURCES[i % len(SOURCES)])
                sel.register(c.sock, selectors.EVENT_READ, c)
                fast.append(c)

            def pump(until, timeout):
                end = harness.deadline(timeout)
                while not until():
                    if time.monotonic() >= end:
                        return False
                    for key, _ in sel.select(0.05):
                        c = key.data
                        try:
                            while True:
                                chunk = c.sock.recv(262144)
                                c.feed(chunk)
                                if not chunk:
                                    sel.unregister(c.sock)
                                    break
                        except BlockingIOError:
                            pass
                        except ConnectionResetError:
                            c.feed(b"")
                            sel.unregister(c.sock)
                return True

            ok = pump(lambda: all(c.retry is not None for c in fast), 30)
            self.assertTrue(ok, "%d of %d clients got their retry line" % (
                sum(c.retry is not None for c in fast), FAST_CLIENTS))
            wait_live_subscribed(r, TOPIC)
            t_connected = time.monotonic() - t0

            # The stalled client: tiny receive buffer, tiny MSS (so the edge's send buffer for
            # it stays tens of KB instead of MBs on loopback), reads only the first event.
            def stall(sock):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
            # A client without a cursor starts "from now", which can fall after the first
            # publish below: start it from a marker event instead, so it gets event 0 exactly.
            marker = harness.fcall_publish(r, TOPIC, b"marker")
            slow = MuxClient(h.port, "/events/%s?lastEventId=%s" % (TOPIC, marker), "127.0.0.1",
                             stall)
            s = slow.sock
            s.setblocking(True)
            self._closers.append(s)
            wait_live_subscribed(r, TOPIC)

            payloads = [("ev-%04d-" % i).encode() + b"x" * (PAYLOAD - 8) for i in range(EVENTS)]
            ids = [harness.fcall_publish(r, TOPIC, payloads[0])]
            s.settimeout(10 * harness.SCALE)
            while not slow.events:
                slow.feed(s.recv(65536))
                self.assertFalse(slow.closed, "stalled client closed before its first event")
            self.assertEqual(slow.events[0][2], payloads[0])
            first_cursor = slow.events[0][0]
            # From here on the stalled client never reads.

            base_rss = rss_bytes(h.proc.pid)
            peak_rss = [base_rss]
            pub_err = []

            t_pub = time.monotonic()
            th = harness.paced_publisher(srv.port, TOPIC, payloads[1:], RATE, ids, pub_err)

            def all_in():
                peak_rss[0] = max(peak_rss[0], rss_bytes(h.proc.pid))
                def n(c):  # events of this run (the marker, if the client had it, aside)
                    return len(c.events) - (1 if c.events and c.events[0][2] == b"marker" else 0)
                return not th.is_alive() and all(n(c) >= EVENTS or c.closed for c in fast)
            ok = pump(all_in, 60)
            th.join(5)
            self.assertEqual(pub_err, [])
            t_stream = time.monotonic() - t_pub
            self.assertTrue(ok, "fast clients still missing events: %r" % (
                sorted(len(c.events) for c in fast)[:5],))

            want = [(i, None, p) for i, p in zip(ids, payloads)]
            bad = 0
            for n, c in enumerate(fast):
                self.assertFalse(c.closed, "fast client %d was disconnected" % n)
                got = [(split_cursor(e[0])[0], e[1], e[2]) for e in c.events]
                if got[:1] == [(marker, None, b"marker")]:
                    got = got[1:]  # the fast clients were already live for the marker
                if got != want:
                    bad += 1
                    if bad == 1:
                        first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b) \
                            if any(a != b for a, b in zip(got, want)) else min(len(got), len(want))
                        self.fail("fast client %d: %d events, first difference at %d: got %r "
                                  "want %r" % (n, len(got), first, got[first:first + 1],
                                               want[first:first + 1]))
            self.assertEqual(bad, 0)

            # The stalled client was cut off: what it can still read ends in EOF.
            s.settimeout(None)
            s.setblocking(True)
            end = harness.deadline(15)
            while not slow.closed and time.monotonic() < end:
                s.settimeout(max(0.01, end - time.monotonic()))
                try:
                    slow.feed(s.recv(65536))
                except socket.timeout:
                    break
                except ConnectionResetError:
                    slow.feed(b"")
            self.assertTrue(slow.closed, "the stalled client was never disconnected (read %d "
                            "events)" % len(slow.events))
            got = [(split_cursor(e[0])[0], e[1], e[2]) for e in slow.events]
            self.assertEqual(got, want[:len(got)], "what the stalled client got is in order")
            self.assertLess(len(got), EVENTS, "it was cut off before the end")
            last_cursor = slow.events[-1][0]

            m = metrics(h.port)
            self.assertEqual(m.get("herald_slow_disconnects_total"), 1.0, m)
            self.assertEqual(m.get("herald_queue_drops_total", 0.0), 0.0, m)
            peak_rss[0] = max(peak_rss[0], rss_bytes(h.proc.pid))
            growth = peak_rss[0] - base_rss
            self.assertLess(growth, RSS_GROWTH_MAX,
                            "edge RSS grew by %.1f MB while streaming" % (growth / 2**20))

            # Resume with the last id it had: exactly the missing events, then nothing.
            c = self.sse(h.port, "/events/" + TOPIC, {"Last-Event-ID": last_cursor})
            missing = want[len(got):]
            replay = c.events(len(missing), timeout=20)
            self.assertEqual([(split_cursor(e.id)[0], e.event, e.data.encode())
                              for e in replay], missing)
            c.pump(0.5)
            self.assertEqual(c.pending(), [], "extra events after the resume")
            harness.log(
                "slow consumer: %d fast clients connected in %.1fs, %d events x %d B streamed "
                "in %.1fs, all in order; stalled client cut after %d events (first %s, last "
                "%s), resumed %d; edge RSS %.1f MB -> peak %.1f MB; metrics: %s" % (
                    FAST_CLIENTS, t_connected, EVENTS, PAYLOAD, t_stream, len(got),
                    first_cursor, last_cursor, len(replay), base_rss / 2**20,
                    peak_rss[0] / 2**20,
                    {k: v for k, v in m.items() if "slow" in k or "drops" in k}))
        finally:
            sel.close()
            for c in fast:
                c.sock.close()

    def test_resume_longer_than_queue(self):
        """A resume that misses more events than --client-queue-max, with the default
        --history-batch (500): the client must get them all (paged), not be cut off as slow
        on every attempt."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--client-queue-max", "16"])
        topic = "fault.slow.resume"
        ids = [harness.fcall_publish(r, topic, "e-%d" % i) for i in range(100)]
        c = self.sse(h.port, "/events/" + topic, {"Last-Event-ID": ids[0]})
        got = c.events(99, timeout=10)
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(ids[i], "e-%d" % i) for i in range(1, 100)])


if __name__ == "__main__":
    harness.main()
