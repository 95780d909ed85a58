"""A fresh subscriber whose service thread joins a topic the edge already delivers to another
thread gets every event stored after its response head (FINDINGS F27: seen once in the suite,
test_fault_redis_empty under load, a client without old-0).

The edge answers a fresh SSE client with its head and then tells its broker thread that the
client's service thread wants the topic. An event stored between the two, and delivered by the
broker to the other thread first, reached the other thread's clients only. Here the broker
thread alone is stopped (ptrace; the service threads go on) so that the order is certain: an
event stored before the clients ask and one stored after their heads wait in the broker's Redis
socket, ahead of the joining thread's request, and the broker reads both in one go when it runs
again. Eight fresh SSE clients and six WebSocket subscribers land on the edge's two service
threads; those on the thread without the holder's subscription are the joining ones (all on
the holder's thread: 1 in 8,192).
"""

import os

import harness
from harness import (HeraldTestCase, fcall_publish, id_key, scrape, split_cursor,
                     wait_live_subscribed, wait_until)
from threadstop import ThreadStop
from wsclient import WSClient, request

TOPIC = "g.fresh.join"


class FreshJoin(HeraldTestCase):

    def start(self, extra=()):
        """A Redis, an edge with two service threads, and a holder subscribed to TOPIC on one
        of them that got its first event: (redis client, edge, holder, that event's id)."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--threads", "2", "--heartbeat", "1"] + list(extra))
        holder = self.sse(h.port, "/events/" + TOPIC)
        wait_live_subscribed(r, TOPIC)
        warm = fcall_publish(r, TOPIC, "warm")
        self.assertEqual(split_cursor(holder.next_event().id)[0], warm)
        return r, h, holder, warm

    def assert_fresh_got(self, fresh, early_ids, after, last):
        """Each fresh subscriber (SSE or WebSocket) got `after` and `last`, stored after its
        head, in order and once; of early_ids, stored before its request, it may have got a
        tail, in order; and nothing more."""
        for i, c in enumerate(fresh):
            got = []
            while not got or got[-1] != last:
                if isinstance(c, WSClient):
                    e = c.recv_json(10)
                    self.assertEqual(e.get("type"), "event", "ws client %d: %r" % (i, e))
                    got.append(split_cursor(e["id"])[0])
                    continue
                e = c.next_event(10)
                self.assertIsNone(e.event, "client %d: unexpected %r" % (i, e))
                got.append(split_cursor(e.id)[0])
            early = [x for x in got if id_key(x) <= id_key(early_ids[-1])]
            self.assertEqual(early, early_ids[len(early_ids) - len(early):],
                             "client %d: %r" % (i, got))
            self.assertEqual(got[len(early):], [after, last],
                             "fresh client %d missed what was stored after its head" % i)
        for c in fresh:
            c.pump(0.2)
            self.assertEqual(c.pending(), [])

    def test_joining_thread_gets_what_was_stored_after_the_head(self):
        r, h, holder, warm = self.start()

        with ThreadStop(h.proc.pid):  # the broker is the edge's main thread
            before = fcall_publish(r, TOPIC, "before-heads")
            fresh = [self.sse(h.port, "/events/" + TOPIC) for _ in range(8)]
            ws = [self.ws_subscribed(h.port) for _ in range(6)]
            # every head and acknowledgement was read: stored after them
            after = fcall_publish(r, TOPIC, "after-heads")
            # Redis has written both to the broker's subscriber socket
            wait_until(lambda: harness.sub_socket_flushed(r), 5,
                       what="both events on the edge's socket")
        last = fcall_publish(r, TOPIC, "later")

        self.assert_fresh_got(fresh + ws, [warm, before], after, last)
        self.assertEqual([split_cursor(e.id)[0] for e in holder.events(3)], [before, after, last])
        holder.pump(0.2)
        self.assertEqual(holder.pending(), [])
        joins = scrape(h.port).get("herald_join_catchups_total", 0)
        harness.log("joins caught up: %d" % joins)

    def test_join_into_a_full_queue_waits_for_room(self):
        """The join cannot be handed over (the joining thread's queue is full): it goes again
        at the broker's next tick, the thread gets nothing of the topic meanwhile, and its
        fresh subscribers still get what was stored after their head."""
        r, h, holder, warm = self.start(["--service-queue-max", "64"])
        # a topic both service threads have (16 subscribers: all on one thread, 1 in 32,768)
        for _ in range(16):
            self.sse(h.port, "/events/g.fresh.filler")
        wait_live_subscribed(r, "g.fresh.filler")
        svc = service_threads(h.proc.pid)
        self.assertEqual(len(svc), 2, svc)

        # the broker stops; fresh subscribers are answered; then the service threads stop,
        # and the broker runs alone: it reads the events below in one go, the filler's fill
        # both service queues, and then it takes the joining thread's SUB
        broker = ThreadStop(h.proc.pid)
        stopped = [broker.__enter__()]
        try:
            before = fcall_publish(r, TOPIC, "before-heads")
            fresh = [self.sse(h.port, "/events/" + TOPIC) for _ in range(16)]
            after = fcall_publish(r, TOPIC, "after-heads")
            # a service thread tells the broker of a fresh subscriber right after its head: on
            # a loaded machine it may not have yet when the test reads the head, and stopped
            # now it would send the join's SUB only after the scenario (seen once)
            inbox_settled(self, h)
            for tid in svc:
                stopped.append(ThreadStop(tid).__enter__())
            r.pipeline([("FCALL", "herald_publish", 1, "g.fresh.filler", "f%d" % i)
                        for i in range(80)])
            wait_until(lambda: harness.sub_socket_flushed(r), 5,
                       what="the events on the edge's socket")
            stopped.remove(broker)
            broker.__exit__(None, None, None)
            wait_until(lambda: "topic join deferred" in h.log(), 10,
                       what="a join deferred (a fresh subscriber on the holder's other thread)")
        finally:
            for t in reversed(stopped):
                t.__exit__(None, None, None)
        # published once the queues have room again (into a full one it would be dropped and
        # the holder's thread's clients cut off to resume, as they should be)
        wait_until(lambda: scrape(h.port).get("herald_service_queue_depth") == 0, 10,
                   what="the service queues drained")
        last = fcall_publish(r, TOPIC, "later")
        self.assert_fresh_got(fresh, [warm, before], after, last)
        self.assertEqual([split_cursor(e.id)[0] for e in holder.events(3)], [before, after, last])

    def ws_subscribed(self, port):
        ws = WSClient(port)
        self._closers.append(ws)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": TOPIC, "id": 1}),
                         {"type": "subscribed", "topic": TOPIC, "id": 1})
        return ws


def inbox_settled(test, h):
    """Waits until requests wait for the (stopped) broker and their number stayed the same for
    0.3 s: the service threads have told it what their clients asked."""
    seen = []

    def settled():
        seen.append(scrape(h.port).get("herald_broker_queue_depth", 0))
        return len(seen) >= 4 and seen[-1] > 0 and len(set(seen[-4:])) == 1
    wait_until(settled, 10, interval=0.1, what="the broker's inbox settled (%r)" % (seen[-5:],))


def service_threads(pid):
    """The thread ids of the edge's service threads, hb-svc-0 first."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            name = f.read().strip()
        if name.startswith("hb-svc-"):
            out[name] = int(tid)
    return [out[k] for k in sorted(out)]


if __name__ == "__main__":
    harness.main()
