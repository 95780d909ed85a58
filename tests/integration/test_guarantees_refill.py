"""The refill of a topic after its subscriber connection came back, under the two ways it can
go wrong without Redis going away.

1. It holds the live events that
arrive meanwhile, at most --client-queue-max of them; the ones beyond are dropped because
"history keeps them". They must then be read from history: a refill whose last page was read
before they were stored must not end there.

The edge reaches Redis through a proxy of ours that cuts every connection once (the edge
reconnects, resubscribes and refills), then holds back the answer of the refill's history read
for a while after Redis ran it: the 40 events published in that window arrive live first, more
than the 16 the topic may hold."""

import socket
import threading
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed, wait_until

TOPIC = "ho.t"
REFILL = b"herald_history"
TAIL_READ = b"\r\n$1\r\n$\r\n"  # the position read (since "$"), not a refill


class HoldingProxy:
    """Forwards loopback TCP to Redis. cut() closes every connection once; after that, the
    first refill read sent on a command connection has its answer held for `hold` seconds
    (Redis has run it: what is published meanwhile is not in it); `refill_sent` is set then."""

    def __init__(self, upstream_port, hold):
        self.upstream, self.hold = upstream_port, hold
        self.stall = False  # instead of holding the answer, hold the read until release is set
        self.release = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.armed = False
        self.refill_sent = threading.Event()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            st = {"hold_until": 0.0}
            with self.lock:
                self.conns.append((c, u))
            threading.Thread(target=self._pump, args=(c, u, st, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, st, False), daemon=True).start()

    def _pump(self, src, dst, st, to_redis):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_redis:
                    with self.lock:
                        stalled = False
                        if (self.armed and REFILL in data and TAIL_READ not in data
                                and not self.refill_sent.is_set()):
                            if not self.stall:
                                st["hold_until"] = time.monotonic() + self.hold
                            self.armed = False
                            self.refill_sent.set()
                            stalled = self.stall
                        else:
                            stalled = False
                    if stalled:
                        self.release.wait(30)
                else:
                    wait = st["hold_until"] - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut_once(self):
        with self.lock:
            self.armed = True
            for c, u in self.conns:
                for s in (c, u):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self.conns = []

    def close(self):
        self.closed = True
        self.lsock.close()
        with self.lock:
            for c, u in self.conns:
                c.close()
                u.close()


class HeldOverflow(HeraldTestCase):

    def test_live_events_beyond_the_hold_bound_are_read_from_history(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = HoldingProxy(srv.port, hold=2.0)
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off", "--client-queue-max", "16",
                                                  "--client-queue-bytes", "1048576"])
        self._heralds.append(h)
        c = self.sse(h.port, "/events/" + TOPIC)
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        sid = fcall_publish(r, TOPIC, "e-0")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "e-0"))

        proxy.cut_once()  # the edge reconnects, resubscribes and refills from e-0
        self.assertTrue(proxy.refill_sent.wait(20 * harness.SCALE), "no refill read was sent")
        ids = [fcall_publish(r, TOPIC, "e-%d" % i) for i in range(1, 41)]
        got = []
        for _ in ids:
            e = c.next_event(20 * harness.SCALE)
            self.assertNotEqual(e.event, "herald.gap", "a notice for events history has: %r"
                                % e.data)
            got.append((split_cursor(e.id)[0], e.data))
            if len(got) < len(ids) and got[-1][1] != "e-%d" % len(got):
                break
        self.assertEqual(got, [(s, "e-%d" % (i + 1)) for i, s in enumerate(ids)],
                         "every event once, in order (the topic held 16 of them; the rest "
                         "only history has)")
        self.assertIn("too many live events held", h.log(), "the hold bound was reached")
        wait_until(lambda: h.readyz() == 200, 10, what="ready")
        sid = fcall_publish(r, TOPIC, "after")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after"), "live again, once")

    def test_a_refill_read_that_fails_is_tried_again(self):
        srv = self.redis()
        r = self.client(srv)
        proxy = HoldingProxy(srv.port, hold=0)
        proxy.stall = True
        self._closers.append(proxy)
        h = harness.Herald(proxy.port, "edge-1", ["--ingest", "off"])
        self._heralds.append(h)
        c = self.sse(h.port, "/events/" + TOPIC)
        wait_live_subscribed(r, TOPIC)
        time.sleep(0.3)
        sid = fcall_publish(r, TOPIC, "e-0")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "e-0"))
        lib = r.cmd("FUNCTION", "DUMP")

        proxy.cut_once()  # the edge reconnects, resubscribes and refills from e-0
        self.assertTrue(proxy.refill_sent.wait(20 * harness.SCALE), "no refill read was sent")
        r.cmd("FUNCTION", "DELETE", "herald")  # the read, let through now, fails
        proxy.release.set()
        time.sleep(0.3)
        r.cmd("FUNCTION", "RESTORE", lib)
        ids = [fcall_publish(r, TOPIC, "e-%d" % i) for i in range(1, 4)]
        got = [c.next_event(10 * harness.SCALE) for _ in ids]
        self.assertEqual([(split_cursor(e.id)[0], e.data) for e in got],
                         [(s, "e-%d" % (i + 1)) for i, s in enumerate(ids)],
                         "the events after the failed refill read, once each")
        self.assertIn("refill read failed", h.log())


if __name__ == "__main__":
    harness.main()
