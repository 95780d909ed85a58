"""Hostile admission: sockets that never finish a request, a process out of file descriptors
and a service thread that is stuck while the edge drains.

- idle or slow (slowloris) sockets by the thousand must not keep /healthz or a new subscriber
  waiting: every socket is counted from accept, a request head has a total deadline
  (--handshake-timeout) that a byte now and then does not extend, and header tables are not a
  scarce pool;
- with a low RLIMIT_NOFILE the edge derives its connection limit from it, never reaches EMFILE
  through its own clients, does not spin when accept() fails anyway, and keeps answering;
- after SIGTERM, --drain-timeout ends the process even when a service thread is stuck.
"""

import ctypes
import os
import signal
import socket
import subprocess
import time
import unittest

import harness
from harness import HeraldTestCase, SSEClient, http_get, scrape
from hostile import Bystander, assert_idle

FLOOD = 3000  # idle sockets: many times lws' old pool of 256 header tables per thread


def connect(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def timed_healthz(test, h, limit, what):
    """GET /healthz; asserts 200 within `limit` seconds (times SCALE); returns the time."""
    t0 = time.monotonic()
    st, _, _ = http_get(h.port, "/healthz", timeout=30)
    took = time.monotonic() - t0
    test.assertEqual(st, 200)
    test.assertLess(took, limit * harness.SCALE, "%s: /healthz took %.2fs" % (what, took))
    return took


def timed_sse(test, h, limit, what, topic="admission.new"):
    """A new SSE subscriber gets 200 and its retry line within `limit` seconds (times SCALE)."""
    t0 = time.monotonic()
    c = SSEClient(h.port, "/events/" + topic, timeout=30)
    try:
        test.assertEqual(c.status, 200)
        c.wait_retry(30)
    finally:
        c.close()
    took = time.monotonic() - t0
    test.assertLess(took, limit * harness.SCALE, "%s: a new subscriber took %.2fs" % (what, took))
    return took


def closed_by_peer(s):
    """True when the edge closed the socket (EOF, reset, or an error answer then EOF)."""
    s.setblocking(False)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def threads_of(pid):
    """{tid: comm} of a process."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[int(tid)] = f.read().strip()
        except OSError:
            pass
    return out


class Freezer:
    """Stops ONE thread of another process (SIGSTOP would stop them all): PTRACE_SEIZE then
    PTRACE_INTERRUPT put just that thread in a ptrace stop until we detach or exit."""

    PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207

    def __init__(self, tid):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.restype = ctypes.c_long
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                     ctypes.c_void_p]
        self.tid = tid
        if self.libc.ptrace(self.PTRACE_SEIZE, tid, None, None) != 0:
            raise OSError(ctypes.get_errno(), "PTRACE_SEIZE %d" % tid)
        if self.libc.ptrace(self.PTRACE_INTERRUPT, tid, None, None) != 0:
            raise OSError(ctypes.get_errno(), "PTRACE_INTERRUPT %d" % tid)
        os.waitpid(tid, 0x40000000)  # __WALL: the thread is in its ptrace stop

    def reap(self):
        """Waits (without blocking) for the traced thread's end: until its tracer does, the
        parent is not told that the process exited."""
        try:
            os.waitpid(self.tid, 0x40000000 | os.WNOHANG)
        except ChildProcessError:
            pass

    def state(self):
        try:
            with open("/proc/%d/status" % self.tid) as f:
                for line in f:
                    if line.startswith("State:"):
                        return line.split()[1]
        except OSError:
            return "gone"
        return "?"


class PrlimitHerald(harness.Herald):
    """herald started under `prlimit --nofile=N:N` (prlimit execs it: same pid)."""

    nofile = 256

    def argv(self):
        return ["prlimit", "--nofile=%d:%d" % (self.nofile, self.nofile), "--"] + super().argv()


class Admission(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)

    def flood(self, port, n, source="127.0.0.1", first=b""):
        socks = []
        for _ in range(n):
            s = connect(port, source)
            if first:
                s.sendall(first)
            socks.append(s)
            self._closers.append(s)
        return socks

    def drip(self, socks, byte, end, each_round=None):
        """Sends `byte` on every socket still open every 0.5 s until none is or the monotonic
        time `end`; returns those still open."""
        open_ = list(socks)
        while open_ and time.monotonic() < end:
            for s in list(open_):
                try:
                    s.sendall(byte)
                except OSError:
                    open_.remove(s)
                    continue
                if closed_by_peer(s):
                    open_.remove(s)
            if each_round:
                each_round()
            time.sleep(0.5)
        return open_

    # ---- defect 2: idle and slow sockets lock out new clients ----

    def test_idle_flood_does_not_lock_out(self):
        h = self.edge(self.srv, "edge-1", ["--threads", "1"])
        by = Bystander(self, h, self.r)
        socks = self.flood(h.port, FLOOD)
        time.sleep(0.5)  # every flood socket is accepted and waiting for its request
        took = timed_healthz(self, h, 1.5, "%d idle sockets" % FLOOD)
        took2 = timed_sse(self, h, 1.5, "%d idle sockets" % FLOOD)
        harness.log("with %d idle sockets: /healthz %.3fs, new SSE %.3fs" % (FLOOD, took, took2))
        by.check()
        m = scrape(h.port)
        self.assertGreaterEqual(m.get("herald_sockets", 0), FLOOD, m)
        for s in socks:
            s.close()
        harness.wait_until(lambda: scrape(h.port)["herald_sockets"] <= 3, 10,
                           what="the socket count back to the bystander's")
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_slowloris_flood_total_head_deadline(self):
        """400 sockets sending one header byte every 0.5 s: each is cut --handshake-timeout
        after it was accepted (the bytes do not extend it), and meanwhile new clients are
        served at once."""
        n, hto = 400, 3
        h = self.edge(self.srv, "edge-1", ["--threads", "1", "--handshake-timeout", str(hto)])
        by = Bystander(self, h, self.r)
        t0 = time.monotonic()
        socks = self.flood(h.port, n, first=b"GET /events/x HTTP/1.1\r\nHost: x\r\nX-S: ")
        healthz = []

        def once():
            if not healthz:
                healthz.append(timed_healthz(self, h, 1.5, "slowloris flood"))
        open_ = self.drip(socks, b"a", t0 + hto + 2 * harness.SCALE + 1, once)
        took = time.monotonic() - t0
        self.assertEqual(len(open_), 0, "%d of %d slowloris sockets still open after %.1fs "
                         "with --handshake-timeout %d" % (len(open_), n, took, hto))
        harness.log("%d slowloris sockets all cut after %.1fs (--handshake-timeout %d), "
                    "/healthz meanwhile %.3fs" % (n, took, hto, healthz[0]))
        m = scrape(h.port)
        self.assertGreaterEqual(m.get('herald_rejected_total{reason="incomplete_request"}', 0),
                                n, m)
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_slow_publish_bodies_have_a_deadline(self):
        """Publishers (with the key) whose heads are whole and whose bodies come one byte now
        and then: lws' body timeout starts again at every byte, so each held its socket for
        hours (3,000 of them: +216 MiB, and at the socket limit new clients were refused, a
        socket under way not being evictable). Each body is due --handshake-timeout after its
        head: cut then, counted incomplete, nothing stored; a whole body within it is stored."""
        n, hto = 200, 2
        h = self.edge(self.srv, "edge-1", ["--threads", "1", "--handshake-timeout", str(hto),
                                           "--publish-key", "k"])
        by = Bystander(self, h, self.r)
        head = (b"POST /publish/slow.body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                b"Content-Length: 1000\r\n\r\n")
        t0 = time.monotonic()
        socks = self.flood(h.port, n, first=head + b"x" * 100)
        open_ = self.drip(socks, b"y", t0 + hto + 3 * harness.SCALE + 1)
        took = time.monotonic() - t0
        self.assertEqual(len(open_), 0, "%d of %d slow bodies still open after %.1fs with "
                         "--handshake-timeout %d" % (len(open_), n, took, hto))
        self.assertEqual(harness.xrange(self.r, "slow.body"), [], "a cut body was stored")
        m = scrape(h.port)
        self.assertGreaterEqual(m.get('herald_rejected_total{reason="incomplete_request"}', 0),
                                n, m)
        # a body sent in pieces that ends within the deadline is stored
        s = connect(h.port)
        self._closers.append(s)
        s.sendall(head)
        for _ in range(4):
            time.sleep(0.2)
            s.sendall(b"z" * 250)
        s.settimeout(5 * harness.SCALE)
        self.assertIn(b" 200 ", s.recv(4096))
        self.assertEqual(len(harness.xrange(self.r, "slow.body")), 1)
        by.check()
        self.assert_serving(h)

    def test_per_ip_idle_sockets_cut_early(self):
        """Past --max-connections-per-ip, an address's sockets that send nothing are cut within
        a second (not after --handshake-timeout), and another address is served."""
        h = self.edge(self.srv, "edge-1", ["--threads", "1", "--max-connections-per-ip", "20",
                                           "--handshake-timeout", "30"])
        by = Bystander(self, h, self.r)
        socks = self.flood(h.port, 200, source="127.0.0.3")
        t0 = time.monotonic()
        harness.wait_until(lambda: sum(closed_by_peer(s) for s in socks) >= 180, 5,
                           what="idle sockets past the per-address limit cut")
        harness.log("per-address: idle sockets past the limit cut within %.2fs" %
                    (time.monotonic() - t0))
        timed_healthz(self, h, 1.0, "per-address flood")
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_connect_close_churn_and_half_open(self):
        """Connections opened and closed at once, or half-closed without a request, leave no
        socket counted and the edge idle."""
        h = self.edge(self.srv, "edge-1", ["--threads", "2"])
        by = Bystander(self, h, self.r)
        for _ in range(2000):
            connect(h.port).close()
        half = []
        for _ in range(200):
            s = connect(h.port)
            s.shutdown(socket.SHUT_WR)
            half.append(s)
            self._closers.append(s)
        harness.wait_until(lambda: all(closed_by_peer(s) for s in half), 10,
                           what="half-open sockets closed by the edge")
        harness.wait_until(lambda: scrape(h.port)["herald_sockets"] <= 3, 10,
                           what="the socket count back to the bystander's")
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    # ---- defect 13: file descriptors run out ----

    def test_low_nofile_flood(self):
        """Under `prlimit --nofile=256`: the connection limit comes from the descriptor limit,
        idle sockets and subscribers far past it leave /healthz answered, the edge idle and
        the bystander served; new clients come in once the flood is gone."""
        h = PrlimitHerald(self.srv.port, "edge-1", ["--threads", "1"])
        self._heralds.append(h)
        by = Bystander(self, h, self.r)
        subs = []
        for i in range(300):  # full subscribers: past the limit they get 200 + retry + close
            try:
                c = SSEClient(h.port, "/events/flood", timeout=10)
            except OSError:
                continue
            subs.append(c)
            self._closers.append(c)
        socks = self.flood(h.port, 1000)
        time.sleep(0.5)
        timed_healthz(self, h, 1.0, "descriptor limit")
        assert_idle(self, h)
        by.check()
        m = scrape(h.port)
        self.assertLess(m["herald_socket_limit"], 256, m)
        self.assertLess(m["herald_connection_limit"], m["herald_socket_limit"], m)
        self.assertRegex(h.log(), r'"connection_limit":\s*%d' % m["herald_connection_limit"])
        self.assertLessEqual(m["herald_sockets"], m["herald_socket_limit"] + 64, m)
        self.assertGreater(m['herald_rejected_total{reason="max_connections"}'] +
                           m['herald_rejected_total{reason="socket_limit"}'] +
                           m['herald_rejected_total{reason="evicted"}'], 0, m)
        self.assertNotIn("Too many open files", h.log())
        for s in socks + subs:
            s.close()
        timed_sse(self, h, 1.0, "after the flood")
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_keepalive_idle_at_socket_limit(self):
        """Sockets that made one request and then sit idle on a kept-alive connection, past
        the socket limit: the one idle longest makes room, so /healthz is still answered."""
        h = PrlimitHerald(self.srv.port, "edge-1", ["--threads", "1"])
        self._heralds.append(h)
        by = Bystander(self, h, self.r)
        kept = []
        for _ in range(300):
            try:
                s = connect(h.port)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b"200" not in s.recv(4096):
                    s.close()
                    continue
            except OSError:
                continue
            kept.append(s)
            self._closers.append(s)
        self.assertGreater(len(kept), 100)
        time.sleep(0.5)
        timed_healthz(self, h, 1.5, "idle kept-alive sockets at the socket limit")
        timed_sse(self, h, 1.5, "idle kept-alive sockets at the socket limit")
        m = scrape(h.port)
        self.assertGreater(m['herald_rejected_total{reason="evicted"}'], 0, m)
        self.assertEqual(m['herald_rejected_total{reason="incomplete_request"}'], 0, m)
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_emfile_at_run_time_does_not_spin(self):
        """The descriptor limit lowered under a running edge (another cause of EMFILE than
        its own clients): accept pauses instead of spinning, and serves again once
        descriptors are free."""
        h = self.edge(self.srv, "edge-1", ["--threads", "1"])
        by = Bystander(self, h, self.r)
        nfd = len(os.listdir("/proc/%d/fd" % h.proc.pid))
        lim = nfd + 20
        subprocess.run(["prlimit", "--pid", str(h.proc.pid), "--nofile=%d:%d" % (lim, lim)],
                       check=True)
        socks = self.flood(h.port, 300)
        time.sleep(1)
        assert_idle(self, h)
        by.check()
        for s in socks:
            s.close()
        harness.wait_until(lambda: http_get(h.port, "/healthz", timeout=2)[0] == 200, 15,
                           what="/healthz once the flood is gone")
        m = scrape(h.port)
        self.assertGreater(m["herald_accept_pauses_total"], 0, m)
        by.check()
        assert_idle(self, h)
        self.assert_serving(h)

    # ---- defect 14: a stuck edge ignores its drain timeout ----

    def test_drain_deadline_with_a_stuck_service_thread(self):
        drain = 2
        h = self.edge(self.srv, "edge-1", ["--threads", "2", "--drain-timeout", str(drain)])
        by = Bystander(self, h, self.r)
        by.check()
        names = threads_of(h.proc.pid)
        svc = sorted(t for t, n in names.items() if n.startswith("hb-svc"))
        self.assertEqual(len(svc), 2, "service threads are named hb-svc-N: %r" % names)
        fz = Freezer(svc[0])
        self.assertEqual(fz.state(), "t", "the service thread is in a ptrace stop")
        t0 = time.monotonic()
        h.kill(signal.SIGTERM)
        code = None
        end = t0 + drain + 10 * harness.SCALE
        while time.monotonic() < end:
            fz.reap()
            code = h.proc.poll()
            if code is not None:
                break
            time.sleep(0.05)
        took = time.monotonic() - t0
        self.assertIsNotNone(code, "edge still running %.1fs after SIGTERM with "
                             "--drain-timeout %d and a stuck service thread" % (took, drain))
        h.exit_code = code
        harness.log("stuck service thread: exited with %s after %.1fs" % (code, took))
        self.assertEqual(code, 3, "the watchdog's exit code")
        self.assertGreaterEqual(took, drain)
        self.assertLess(took, drain + 3 + 2 * harness.SCALE)
        self.assertIn("drain deadline passed", h.log())


if __name__ == "__main__":
    unittest.main()
