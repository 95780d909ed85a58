"""The system under test and its faults: one redis-server, N herald edges, and (with network
faults) a user-space proxy on each edge->Redis link plus nftables rules.

Network topology (--net-faults): the whole run is in a private network namespace (run.py
re-executes itself under `unshare --net`), so every address is that namespace's loopback and
no rule can touch another process of the machine. Each edge reaches Redis through its own
proxy port P_i (edge -> 127.0.0.1:P_i -> proxy -> Redis) and serves clients on its own port
E_i. Per-link faults then need no veth pair: a partition is an nftables drop of every packet
to or from P_i (edge<->Redis) or E_i (clients<->edge) -- a real silent partition, TCP
retransmits and connects hang; packet loss is the same match with `numgen random mod 100 < N`;
bandwidth is a tc tbf per port (class Tc: an htb class per limit, selected
by u32 filters on the port); latency is added by the proxy, which delays every read by the
same amount (no netem in this kernel).
"""

import os
import signal
import socket
import subprocess
import threading
import time

import harness
from actors import PUBLISH_KEY
from harness import Herald, RedisClient, RedisServer

EDGE_ARGS = ["--heartbeat", "1", "--retry-ms", "300", "--lease-ms", "1000", "--threads", "2",
             "--history-max", "1000000", "--topic-linger", "2", "--drain-timeout", "2",
             "--history-batch", "50", "--publish-key", PUBLISH_KEY, "--log-level", "info"]


class Proxy:
    """A TCP proxy 127.0.0.1:port -> 127.0.0.1:target that can delay (ms) both directions.
    Threads only; closes everything on close()."""

    def __init__(self, target):
        self.target = target
        self.delay = 0.0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                b.settimeout(None)
            except OSError:
                a.close()
                continue
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns.append((a, b))
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
            threading.Thread(target=self._pipe, args=(b, a), daemon=True).start()

    def _pipe(self, src, dst):
        queue = []
        cv = threading.Condition()

        def reader():
            while True:
                try:
                    d = src.recv(65536)
                except OSError:
                    d = b""
                with cv:
                    queue.append((time.monotonic(), d))
                    cv.notify()
                if not d:
                    return
        threading.Thread(target=reader, daemon=True).start()
        while True:
            with cv:
                while not queue:
                    cv.wait()
                t, d = queue.pop(0)
            wait = t + self.delay / 1000.0 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not d:
                break
            try:
                dst.sendall(d)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def save_logs(self, dest):
        """Copy every edge's and Redis node's log into dest."""
        import shutil
        for h in self.edges:
            shutil.copy(h.log_path, os.path.join(dest, h.node_id + ".log"))
        nodes = [("redis", self.redis), ("redis-other", self.replica)] + [
            ("sentinel-%d" % i, sn) for i, sn in enumerate(self.sentinels)]
        for name, r in nodes:
            if r is not None and os.path.exists(r.log_path):
                shutil.copy(r.log_path, os.path.join(dest, "%s-%d.log" % (name, r.port)))

    def close(self):
        self.closed = True
        self.lsock.close()
        for a, b in self.conns:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


class Nft:
    """nftables rules of the run's namespace: one table, the active rules re-applied
    atomically (flush + add) on every change."""

    TABLE = "herald_checker"

    def __init__(self):
        self.rules = {}   # fault id -> [rule text]
        self._apply(create=True)

    def _apply(self, create=False):
        lines = []
        if create:
            lines += ["table inet %s {" % self.TABLE,
                      "  chain out { type filter hook output priority 0; policy accept; }",
                      "}"]
        lines.append("flush chain inet %s out" % self.TABLE)
        for rules in self.rules.values():
            for r in rules:
                lines.append("add rule inet %s out %s" % (self.TABLE, r))
        p = subprocess.run(["nft", "-f", "-"], input="\n".join(lines) + "\n",
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("nft failed: %s\n%s" % (p.stderr, "\n".join(lines)))

    def add(self, fid, port, loss=None):
        """Drop every packet (loss None) or loss% of the packets to or from `port`."""
        m = "numgen random mod 100 < %d " % loss if loss else ""
        self.rules[fid] = ["tcp dport %d %sdrop" % (port, m), "tcp sport %d %sdrop" % (port, m)]
        self._apply()

    def remove(self, fid):
        if self.rules.pop(fid, None) is not None:
            self._apply()

    def clear(self):
        self.rules = {}
        self._apply()

    def close(self):
        subprocess.run(["nft", "delete", "table", "inet", self.TABLE], capture_output=True)


class Tc:
    """Bandwidth limits per port with tc in the run's namespace: an htb root whose default
    class is unlimited; each limit is its own class with a tbf leaf (the shaper) and two u32
    filters (to and from the port) at their own priority, so that it can be removed alone.
    The namespace's loopback has MTU 1500 (run.py), so packets fit a small tbf burst."""

    def __init__(self):
        self.n = 10
        self.ids = {}
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
        self._tc("qdisc add dev lo root handle 1: htb default 1 r2q 100000")
        self._tc("class add dev lo parent 1: classid 1:1 htb rate 10gbit")

    @staticmethod
    def _tc(args):
        p = subprocess.run(["tc"] + args.split(), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("tc %s: %s" % (args, p.stderr.strip()))

    def add(self, fid, port, bytes_per_s):
        self.n += 1
        n = self.n
        self.ids[fid] = n
        self._tc("class add dev lo parent 1: classid 1:%d htb rate 10gbit" % n)
        self._tc("qdisc add dev lo parent 1:%d handle %d: tbf rate %dbit burst 4kb "
                 "latency 1000ms" % (n, n, bytes_per_s * 8))
        for d in ("dport", "sport"):
            self._tc("filter add dev lo parent 1: protocol ip prio %d u32 match ip %s %d 0xffff "
                     "flowid 1:%d" % (n, d, port, n))

    def remove(self, fid):
        n = self.ids.pop(fid, None)
        if n is None:
            return
        self._tc("filter del dev lo parent 1: prio %d" % n)
        self._tc("qdisc del dev lo parent 1:%d handle %d:" % (n, n))
        self._tc("class del dev lo classid 1:%d" % n)

    def clear(self):
        for fid in list(self.ids):
            self.remove(fid)

    def close(self):
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)


class World:
    """Redis, the edges, the proxies and the fault log. Every fault method notes itself in
    `faults` ({"t", "what", "until"}; wall clock) for the report and the checker."""

    def __init__(self, n_edges, net=False, sentinel=False):
        self.redis = RedisServer()
        self.redis_port = self.redis.port
        self.net = net
        self.proxies = [Proxy(self.redis_port) for _ in range(n_edges)] if net else []
        self.nft = Nft() if net else None
        self.tc = Tc() if net else None
        self.replica = None
        self.sentinels = []
        args = list(EDGE_ARGS)
        if sentinel:
            args += ["--redis", self._start_sentinels()]
        self.edges = []
        for i in range(n_edges):
            rp = self.proxies[i].port if net else self.redis_port
            self.edges.append(Herald(rp, "ck-%d" % (i + 1), args))
        self.down = set()          # edges killed/terminated and not restarted
        self.stopped = set()       # edges SIGSTOPped
        self.redis_up = True
        self.faults = []
        self.snapshots = []        # [{"t", "why", "topics": {topic: {"epoch", "entries"}}}]
        self.lock = threading.Lock()

    def note(self, what, until=None):
        f = {"t": time.time(), "what": what, "until": until}
        self.faults.append(f)
        return f

    def pick_edge(self, rng, want=None):
        """(port, node id) of a random edge that is not down (`want` if it is not)."""
        with self.lock:
            live = [i for i in range(len(self.edges)) if i not in self.down]
        if not live:
            return None, None
        i = want if want in live else rng.choice(live)
        return self.edges[i].port, self.edges[i].node_id

    # -- snapshots of what Redis stored --

    def snapshot(self, topics, why, pause=False):
        """XRANGE and epoch of every topic (under CLIENT PAUSE WRITE when pause, so nothing is
        stored between the snapshot and what follows, e.g. a restart that loses the data)."""
        with RedisClient(self.redis_port, timeout=5) as r:
            if pause:
                r.cmd("CLIENT", "PAUSE", "5000", "WRITE")
            snap = {"t": time.time(), "why": why, "topics": {}}
            for t in topics:
                ep = r.cmd("GET", "herald:{%s}:epoch" % t)
                ents = [[eid, f.get("d", b"").decode("utf-8", "replace")]
                        for eid, f in harness.xrange(r, t)]
                snap["topics"][t] = {"epoch": ep.decode() if ep else None, "entries": ents}
        self.snapshots.append(snap)
        return snap

    # -- process faults --

    def edge_kill(self, i, sig):
        h = self.edges[i]
        with self.lock:
            if sig != signal.SIGSTOP:
                self.down.add(i)
            else:
                self.stopped.add(i)
        h.kill(sig)

    def edge_cont(self, i):
        h = self.edges[i]
        if h.alive():
            h.proc.send_signal(signal.SIGCONT)
        with self.lock:
            self.stopped.discard(i)

    def edge_restart(self, i):
        h = self.edges[i]
        if h.proc is not None and h.proc.poll() is None:
            h.stop(timeout=5)
        h.start(wait=False)
        with self.lock:
            self.down.discard(i)

    def redis_down(self, topics, keep_data):
        if keep_data:
            cmd = ["SHUTDOWN", "SAVE"]
        else:
            self.snapshot(topics, "before a Redis restart without its data", pause=True)
            cmd = ["SHUTDOWN", "NOSAVE"]
        with RedisClient(self.redis_port, timeout=5) as c:
            c.sock.sendall(RedisClient.encode(cmd))
            try:
                c.read_reply()
            except (ConnectionError, OSError):
                pass
        try:
            self.redis.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.redis.stop()
        if not keep_data:
            dump = os.path.join(self.redis.dir, "dump.rdb")
            if os.path.exists(dump):
                os.unlink(dump)
        self.redis_up = False

    def redis_start(self):
        self.redis.start()
        self.redis_up = True

    # -- Redis Sentinel (--sentinel): a primary, a replica, three sentinels --

    def _start_sentinels(self):
        from test_sentinel import MASTER, SentinelNode, info_field
        self.replica = RedisServer(extra=["--replicaof", "127.0.0.1", str(self.redis.port)])
        with self.replica.client() as rc:
            harness.wait_until(lambda: info_field(rc, "replication", "master_link_status") ==
                               "up", 20, what="the replica in sync")
        self.sentinels = [SentinelNode(self.redis.port) for _ in range(3)]
        for sn in self.sentinels:
            with sn.client() as sc:
                harness.wait_until(lambda: len(sc.cmd("SENTINEL", "replicas", MASTER)) == 1 and
                                   len(sc.cmd("SENTINEL", "sentinels", MASTER)) == 2, 30,
                                   what="sentinel :%d discovering its peers" % sn.port)
        return "sentinel://%s/%s" % (",".join("127.0.0.1:%d" % sn.port
                                               for sn in self.sentinels), MASTER)

    def master_port(self):
        from test_sentinel import MASTER
        for sn in self.sentinels:
            try:
                with RedisClient(sn.port, timeout=1) as c:
                    a = c.cmd("SENTINEL", "get-master-addr-by-name", MASTER)
                    if a:
                        return int(a[1])
            except (OSError, harness.RedisError, ConnectionError):
                continue
        return None

    def failover(self, topics, lossy):
        """SIGKILL the primary and wait for the sentinels to promote the replica. lossy: cut
        replication first, so the primary acknowledges events the replica never gets (the
        README's documented window). The old primary comes back later as a replica
        (failover_end)."""
        from test_sentinel import info_field
        old, new = self.redis, self.replica
        with new.client() as rc:   # a replica in sync (the restarted one may still load)
            harness.wait_until(lambda: info_field(rc, "replication", "master_link_status") ==
                               "up" and info_field(rc, "replication",
                                                   "master_sync_in_progress") == "0", 20,
                               what="the replica in sync before the failover")
        if lossy:
            with new.client() as rc, old.client() as pc:
                rc.cmd("CONFIG", "SET", "masterauth", "not-the-password")
                pc.cmd("CLIENT", "KILL", "TYPE", "replica")
                harness.wait_until(lambda: info_field(rc, "replication", "master_link_status")
                                   == "down", 10, what="the replication link down")
            time.sleep(0.5)   # the primary alone acknowledges for half a second
        self.snapshot(topics, "before a failover", pause=True)
        old.proc.send_signal(signal.SIGKILL)
        old._reap()
        old.proc = None
        self.redis_up = False
        if lossy:
            with new.client() as rc:
                rc.cmd("CONFIG", "SET", "masterauth", "")
        harness.wait_until(lambda: self.master_port() == new.port, 30,
                           what="the sentinels promoting the replica")
        self.redis, self.replica = new, old
        self.redis_port = new.port
        self.redis_up = True

    def failover_end(self):
        """The old primary back, as a replica of the new one (empty: --save '')."""
        r = self.replica
        if r.proc is None:
            r.extra = ["--replicaof", "127.0.0.1", str(self.redis.port)]
            r.start()

    # -- network faults --

    def link_port(self, i, link):
        """The port that identifies edge i's link: 'redis' (edge<->Redis) or 'clients'."""
        return self.proxies[i].port if link == "redis" else self.edges[i].port

    # -- end --

    def heal(self):
        """Everything back: SIGCONT, restarts, Redis up, no rule, no delay."""
        if self.nft:
            self.nft.clear()
            self.tc.clear()
        for p in self.proxies:
            p.delay = 0.0
        if not self.redis_up:
            self.redis_start()
        if self.replica is not None:
            self.failover_end()
        for i in list(self.stopped):
            self.edge_cont(i)
        for i in list(self.down):
            self.edge_restart(i)

    def wait_ready(self, timeout=30):
        for h in self.edges:
            harness.wait_until(lambda: h.readyz() == 200, timeout, what="%s ready" % h.node_id)

    def sanitizer_reports(self):
        return [(h.node_id, h.sanitizer_report()) for h in self.edges if h.sanitizer_report()]

    def unexpected_exits(self):
        return [(h.node_id, h.proc.returncode) for h in self.edges
                if h.proc is not None and h.proc.poll() is not None and not h.expected_exit]

    def save_logs(self, dest):
        """Copy every edge's and Redis node's log into dest."""
        import shutil
        for h in self.edges:
            shutil.copy(h.log_path, os.path.join(dest, h.node_id + ".log"))
        nodes = [("redis", self.redis), ("redis-other", self.replica)] + [
            ("sentinel-%d" % i, sn) for i, sn in enumerate(self.sentinels)]
        for name, r in nodes:
            if r is not None and os.path.exists(r.log_path):
                shutil.copy(r.log_path, os.path.join(dest, "%s-%d.log" % (name, r.port)))

    def close(self):
        if self.nft:
            self.nft.close()
            self.tc.close()
        for i in list(self.stopped):
            self.edge_cont(i)
        for h in self.edges:
            h.stop(timeout=5)
        for p in self.proxies:
            p.close()
        for r in [self.redis, self.replica] + self.sentinels:
            if r is not None:
                r.close()
