"""Long-poll (GET /poll/<topic>?since=<cursor>&timeout=<s>), checked against PROTOCOL.md: an
answer at once when events after `since` exist (at most --history-batch, continue with `next`),
a wait that ends with the event published during it, the timeout answer with `next`, polls
without `since`, gap notices, and 400 for bad topics, cursors and timeouts."""

import json
import threading
import time
import urllib.parse

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, scrape, split_cursor, stream_key,
                     wait_live_subscribed, wait_until, xrange)
from threadstop import ThreadStop


def epoch_of(r, topic):
    e = r.cmd("GET", "herald:{%s}:epoch" % topic)
    assert e is not None, "no epoch key for %r" % topic
    return e.decode()


class Poll(HeraldTestCase):

    def start(self, args=(), n=1):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.hs = [self.edge(self.srv, "edge-%d" % (i + 1), list(args)) for i in range(n)]
        self.h = self.hs[0]

    def cursor(self, topic, sid):
        return "%s_%s" % (sid, epoch_of(self.r, topic))

    def ev(self, topic, sid, data, event=None):
        e = {"type": "event", "topic": topic, "id": self.cursor(topic, sid), "data": data}
        if event is not None:
            e["event"] = event
        return e

    def poll(self, topic, since=None, timeout=None, h=None, http_timeout=30.0, raw_query=None):
        """GET /poll/<topic>; returns (status, headers, parsed JSON or raw body)."""
        q = []
        if since is not None:
            q.append("since=" + urllib.parse.quote(since, safe=""))
        if timeout is not None:
            q.append("timeout=%s" % timeout)
        if raw_query is not None:
            q.append(raw_query)
        path = "/poll/" + topic + ("?" + "&".join(q) if q else "")
        status, hdrs, body = http_get((h or self.h).port, path, timeout=http_timeout)
        self.assertEqual(hdrs.get("x-herald-node"), (h or self.h).node_id, path)
        if status == 200:
            self.assertEqual(hdrs.get("content-type", "").split(";")[0].strip(),
                             "application/json", path)
            return status, hdrs, json.loads(body)
        return status, hdrs, body

    def ok(self, *a, **kw):
        status, _, obj = self.poll(*a, **kw)
        self.assertEqual(status, 200, obj)
        return obj

    def background_poll(self, *a, **kw):
        out = {}

        def run():
            try:
                out["r"] = self.poll(*a, **kw)
            except Exception as e:  # reported by the caller
                out["e"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def finish(self, t, out, limit=30.0):
        t.join(limit * harness.SCALE)
        self.assertFalse(t.is_alive(), "the poll did not answer")
        if "e" in out:
            raise out["e"]
        status, _, obj = out["r"]
        self.assertEqual(status, 200, obj)
        return obj

    def test_answers_at_once_with_events_after_since(self):
        self.start(n=2)
        topic = "poll.now"
        sids = [fcall_publish(self.r, topic, "e-%d" % i, "named" if i == 3 else None)
                for i in range(5)]
        want = [self.ev(topic, sids[i], "e-%d" % i, "named" if i == 3 else None)
                for i in range(2, 5)]
        # timeout=60 would wait a minute: an immediate answer proves events were there
        obj = self.ok(topic, self.cursor(topic, sids[1]), 60, h=self.hs[1])
        self.assertEqual(obj, {"events": want, "next": self.cursor(topic, sids[4])})
        obj = self.ok(topic, sids[1], 60)  # a bare stream id works too
        self.assertEqual(obj, {"events": want, "next": self.cursor(topic, sids[4])})
        obj = self.ok(topic, self.cursor(topic, sids[1]))  # default timeout, still at once
        self.assertEqual(obj["events"], want)

    def test_batches_follow_next(self):
        self.start(["--history-batch", "3"])
        topic = "poll.batch"
        sids = [fcall_publish(self.r, topic, "b-%d" % i) for i in range(8)]
        since, got, answers = self.cursor(topic, sids[0]), [], 0
        while len(got) < 7:
            obj = self.ok(topic, since, 0)
            answers += 1
            self.assertTrue(obj["events"], obj)
            self.assertLessEqual(len(obj["events"]), 3, "at most --history-batch events")
            self.assertEqual(obj["next"], obj["events"][-1]["id"])
            got += obj["events"]
            since = obj["next"]
            self.assertLess(answers, 10)
        self.assertEqual(got, [self.ev(topic, sids[i], "b-%d" % i) for i in range(1, 8)])
        self.assertEqual(answers, 3, "3 + 3 + 1 events")
        self.assertEqual(self.ok(topic, since, 0), {"events": [], "next": since})

    def test_waits_for_an_event_published_during_the_wait(self):
        self.start()
        topic = "poll.wait"
        first = fcall_publish(self.r, topic, "before")
        since = self.cursor(topic, first)
        t, out = self.background_poll(topic, since, 30)
        wait_live_subscribed(self.r, topic)
        sid = fcall_publish(self.r, topic, "during", "ping")
        obj = self.finish(t, out)
        self.assertEqual(obj, {"events": [self.ev(topic, sid, "during", "ping")],
                               "next": self.cursor(topic, sid)})

    def test_timeout_answers_empty_with_next(self):
        self.start()
        topic = "poll.timeout"
        sid = fcall_publish(self.r, topic, "only")
        cur = self.cursor(topic, sid)
        self.assertEqual(self.ok(topic, cur, 1), {"events": [], "next": cur})
        self.assertEqual(self.ok(topic, cur, 0), {"events": [], "next": cur})
        # a bare since is answered with the same bare cursor or its full form
        obj = self.ok(topic, sid, 0)
        self.assertEqual(obj["events"], [])
        self.assertIn(obj["next"], (sid, cur))

    def test_without_since(self):
        self.start()
        topic = "poll.nosince"
        sids = [fcall_publish(self.r, topic, "old-%d" % i) for i in range(3)]
        # timeout: next is the topic's current tail, so a client continues without loss
        obj = self.ok(topic, None, 1)
        self.assertEqual(obj, {"events": [], "next": self.cursor(topic, sids[-1])})
        self.assertEqual(self.ok(topic, None, 0),
                         {"events": [], "next": self.cursor(topic, sids[-1])})
        missed = fcall_publish(self.r, topic, "between polls")
        self.assertEqual(self.ok(topic, obj["next"], 0),
                         {"events": [self.ev(topic, missed, "between polls")],
                          "next": self.cursor(topic, missed)})
        # A wait without since gets the next event after now, not history. A topic no
        # client of the edge uses yet: its live subscription shows that the edge took the
        # poll, so "new" is published after the request.
        fresh = "poll.nosince.wait"
        fcall_publish(self.r, fresh, "history")
        t, out = self.background_poll(fresh, None, 30)
        wait_live_subscribed(self.r, fresh)
        sid = fcall_publish(self.r, fresh, "new")
        self.assertEqual(self.finish(t, out), {"events": [self.ev(fresh, sid, "new")],
                                               "next": self.cursor(fresh, sid)})

    def test_without_since_on_a_topic_with_no_stream(self):
        """A topic nothing was stored on yet: the answer's next must still let the client
        continue without loss. It was "" before, which the next poll sent back as an empty
        since, read as no since at all: from the tail, past what was published in between."""
        self.start()
        for timeout in (1, 0):
            topic = "poll.nostream.%d" % timeout
            obj = self.ok(topic, None, timeout)
            self.assertEqual(obj["events"], [])
            self.assertTrue(obj["next"], obj)
            missed = fcall_publish(self.r, topic, "between polls")
            self.assertEqual(self.ok(topic, obj["next"], 0),
                             {"events": [self.ev(topic, missed, "between polls")],
                              "next": self.cursor(topic, missed)}, "timeout %d" % timeout)

    def test_tail_read_after_live_events_over_the_bound_reads_from_its_ask(self):
        """A poll without since whose tail read is answered after more live events than a
        client may hold (they are let go, to be read from history after the read) reads them
        from the time it asked. It read from the stream's first entry (its position was still
        0-0): events stored before the poll was asked came in its answer; and reading on from
        the tail instead would skip those stored after it asked, before the tail was read."""
        self.start(["--threads", "1", "--client-queue-max", "16", "--ingest", "off"])
        topic = "poll.tail.over"
        holder = self.sse(self.h.port, "/events/" + topic)  # the thread takes the topic live
        wait_live_subscribed(self.r, topic)
        old = [fcall_publish(self.r, topic, "old-%d" % i) for i in range(5)]
        self.assertEqual([split_cursor(e.id)[0] for e in holder.events(5)], old)
        time.sleep(0.5)  # past the clock margin a subscriber without a cursor reads from
        # the broker thread stops; the poll asks for the tail, which waits for it
        broker = ThreadStop(self.h.proc.pid)
        broker.__enter__()
        try:
            t, out = self.background_poll(topic, None, 3)
            wait_until(lambda: scrape(self.h.port).get(
                'herald_connections{transport="poll"}', 0) == 1, 10, what="the poll taken")
            # more live events than the poll may hold, on the broker's socket before its read
            new = [fcall_publish(self.r, topic, "new-%d" % i) for i in range(30)]
            wait_until(lambda: harness.sub_socket_flushed(self.r), 5,
                       what="the events on the edge's socket")
        finally:
            broker.__exit__(None, None, None)
        obj = self.finish(t, out)
        got = [split_cursor(e["id"])[0] for e in obj["events"]]
        while obj["next"] != self.cursor(topic, new[-1]):  # an answer holds a page at most
            self.assertTrue(obj["events"], obj)
            obj = self.ok(topic, obj["next"], 0)
            got += [split_cursor(e["id"])[0] for e in obj["events"]]
        self.assertEqual([x for x in got if x in old], [], "events stored before it asked")
        self.assertEqual(got, new, "events stored after it asked: each once, in order")

    def test_gap_trimmed(self):
        self.start(["--history-max", "10", "--history-batch", "1000"])
        topic = "poll.trim"
        cur = self.cursor(topic, fcall_publish(self.r, topic, "p-0"))
        replies = self.r.pipeline([("FCALL", "herald_publish", 1, topic, "p-%d" % i)
                                   for i in range(1, 300)])
        self.assertEqual([x for x in replies if isinstance(x, harness.RedisError)], [])
        retained = xrange(self.r, topic)
        self.assertLess(len(retained), 300)
        obj = self.ok(topic, cur, 0)
        self.assertEqual(obj, {"events": [self.ev(topic, eid, f["d"].decode())
                                          for eid, f in retained],
                               "next": self.cursor(topic, retained[-1][0]), "gap": "trimmed"})
        # continuing from next has no gap
        self.assertEqual(self.ok(topic, obj["next"], 0), {"events": [], "next": obj["next"]})

    def test_gap_reset(self):
        self.start()
        topic = "poll.reset"
        old = self.cursor(topic, fcall_publish(self.r, topic, "old"))
        self.assertEqual(self.r.cmd("DEL", stream_key(topic)), 1)
        new = [fcall_publish(self.r, topic, "new-%d" % i) for i in range(2)]
        obj = self.ok(topic, old, 0)
        self.assertEqual(obj, {"events": [self.ev(topic, new[i], "new-%d" % i) for i in range(2)],
                               "next": self.cursor(topic, new[1]), "gap": "reset"})

    def test_bad_inputs_400(self):
        self.start()
        fcall_publish(self.r, "poll.bad", "x")
        cases = {
            "bad topic": ("/poll/a%20b", None),
            "empty topic": ("/poll/", None),
            "129-byte topic": ("/poll/" + "t" * 129, None),
            "bad cursor": ("/poll/poll.bad?since=abc", None),
            "bad epoch": ("/poll/poll.bad?since=1-2_UPPER", None),
            "timeout 61": ("/poll/poll.bad?timeout=61", None),
            "timeout -1": ("/poll/poll.bad?timeout=-1", None),
            "timeout abc": ("/poll/poll.bad?timeout=abc", None),
            "timeout 1e9": ("/poll/poll.bad?timeout=1000000000", None),
            # not a whole number as written: signs, blanks, nothing
            "timeout +1": ("/poll/poll.bad?timeout=%2B1", None),
            "timeout -0": ("/poll/poll.bad?timeout=-0", None),
            "timeout blank 1": ("/poll/poll.bad?timeout=%201", None),
            "timeout 1 blank": ("/poll/poll.bad?timeout=1%20", None),
            "timeout empty": ("/poll/poll.bad?timeout=", None),
        }
        for what, (path, _) in cases.items():
            status, hdrs, body = http_get(self.h.port, path)
            self.assertEqual(status, 400, "%s: %s -> %r" % (what, path, body))
            self.assertEqual(hdrs.get("x-herald-node"), "edge-1", what)
            self.assertEqual(hdrs.get("content-type", "").split(";")[0].strip(), "text/plain",
                             what)
            text = body.rstrip(b"\r\n")
            self.assertTrue(text and b"\n" not in text, "%s: one-line reason %r" % (what, body))
        # timeout=60 (the maximum) is accepted; answered at once because events exist
        sid = xrange(self.r, "poll.bad")[0][0]
        status, _, obj = self.poll("poll.bad", "0-0", 60)
        self.assertEqual(status, 200, obj)
        self.assertEqual([e["id"] for e in obj["events"]], [self.cursor("poll.bad", sid)])
        harness.log("edge still serving after bad polls")
        self.assertTrue(self.h.alive())

    def test_poll_from_zero_cursor_reads_everything(self):
        self.start()
        topic = "poll.zero"
        sids = [fcall_publish(self.r, topic, "z-%d" % i) for i in range(3)]
        obj = self.ok(topic, "0-0", 0)
        self.assertEqual(obj["events"], [self.ev(topic, sids[i], "z-%d" % i) for i in range(3)])

    def test_catching_up_while_events_flow_loses_nothing(self):
        """A poller far behind (a backlog of several --history-batch) keeps polling with `next`
        while events are published: each answer holds at most a batch of history, and the live
        events that arrived during its read come after history not read yet. They must not be
        answered ahead of it (the cursor would skip the rest of the backlog): every event,
        once, in order."""
        self.start(["--history-batch", "5"])
        topic = "pcatch"
        first = fcall_publish(self.r, topic, "e-0")
        for i in range(1, 40):
            fcall_publish(self.r, topic, "e-%d" % i)
        total = 240
        stop = threading.Event()

        def publisher():
            r = self.client(self.srv)
            for i in range(40, total):
                if stop.is_set():
                    return
                fcall_publish(r, topic, "e-%d" % i)
                stop.wait(0.004)

        th = threading.Thread(target=publisher, daemon=True)
        got, cursor = [], self.cursor(topic, first)
        deadline = harness.deadline(60)
        th.start()
        try:
            while len(got) < total - 1 and time.monotonic() < deadline:
                obj = self.ok(topic, since=cursor, timeout=1)
                self.assertNotIn("gap", obj)
                got += [e["data"] for e in obj["events"]]
                cursor = obj["next"] or cursor
        finally:
            stop.set()
            th.join(10)
        self.assertEqual(got, ["e-%d" % i for i in range(1, total)],
                         "every event after the cursor, once, in order")


if __name__ == "__main__":
    harness.main()
