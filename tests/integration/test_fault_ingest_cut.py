"""The Redis connection goes while the ingest leader's stores are in flight: their outcome is
unknown (Redis may or may not have run them), so they are not sent again (that could store
them twice) but counted in herald_ingest_unknown_total for the operator; the edge reconnects
and stores the raw messages that come after.

A small TCP proxy between the edge and Redis holds what the edge sends (so the stores are in
flight for certain) and then cuts every connection."""

import socket
import threading

import harness
from harness import HeraldTestCase, lease_holder, scrape, wait_until, xrange


class HoldingProxy:
    """Forwards 127.0.0.1:port <-> Redis; hold() keeps client->Redis bytes back (recording
    them), cut() closes every connection and lets new ones through again."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.holding = False
        self.held = b""
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src, dst, upstream):
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    if upstream and self.holding:
                        self.held += data
                        continue
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def hold(self):
        with self.lock:
            self.holding, self.held = True, b""

    def cut(self):
        with self.lock:
            conns, self.conns, self.holding = self.conns, [], False
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.cut()
        self.lsock.close()


class IngestCut(HeraldTestCase):

    def test_stores_in_flight_when_the_connection_goes(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = HoldingProxy(srv.port)
        self.addCleanup(proxy.close)
        h = self.edge(srv, "edge-1", ["--redis", "redis://127.0.0.1:%d" % proxy.port])
        wait_until(lambda: lease_holder(r), 20, what="an ingest leader")
        topic = "cut.raw"
        r.publish(topic, "before")
        wait_until(lambda: xrange(r, topic), 20, what="the first raw message stored")
        self.assertEqual(scrape(h.port).get("herald_ingest_unknown_total"), 0)

        proxy.hold()
        n = 20
        r.pipeline([("PUBLISH", topic, "held-%d" % i) for i in range(n)])
        # the edge got them (straight from Redis) and sent its stores, which the proxy holds
        wait_until(lambda: proxy.held.count(b"held-") >= n, 20,
                   what="the leader's stores of %d raw messages in flight" % n)
        proxy.cut()
        wait_until(lambda: scrape(h.port).get("herald_ingest_unknown_total") == n, 20,
                   what="%d stores counted as unknown" % n)

        # back: the edge reconnects, leads again and stores what comes next
        wait_until(lambda: h.readyz() == 200, 30, what="the edge ready again")
        wait_until(lambda: lease_holder(r), 30, what="an ingest leader again")
        r.publish(topic, "after")
        wait_until(lambda: any(f.get("d") == b"after" for _, f in xrange(r, topic)), 30,
                   what="a raw message after the cut stored")
        stored = [f["d"] for _, f in xrange(r, topic)]
        self.assertEqual(stored.count(b"after"), 1)
        self.assertEqual(scrape(h.port).get("herald_ingest_unknown_total"), n)
        harness.log("connection cut with %d stores in flight: counted unknown %d, stored %r" % (
            n, n, [s.decode() for s in stored]))


if __name__ == "__main__":
    harness.main()
