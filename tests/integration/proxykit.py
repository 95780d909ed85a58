"""TCP proxies the tests put between an edge and Redis to make faults no real network gives on
demand: one forwarding base (threads, one pair per connection) with two hooks per direction,
and the proxies built on it. Loopback only; close() ends every connection."""

import socket
import threading
import time

from harness import wait_until

SUBSCRIBE = b"$9\r\nSUBSCRIBE\r\n"  # not PSUBSCRIBE ($10) nor SSUBSCRIBE


class TcpProxy:
    """127.0.0.1:port -> 127.0.0.1:upstream_port. cut() closes every connection and refuses
    new ones (accepted and closed at once) until heal(). Subclasses see every chunk through
    to_upstream()/from_upstream() (return the bytes to forward, None to drop them; they may
    sleep: one thread per direction keeps the order) with a per-connection state dict."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []  # (client sock, upstream sock, state)
        self.is_cut = False
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def to_upstream(self, data, st):
        return data

    def from_upstream(self, data, st):
        return data

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                if self.is_cut:
                    c.close()
                    continue
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            st = {}
            with self.lock:
                self.conns.append((c, u, st))
            threading.Thread(target=self._pump, args=(c, u, st, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, st, False), daemon=True).start()

    def _pump(self, src, dst, st, up):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                data = self.to_upstream(data, st) if up else self.from_upstream(data, st)
                if data:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drop_all(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c, u, _ in conns:
            for s in (c, u):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self):
        """Every connection closed, new ones refused until heal()."""
        with self.lock:
            self.is_cut = True
        self._drop_all()

    def heal(self):
        with self.lock:
            self.is_cut = False

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


class SilencingProxy(TcpProxy):
    """mute_subscribers() drops every later Redis->client byte on the connections that have
    sent `marker` (a SUBSCRIBE) so far; they stay open. command_delay: seconds each
    client->Redis chunk of the other connections waits."""

    def __init__(self, upstream_port, marker=SUBSCRIBE, confirm=b"$9\r\nsubscribe\r\n"):
        self.marker, self.confirm = marker, confirm  # what a subscriber sends / gets back
        self.command_delay = 0.0
        self.to_subscribers = bytearray()  # what was forwarded to subscriber connections
        super().__init__(upstream_port)

    def to_upstream(self, data, st):
        if self.marker in data:
            st["subscriber"] = True
        if not st.get("subscriber") and self.command_delay:
            time.sleep(self.command_delay)
        return data

    def from_upstream(self, data, st):
        if st.get("muted"):
            return None  # read and dropped: Redis sees a healthy reader
        if st.get("subscriber"):
            with self.lock:
                self.to_subscribers += data
                del self.to_subscribers[:-65536]
        return data

    def wait_confirmed(self, topic):
        """Until the SUBSCRIBE confirmation of topic's live channel went through to the edge
        (muted before that, the edge would never learn its subscription took effect)."""
        chan = ("herald:{%s}:live" % topic).encode()
        frame = self.confirm + b"$%d\r\n%s\r\n" % (len(chan), chan)

        def seen():
            with self.lock:
                return frame in self.to_subscribers
        wait_until(seen, 10, interval=0.02, what="SUBSCRIBE confirmation of %s forwarded" % topic)

    def mute_subscribers(self, muted=True):
        n = 0
        with self.lock:
            for _, _, st in self.conns:
                if st.get("subscriber"):
                    st["muted"] = muted
                    n += 1
        return n


class RefillHoldingProxy(TcpProxy):
    """cut_once() closes every connection (the edge reconnects, resubscribes and refills);
    after that, the first refill read (herald_history, not a position read "$") sent on a
    connection sets refill_sent and either has its answer held for `hold` seconds (Redis has
    run it: what is published meanwhile is not in it), or, with stall, is itself held until
    `release` is set."""

    REFILL = b"herald_history"
    TAIL_READ = b"\r\n$1\r\n$\r\n"

    def __init__(self, upstream_port, hold):
        self.hold = hold
        self.stall = False
        self.release = threading.Event()
        self.refill_sent = threading.Event()
        self.armed = False
        super().__init__(upstream_port)

    def to_upstream(self, data, st):
        stalled = False
        with self.lock:
            if (self.armed and self.REFILL in data and self.TAIL_READ not in data
                    and not self.refill_sent.is_set()):
                if not self.stall:
                    st["hold_until"] = time.monotonic() + self.hold
                self.armed = False
                self.refill_sent.set()
                stalled = self.stall
        if stalled:
            self.release.wait(30)
        return data

    def from_upstream(self, data, st):
        wait = st.get("hold_until", 0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return data

    def cut_once(self):
        with self.lock:
            self.armed = True
        self._drop_all()


class MutingProxy(TcpProxy):
    """arm_and_drop(marker): every connection is closed, and the first later one whose
    edge->Redis bytes contain marker has every later Redis->edge byte read and dropped. The connection stays
    open and Redis sees a healthy reader: the shape of a reply held up on a lossy link (TCP
    retransmits it, each try waiting twice as long as the last). `muted` counts the
    connections muted so far."""

    def __init__(self, upstream_port):
        self.marker = None
        self.muted = 0
        super().__init__(upstream_port)

    def arm_and_drop(self, marker):
        with self.lock:
            self.marker = marker
            for _, _, st in self.conns:
                st["old"] = True
        self._drop_all()

    def to_upstream(self, data, st):
        with self.lock:
            if self.marker is not None and self.marker in data and not st.get("old"):
                self.marker = None
                st["muted"] = True
                self.muted += 1
        return data

    def from_upstream(self, data, st):
        return None if st.get("muted") else data
