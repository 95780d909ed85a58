"""The delivery canary: a subscriber connection that stays open but silently stops delivering
(modelled by a TCP proxy of our own that keeps the edge's subscriber connection open and drops
every Redis->edge byte on it) turns /readyz to 503 "canary stale" within a few seconds, with
herald_canary_age_seconds and one log line; the edge then recovers (a new subscriber
connection), /readyz is 200 again, and the events published during the stop are delivered."""

import re
import socket
import threading
import time

import harness
from harness import HeraldTestCase, fcall_publish, http_get, split_cursor, wait_until

SUBSCRIBE = b"$9\r\nSUBSCRIBE\r\n"  # not PSUBSCRIBE ($10) nor SSUBSCRIBE


class SilencingProxy:
    """Forwards loopback TCP to Redis; mute_subscribers() drops every later Redis->client byte
    on the connections that have sent a SUBSCRIBE so far (they stay open)."""

    def __init__(self, upstream_port, marker=SUBSCRIBE, confirm=b"$9\r\nsubscribe\r\n"):
        self.upstream = upstream_port
        self.marker, self.confirm = marker, confirm  # what a subscriber sends / gets back
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.conns = []  # [client sock, upstream sock, state dict]
        self.command_delay = 0.0  # seconds each client->Redis read of a non-subscriber waits
        self.to_subscribers = bytearray()  # what was forwarded to subscriber connections
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            st = {"subscriber": False, "muted": False}
            with self.lock:
                self.conns.append((c, u, st))
            threading.Thread(target=self._pump, args=(c, u, st, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, st, False), daemon=True).start()

    def _pump(self, src, dst, st, to_redis):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_redis and self.marker in data:
                    st["subscriber"] = True
                if not to_redis and st["muted"]:
                    continue  # read and drop: Redis sees a healthy reader
                if to_redis and not st["subscriber"] and self.command_delay:
                    time.sleep(self.command_delay)  # in order: one pump per direction
                dst.sendall(data)
                if not to_redis and st["subscriber"]:
                    with self.lock:
                        self.to_subscribers += data
                        del self.to_subscribers[:-65536]
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
                if st["subscriber"]:
                    st["muted"] = muted
                    n += 1
        return n

    def close(self):
        self.closed = True
        self.lsock.close()
        with self.lock:
            for c, u, _ in self.conns:
                c.close()
                u.close()


def canary_age(port):
    return harness.scrape(port).get("herald_canary_age_seconds")


class Canary(HeraldTestCase):

    def test_silent_stop_and_recovery(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off", "--heartbeat", "1"])
        self._heralds.append(h)
        self.assertLess(canary_age(h.port), 2.0, "a fresh edge has heard its canary")
        c = self.sse(h.port, "/events/cn")
        harness.wait_live_subscribed(r, "cn")
        proxy.wait_confirmed("cn")
        sid = fcall_publish(r, "cn", "before")
        self.assertEqual(c.next_event(10).data, "before")

        self.assertEqual(proxy.mute_subscribers(), 1, "one subscriber connection to silence")
        t0 = time.monotonic()
        during = [fcall_publish(r, "cn", "during-%d" % i) for i in range(3)]
        wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                   what="/readyz 503 after the silent stop")
        took = time.monotonic() - t0
        status, _, body = http_get(h.port, "/readyz")
        self.assertEqual((status, body.strip()), (503, b"canary stale"))
        self.assertGreaterEqual(canary_age(h.port), 3.0)
        self.assertEqual(len(re.findall(r'"canary stale: pub/sub delivery stopped', h.log())), 1)

        wait_until(lambda: h.readyz() == 200, 30 * harness.SCALE, interval=0.1,
                   what="/readyz 200 after recovery")
        self.assertLess(canary_age(h.port), 3.0)
        got = [c.next_event(15) for _ in during]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(d, "during-%d" % i) for i, d in enumerate(during)])
        harness.wait_live_subscribed(r, "cn")
        sid = fcall_publish(r, "cn", "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "no duplicate either")
        self.assertEqual(len(re.findall(r'"canary stale: pub/sub delivery stopped', h.log())), 1)
        self.assertEqual(len(re.findall(r'"canary back', h.log())), 1)
        harness.log("canary: /readyz 503 %.1fs after the silent stop" % took)

    def test_silent_stop_that_ends_by_itself_refills(self):
        """The same connection delivers again (what was dropped meanwhile is gone from it):
        the canary's return alone must refill every topic."""
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off"])
        self._heralds.append(h)
        c = self.sse(h.port, "/events/cb")
        harness.wait_live_subscribed(r, "cb")
        proxy.wait_confirmed("cb")
        self.assertEqual(proxy.mute_subscribers(), 1)
        during = [fcall_publish(r, "cb", "during-%d" % i) for i in range(3)]
        wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                   what="/readyz 503 after the silent stop")
        proxy.mute_subscribers(False)  # before the edge replaces the connection (3 s later)
        wait_until(lambda: h.readyz() == 200, 10 * harness.SCALE, interval=0.1,
                   what="/readyz 200 once the canary is heard again")
        got = [c.next_event(15) for _ in during]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(d, "during-%d" % i) for i, d in enumerate(during)])
        self.assertNotIn("replacing the subscriber connection", h.log(),
                         "this test is about the refill without a reconnection")
        self.assertEqual(len(re.findall(r'"canary back', h.log())), 1)
        sid = fcall_publish(r, "cb", "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "no duplicate either")

    def test_first_events_lost_on_a_new_subscription_are_refilled(self):
        """The first events published to a new subscription never arrive (the subscriber
        connection goes silent at once) while the edge's other Redis connection is slow. The
        subscription's position must be at or before those events, so that the refill on the
        canary's return delivers them; read after the SUBSCRIBE confirmation (as before), it
        came back after them and the refill skipped them all."""
        srv = self.redis()
        r = self.client(srv)
        proxy = SilencingProxy(srv.port)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off"])
        self._heralds.append(h)
        proxy.command_delay = 0.4
        c = self.sse(h.port, "/events/cf")
        harness.wait_live_subscribed(r, "cf")
        proxy.wait_confirmed("cf")
        self.assertEqual(proxy.mute_subscribers(), 1)
        during = [fcall_publish(r, "cf", "first-%d" % i) for i in range(3)]
        proxy.command_delay = 0.0
        wait_until(lambda: h.readyz() == 503, 8 * harness.SCALE, interval=0.1,
                   what="/readyz 503 after the silent stop")
        proxy.mute_subscribers(False)
        got = [c.next_event(20) for _ in during]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(d, "first-%d" % i) for i, d in enumerate(during)])
        sid = fcall_publish(r, "cf", "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "no duplicate either")


if __name__ == "__main__":
    harness.main()
