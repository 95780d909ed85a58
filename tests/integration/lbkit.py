"""Load-balancer helpers for the integration tests (Python 3 standard library only).

HAProxy runs on deploy/haproxy.cfg, the same file docker-compose.yml mounts and deploy/local.sh
uses: only the HERALD_LB_BIND / HERALD_EDGE_<n> / HERALD_LB_STATS_SOCKET variables differ.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import SRC, SSEClient, _LIVE, _LIVE_LOCK, _tail, deadline, free_port, log

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CONFIG = os.path.join(SRC, "deploy", "haproxy.cfg")


class HAProxy:
    """haproxy -W -db -f deploy/haproxy.cfg on a free loopback port, balancing over `edges`
    (harness.Herald objects, server i+1 = edges[i]), with an admin socket in its temp dir."""

    def __init__(self, edges):
        self.edges = list(edges)
        self.dir = tempfile.mkdtemp(prefix="herald-it-lb-")
        self.sock_path = os.path.join(self.dir, "admin.sock")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.port = None
        self.proc = None
        self.start()

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HERALD_EDGE_") and not k.startswith("HERALD_LB_")}
        env["HERALD_LB_BIND"] = "127.0.0.1:%d" % self.port
        env["HERALD_LB_STATS_SOCKET"] = self.sock_path
        for i, h in enumerate(self.edges):
            env["HERALD_EDGE_%d" % (i + 1)] = "127.0.0.1:%d" % h.port
        return env

    def start(self):
        for _ in range(4):
            self.port = free_port()
            logf = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen([HAPROXY, "-W", "-db", "-f", CONFIG], env=self.env(),
                                             stdout=logf, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            finally:
                logf.close()
            with _LIVE_LOCK:
                _LIVE.add(self.proc)
            end = deadline(10)
            while time.monotonic() < end and self.proc.poll() is None:
                if harness.port_open(self.port) and os.path.exists(self.sock_path):
                    return
                time.sleep(0.05)
            lost = re.search(r"cannot bind|Address already in use", _tail(self.log_path))
            self.stop()
            if not lost:
                break
        raise AssertionError("haproxy did not start:\n" + _tail(self.log_path))

    def command(self, line):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.sock_path)
            s.sendall(line.encode() + b"\n")
            out = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out.decode("utf-8", "replace")
        finally:
            s.close()

    def servers(self):
        """{server name: (status, current sessions)} for backend "edges"."""
        lines = self.command("show stat").splitlines()
        cols = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(cols, line.split(",")))
            if row.get("pxname") == "edges" and row.get("svname") not in ("BACKEND", None):
                out[row["svname"]] = (row["status"], int(row.get("scur") or 0))
        return out

    def up_count(self):
        return sum(1 for st, _ in self.servers().values() if st == "UP")

    def server_of(self, h):
        return "edge%d" % (self.edges.index(h) + 1)

    def wait_status(self, h, status, timeout=10.0):
        name = self.server_of(h)
        harness.wait_until(lambda: self.servers().get(name, ("?",))[0] == status, timeout,
                           what="haproxy to see %s (%s) %s" % (name, h.node_id, status))

    def wait_all_up(self, timeout=15.0):
        n = len(self.edges)
        harness.wait_until(lambda: self.up_count() == n, timeout,
                           what="haproxy to see all %d edges UP" % n)

    def log(self):
        return _tail(self.log_path)

    def stop(self):
        harness.end_process(self.proc, term_timeout=10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Publisher(threading.Thread):
    """FCALL herald_publish at about `rate` events per second until stop(); `ids` holds the
    stream IDs Redis returned, in order (payload = "p<n>")."""

    def __init__(self, redis_port, topic, rate=50.0):
        super().__init__(daemon=True)
        self.r = harness.RedisClient(redis_port)
        self.topic = topic
        self.period = 1.0 / rate
        self.ids = []
        self.error = None
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        t = time.monotonic()
        try:
            while not self._halt.is_set():
                rid = harness.fcall_publish(self.r, self.topic, "p%d" % (len(self.ids) + 1))
                with self.lock:
                    self.ids.append(rid)
                t += self.period
                self._halt.wait(max(0.0, t - time.monotonic()))
        except Exception as e:  # reported by the test
            self.error = e

    def count(self):
        with self.lock:
            return len(self.ids)

    def wait_count(self, n, timeout=10.0):
        harness.wait_until(lambda: self.count() >= n, timeout, what="%d published events" % n)

    def stop(self):
        self._halt.set()
        self.join(10)
        self.r.close()
        if self.error:
            raise AssertionError("publisher failed: %r" % (self.error,))
        return list(self.ids)


class ResumingClient(threading.Thread):
    """An SSE client through the load balancer that behaves like EventSource: when its stream
    ends it reconnects at once (after `backoff` between failed attempts) with Last-Event-ID.
    Records every event id, and every connection as (monotonic start, X-Herald-Node, status).
    `reconnects` holds (monotonic time the stream ended, seconds until the next 200 head,
    seconds until the next event, node before, node after)."""

    def __init__(self, port, topic, name="client", backoff=0.05):
        super().__init__(daemon=True)
        self.port = port
        self.topic = topic
        self.name = name
        self.backoff = backoff
        self.ids = []
        self.data = []
        self.gaps = []
        self.conns = []
        self.reconnects = []
        self.errors = []
        self.node = None
        self.last_id = None
        self.cur = None
        self.error = None
        self._halt = threading.Event()
        self._connected = threading.Event()
        self.lock = threading.Lock()

    def _connect(self):
        headers = {"Last-Event-ID": self.last_id} if self.last_id else None
        c = SSEClient(self.port, "/events/" + self.topic, headers, timeout=5.0)
        node = c.headers.get("x-herald-node")
        with self.lock:
            self.conns.append((time.monotonic(), node, c.status))
        if c.status != 200:
            c.close()
            raise ConnectionError("status %d from %s" % (c.status, node))
        return c, node

    def run(self):
        ended = None
        prev = None
        try:
            while not self._halt.is_set():
                try:
                    c, node = self._connect()
                except (OSError, AssertionError, ConnectionError) as e:
                    self.errors.append(repr(e))
                    self._halt.wait(self.backoff)
                    continue
                self.cur = c
                self.node = node
                head_at = time.monotonic()
                self._connected.set()
                pending = None
                if ended is not None:
                    pending = [ended, head_at - ended, None, prev, node]
                    with self.lock:
                        self.reconnects.append(pending)
                while not self._halt.is_set() and not c.closed:
                    try:
                        chunk = c._recv(time.monotonic() + 0.1)
                    except OSError:
                        break
                    if chunk:
                        c._feed_body(chunk)
                    for ev in c._events:
                        if ev.event == "herald.gap":
                            self.gaps.append(ev.data)
                            continue
                        with self.lock:
                            self.ids.append(ev.id)
                            self.data.append(ev.data)
                        self.last_id = ev.id
                        if pending is not None and pending[2] is None:
                            pending[2] = time.monotonic() - pending[0]
                    c._events.clear()
                c.close()
                ended = time.monotonic()
                prev = node
        except Exception as e:  # reported by the test
            self.error = e

    def wait_connected(self, timeout=10.0):
        if not self._connected.wait(timeout * harness.SCALE):
            raise AssertionError("%s never connected: %s" % (self.name, self.errors[-3:]))

    def count(self):
        with self.lock:
            return len(self.ids)

    def stream_ids(self):
        """The stream part of each received cursor, in order."""
        with self.lock:
            return [harness.split_cursor(i)[0] for i in self.ids]

    def stop(self):
        self._halt.set()
        self.join(10)
        if self.cur is not None:
            self.cur.close()
        if self.error:
            raise AssertionError("%s failed: %r" % (self.name, self.error))


class LbTestCase(harness.HeraldTestCase):
    """Redis, three edges (extra `edge_args`) and HAProxy in front; ResumingClient and
    Publisher threads registered in self.threads are halted at the end, and HAProxy's log is
    shown when the test failed."""

    edge_args = ()

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.hs = self.edges(self.srv, 3, args=self.edge_args)
        self.lb = HAProxy(self.hs)
        self.threads = []

    def tearDown(self):
        for t in self.threads:
            t._halt.set()
        if self._failed():
            import sys
            sys.stderr.write("\n===== haproxy =====\n%s\n" % self.lb.log())
        self.lb.close()
        super().tearDown()

    def start_clients(self, topic, n=6):
        """n ResumingClients through the LB, each connected before the next starts."""
        clients = [ResumingClient(self.lb.port, topic, "client-%d" % i) for i in range(n)]
        self.threads += clients
        for c in clients:
            c.start()
            c.wait_connected()
        return clients
