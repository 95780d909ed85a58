"""Long-poll from the live position: a poll whose cursor is where the edge's live delivery of
its topic stands is answered without reading Redis (an idle long-poller asks again with the
tail's cursor every timeout, and each read was a function call in Redis), yet it still gets
every event published after its cursor, once and in order, and a gap notice the edge sent
since it reached that position."""

import json
import random
import threading
import time

import harness
from harness import HeraldTestCase, fcall_publish, http_get, scrape, wait_live_subscribed

LIVE = 'herald_history_requests_total{source="live"}'
READ = 'herald_history_requests_total{source="redis"}'


class PollLivePosition(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        # one service thread: the polls share it with the SSE client that holds the topic,
        # and are answered where that thread's live delivery stands (the broker answers the
        # first, and those from a thread with no other subscriber of the topic)
        self.h = self.edge(self.srv, "edge-1", ["--threads", "1"])

    def cursor(self, topic, sid):
        return "%s_%s" % (sid, self.r.cmd("GET", "herald:{%s}:epoch" % topic).decode())

    def poll(self, topic, since, timeout):
        status, _, body = http_get(self.h.port, "/poll/%s?since=%s&timeout=%d" % (
            topic, since, timeout), timeout=30 + timeout * harness.SCALE)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def hold(self, topic):
        """An SSE client on topic: the edge stays subscribed between polls."""
        sse = harness.SSEClient(self.h.port, "/events/" + topic)
        self.addCleanup(sse.close)
        wait_live_subscribed(self.r, topic)
        return sse

    def fcalls(self):
        for line in self.r.cmd("INFO", "commandstats").decode().splitlines():
            if line.startswith("cmdstat_fcall:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def test_polls_at_the_tail_do_not_read_redis(self):
        topic = "lp.idle"
        old = fcall_publish(self.r, topic, "old")
        sid = fcall_publish(self.r, topic, "only")
        cur = self.cursor(topic, sid)
        self.hold(topic)
        # the subscription's refill may still be under way: the first poll may read. Polls
        # that wait (timeout 1) are answered from the position; one with timeout 0 reads
        # Redis (test_a_poll_answered_at_once_has_what_was_stored_before_it)
        harness.wait_until(lambda: self.poll(topic, cur, 1) == {"events": [], "next": cur}
                           and scrape(self.h.port).get(LIVE, 0) >= 1, 20,
                           what="a poll answered from the live position")
        m0, f0 = scrape(self.h.port), self.fcalls()
        answers = [None] * 20

        def one(i):
            answers[i] = self.poll(topic, cur, 1)
        ths = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(20)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(30 * harness.SCALE)
        self.assertEqual(answers, [{"events": [], "next": cur}] * 20)
        m1, f1 = scrape(self.h.port), self.fcalls()
        self.assertEqual(m1[LIVE] - m0[LIVE], 20, "every poll at the tail answered live")
        self.assertEqual(m1[READ] - m0[READ], 0)
        self.assertLess(f1 - f0, 10, "Redis ran no function per poll")
        # a cursor behind the position is read from Redis
        obj = self.poll(topic, self.cursor(topic, old), 0)
        self.assertEqual([e["data"] for e in obj["events"]], ["only"])
        self.assertEqual(scrape(self.h.port)[READ] - m1[READ], 1)
        # and one at the position waits for what comes next
        out = {}
        t = threading.Thread(target=lambda: out.update(r=self.poll(topic, cur, 30)), daemon=True)
        t.start()
        harness.wait_until(lambda: scrape(self.h.port)[LIVE] - m1[LIVE] >= 1, 10,
                           what="the waiting poll answered from the live position")
        new = fcall_publish(self.r, topic, "next")
        t.join(30 * harness.SCALE)
        self.assertFalse(t.is_alive(), "the waiting poll was not answered")
        self.assertEqual([e["data"] for e in out["r"]["events"]], ["next"])
        self.assertEqual(out["r"]["next"], self.cursor(topic, new))

    def test_pollers_racing_publishes_get_every_event_once(self):
        """Polls asked from the live position while events are being published (some stored
        and in flight on pub/sub as the answer is made): each poller gets every event once, in
        order."""
        topic = "lp.race"
        first = fcall_publish(self.r, topic, "e-0")
        self.hold(topic)
        total = 300

        def publisher():
            r = self.client(self.srv)
            rnd = random.Random(7)
            for i in range(1, total):
                fcall_publish(r, topic, "e-%d" % i)
                time.sleep(rnd.choice((0, 0, 0.001, 0.003, 0.01)))

        got = [[], []]
        # read here, not in the pollers: self.r is one socket, and two threads sending on it
        # at once read each other's replies (a poller once waited on a reply the other took)
        start = self.cursor(topic, first)

        def poller(k):
            cur = start
            end = harness.deadline(90)
            while len(got[k]) < total - 1 and time.monotonic() < end:
                obj = self.poll(topic, cur, 1)
                self.assertNotIn("gap", obj)
                got[k] += [e["data"] for e in obj["events"]]
                cur = obj["next"]

        ths = [threading.Thread(target=poller, args=(k,), daemon=True) for k in range(2)]
        for t in ths:
            t.start()
        publisher()
        for t in ths:
            t.join(120 * harness.SCALE)
        want = ["e-%d" % i for i in range(1, total)]
        for k in range(2):
            self.assertEqual(got[k], want, "poller %d" % k)
        self.assertGreater(scrape(self.h.port)[LIVE], 0, "some polls were answered live")

    def test_a_gap_notice_after_the_position_is_read_from_redis(self):
        """Redis restarts empty: the edge's refill finds the stream gone and sends its
        subscribers a reset notice. A poller that was at the position before (between two
        polls then) is read from Redis, which tells it too."""
        topic = "lp.gap"
        cur = self.cursor(topic, fcall_publish(self.r, topic, "before"))
        sse = self.hold(topic)
        harness.wait_until(lambda: self.poll(topic, cur, 1) == {"events": [], "next": cur}
                           and scrape(self.h.port).get(LIVE, 0) >= 1, 20,
                           what="a poll answered from the live position")
        self.srv.restart()
        self.r = self.client(self.srv)
        e = sse.next_event(30 * harness.SCALE)
        self.assertEqual((e.event, json.loads(e.data)), ("herald.gap",
                                                         {"topic": topic, "reason": "reset"}))
        obj = self.poll(topic, cur, 0)
        self.assertEqual(obj.get("gap"), "reset", obj)
        self.assertEqual(obj["events"], [])

    def test_a_poll_answered_at_once_has_what_was_stored_before_it(self):
        """A poll with timeout 0 answers with what Redis holds after its cursor, even when the
        edge's live delivery has not seen it yet (a publish returns once the event is stored;
        its live message may still be on its way): a client that published and then asks at
        once sees its event. Here the event is stored without a live message at all (XADD to
        the topic's log, as herald_publish does before it publishes), so only a read finds
        it."""
        topic = "lp.fresh"
        sid = fcall_publish(self.r, topic, "first")
        cur = self.cursor(topic, sid)
        self.hold(topic)
        harness.wait_until(lambda: self.poll(topic, cur, 1) == {"events": [], "next": cur}
                           and scrape(self.h.port).get(LIVE, 0) >= 1, 20,
                           what="the edge's live position at the cursor")
        quiet = self.r.cmd("XADD", "herald:{%s}:log" % topic, "*", "d", "stored").decode()
        obj = self.poll(topic, cur, 0)
        self.assertEqual([e["data"] for e in obj["events"]], ["stored"], obj)
        self.assertEqual(obj["next"], self.cursor(topic, quiet))


if __name__ == "__main__":
    harness.main()
