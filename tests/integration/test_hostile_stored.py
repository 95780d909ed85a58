"""Stream entries Herald would never have stored, written into a topic's stream by something else
with access to Redis (a direct XADD, a tool, a bug): an event name with a line break (it would
end the SSE `event:` line and forge fields), a payload over --max-message-bytes, a name longer
than 64 bytes. Nothing from Redis is trusted: such an entry is skipped, counted
(herald_stored_entries_skipped_total) and logged, and every reader goes on past it to the
events after it, whether they are on the same page or many pages later.

Before: the first such entry failed the whole history page ("history read failed": the client
was closed to resume from the same cursor, and failed again, for ever), and the broker's refill
after a reconnection read the same page of them again and again (a spin on Redis)."""

import json
import time

import harness
from harness import (HeraldTestCase, SSEClient, fcall_publish, http_get, live_channel, scrape,
                     split_cursor, stream_key, wait_live_subscribed, wait_until)
from hostile import Bystander, assert_idle
from wsclient import WSClient, request

TOPIC = "stored.bad"
MAX = 1024
BATCH = 100  # pages of the refill; the bad run below fills more than one


def untrusted(h, reason):
    return scrape(h.port).get('herald_live_untrusted_total{reason="%s"}' % reason, 0)


def skipped(h):
    return scrape(h.port).get("herald_stored_entries_skipped_total", 0)


class StoredEntries(HeraldTestCase):

    def start(self):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, args=["--max-message-bytes", str(MAX), "--history-batch",
                                           str(BATCH)])
        self.bystander = Bystander(self, self.h, self.r)
        return self.h

    def store_bad(self, n_names=2 * BATCH + 10):
        """Entries written around Herald into TOPIC's stream (which exists): returns how many."""
        key = stream_key(TOPIC)
        cmds = [("XADD", key, "*", "d", "forged-%d" % i, "e", "x\nid: 1-1\ndata: forged")
                for i in range(n_names)]
        cmds.append(("XADD", key, "*", "d", "y" * (MAX + 1)))
        cmds.append(("XADD", key, "*", "d", "long-name", "e", "n" * 65))
        cmds.append(("XADD", key, "*", "e", "a\rb"))
        cmds.append(("XADD", key, "*", "e", "no-payload"))  # Herald always writes d
        # the edge's own event name: it would pass for a gap notice
        cmds.append(("XADD", key, "*", "d", '{"topic":"%s","reason":"reset"}' % TOPIC, "e",
                     "herald.gap"))
        cmds.append(("XADD", key, "*", "n" * (2 * MAX), "v", "d", "big name"))
        for rid in self.r.pipeline(cmds):
            self.assertIsInstance(rid, bytes, rid)
        return len(cmds)

    def finish(self, h, n_bad):
        wait_until(lambda: skipped(h) >= n_bad, 10, what="skipped entries counted")
        self.assertIn("stored entry skipped", h.log())
        self.bystander.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def test_resume_reads_past_them(self):
        h = self.start()
        first = fcall_publish(self.r, TOPIC, "before")
        n_bad = self.store_bad()
        after = fcall_publish(self.r, TOPIC, "after")
        cursor = "%s_%s" % (first, self.r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode())

        sse = SSEClient(h.port, "/events/" + TOPIC, headers={"Last-Event-ID": cursor})
        self._closers.append(sse)
        self.assertEqual(sse.status, 200)
        ev = sse.next_event(10 * harness.SCALE)
        self.assertEqual((split_cursor(ev.id)[0], ev.data, ev.event), (after, "after", None))

        ws = WSClient(h.port)
        self._closers.append(ws)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": TOPIC, "since": cursor,
                                      "id": 1}),
                         {"type": "subscribed", "topic": TOPIC, "id": 1})
        msg = ws.recv_json(10 * harness.SCALE)
        self.assertEqual((msg.get("type"), split_cursor(msg["id"])[0], msg.get("data"),
                          msg.get("event")), ("event", after, "after", None), msg)

        status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0" % (TOPIC, cursor))
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        self.assertEqual([(split_cursor(e["id"])[0], e["data"]) for e in answer["events"]],
                         [(after, "after")], answer)

        # nothing else came: one more event is the next thing each reader gets
        last = fcall_publish(self.r, TOPIC, "last")
        ev = sse.next_event(10 * harness.SCALE)
        self.assertEqual((split_cursor(ev.id)[0], ev.data), (last, "last"))
        msg = ws.recv_json(10 * harness.SCALE)
        self.assertEqual((split_cursor(msg["id"])[0], msg["data"]), (last, "last"), msg)
        self.finish(h, n_bad)

    def test_long_poll_next_is_past_them(self):
        """A long-poll answered without events (the stream ends with skipped entries) names a
        `next` past them: the next poll does not read (and skip, and count) them again."""
        h = self.start()
        first = fcall_publish(self.r, TOPIC, "before")
        n_bad = self.store_bad(n_names=10)
        cursor = "%s_%s" % (first, self.r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode())
        status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0" % (TOPIC, cursor))
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        tail = self.r.cmd("XINFO", "STREAM", stream_key(TOPIC))
        tail = dict(zip(tail[::2], tail[1::2]))[b"last-generated-id"].decode()
        self.assertEqual((answer["events"], split_cursor(answer["next"])[0]), ([], tail), answer)
        wait_until(lambda: skipped(h) == n_bad, 10, what="skipped entries counted")
        for _ in range(3):
            status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0"
                                       % (TOPIC, json.loads(body)["next"]))
            self.assertEqual((status, json.loads(body)["events"]), (200, []), body)
        self.assertEqual(skipped(h), n_bad, "read and skipped again")
        after = fcall_publish(self.r, TOPIC, "after")
        status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0"
                                   % (TOPIC, json.loads(body)["next"]))
        self.assertEqual([split_cursor(e["id"])[0] for e in json.loads(body)["events"]], [after])
        self.finish(h, n_bad)

    def test_epoch_key_set_around_herald(self):
        """A topic's epoch key SET around Herald to a value it would not make (a quote, a
        comma, a line break) went into every cursor: long-poll's `next` forged JSON keys, SSE
        `id:` lines carried it and the browser's reconnect with it was refused (400) for good.
        It now counts as no epoch: reads answer without one (a reset for a cursor that had
        one), and the next publish makes a new one."""
        h = self.start()
        first = fcall_publish(self.r, TOPIC, "before")
        epk = "herald:{%s}:epoch" % TOPIC
        cursor = "%s_%s" % (first, self.r.cmd("GET", epk).decode())
        self.r.cmd("SET", epk, 'a","x":"y')
        status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0" % (TOPIC, cursor))
        self.assertEqual(status, 200, body)
        answer = json.loads(body)
        self.assertEqual((sorted(answer), answer.get("gap")), (["events", "gap", "next"], "reset"),
                         body)
        self.assertRegex(answer["next"], r"^\d+-\d+$", "a cursor without the bad epoch")
        sse = SSEClient(h.port, "/events/" + TOPIC)
        self._closers.append(sse)
        wait_live_subscribed(self.r, TOPIC)
        after = fcall_publish(self.r, TOPIC, "after")
        epoch = self.r.cmd("GET", epk).decode()
        self.assertRegex(epoch, "^[0-9a-z]{1,16}$", "a new epoch made by the publish")
        ev = sse.next_event(10 * harness.SCALE)
        self.assertEqual((ev.id, ev.data), ("%s_%s" % (after, epoch), "after"))
        again = SSEClient(h.port, "/events/" + TOPIC, headers={"Last-Event-ID": ev.id})
        self._closers.append(again)
        self.assertEqual(again.status, 200)
        last = fcall_publish(self.r, TOPIC, "last")
        ev = again.next_event(10 * harness.SCALE)
        self.assertEqual((split_cursor(ev.id)[0], ev.data), (last, "last"))
        self.bystander.check()
        self.assert_serving(h)

    def test_refill_after_a_reconnection_reads_past_them(self):
        h = self.start()
        sse = SSEClient(h.port, "/events/" + TOPIC)
        self._closers.append(sse)
        self.assertEqual(sse.status, 200)
        wait_live_subscribed(self.r, TOPIC)
        first = fcall_publish(self.r, TOPIC, "before")
        self.assertEqual(split_cursor(sse.next_event(10 * harness.SCALE).id)[0], first)
        # stored without a live message: the edge learns of them by the refill that follows
        # its reconnection, which reads on from "before", more than a page of them
        n_bad = self.store_bad()
        self.r.cmd("CLIENT", "KILL", "SKIPME", "yes")
        wait_until(lambda: skipped(h) >= n_bad, 10,
                   what="the refill read past them")
        wait_until(lambda: scrape(h.port).get("herald_ready") == 1, 10, what="edge ready again")
        last = fcall_publish(self.r, TOPIC, "last")
        ev = sse.next_event(10 * harness.SCALE)
        self.assertEqual((split_cursor(ev.id)[0], ev.data, ev.event), (last, "last", None))
        sse.pump(0.3 * harness.SCALE)
        self.assertEqual(sse.pending(), [])
        self.finish(h, n_bad)

    def forged_live_message(self, first_payload, forged, reason, logged):
        """A message PUBLISHed on TOPIC's live channel around Herald (forged(epoch) its text):
        not delivered, counted as untrusted for `reason` (and only that), logged; the events
        stored after it reach the subscriber once each, and nothing else does."""
        h = self.start()
        sse = SSEClient(h.port, "/events/" + TOPIC)
        self._closers.append(sse)
        wait_live_subscribed(self.r, TOPIC)
        first = fcall_publish(self.r, TOPIC, first_payload)
        ev = sse.next_event(10 * harness.SCALE)
        self.assertEqual((split_cursor(ev.id)[0], ev.data), (first, first_payload))
        epoch = self.r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        self.r.cmd("PUBLISH", live_channel(TOPIC), forged(epoch))
        wait_until(lambda: untrusted(h, reason) == 1, 10, what="the message counted")
        for data in ("after", "last"):
            sid = fcall_publish(self.r, TOPIC, data)
            ev = sse.next_event(10 * harness.SCALE)
            self.assertEqual((split_cursor(ev.id)[0], ev.data), (sid, data))
        sse.pump(0.3 * harness.SCALE)
        self.assertEqual(sse.pending(), [])
        self.assertEqual(untrusted(h, "too_large" if reason == "ahead" else "ahead"), 0)
        self.assertIn(logged, h.log())
        self.bystander.check()
        assert_idle(self, h)

    def test_live_message_far_ahead_is_not_trusted(self):
        """Anyone who may PUBLISH on Redis (a raw-ingest publisher) can send a message on a
        topic's live channel. One with an ID far ahead moved the topic's position past every
        real event to come, which were then dropped as delivered already: the topic fell
        silent on every edge. Now it is not delivered and the topic is read from its stream."""
        self.forged_live_message("before", lambda ep: "H1|99999999999999-0|%s|||forged" % ep,
                                 "ahead", "live message ahead of this edge's clock")

    def test_live_message_over_the_bound_is_not_trusted(self):
        """A message PUBLISHed on a topic's live channel around Herald with a payload over
        --max-message-bytes went to every subscriber (history passes such an entry over); it is
        not delivered now, and the topic is read from its stream. The bound itself is."""
        now_ms = int(time.time() * 1000)
        self.forged_live_message("f" * MAX,
                                 lambda ep: "H1|%d-0|%s|||%s" % (now_ms, ep, "z" * (MAX + 1)),
                                 "too_large", "live message over --max-message-bytes")

    def test_publish_answer_that_is_no_event_id(self):
        """A library replaced around Herald (anyone with FUNCTION LOAD) answered a publish with
        a string the edge copied into its JSON answer, forging keys. The answer must be an
        event ID: anything else is an error, logged; 504, outcome unknown (this one stored
        the event before it answered)."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, args=["--publish-key", "k"])
        status, _, body = http_get(h.port, "/publish/" + TOPIC, method="POST", body=b"one",
                                   headers={"Authorization": "Bearer k"})
        self.assertEqual(status, 200, body)
        self.assertRegex(json.loads(body)["id"], r"^\d+-\d+$")
        lib = r.cmd("FUNCTION", "LIST", "LIBRARYNAME", "herald", "WITHCODE")[0]
        code = dict(zip(lib[::2], lib[1::2]))[b"library_code"].decode()
        orig = "return store(topic, args[1], args[2] or '', '')"
        self.assertIn(orig, code)
        r.cmd("FUNCTION", "LOAD", "REPLACE", code.replace(
            orig, "local id = store(topic, args[1], args[2] or '', '')\n"
                  "  return id .. '\",\"admin\":true,\"z\":\"'"))
        status, _, body = http_get(h.port, "/publish/" + TOPIC, method="POST", body=b"two",
                                   headers={"Authorization": "Bearer k"})
        self.assertEqual(status, 504, body)
        self.assertNotIn(b"admin", body)
        self.assertIn("publish answered with no event ID", h.log())
        self.assert_serving(h)

    def test_history_reply_is_bounded_in_bytes(self):
        """herald_history's fourth argument bounds a page's payload bytes (one entry at least),
        and a payload over the library's bound is left out of the reply (field x: its size):
        what an edge buffers per read is bounded before Redis sends it."""
        self.start()
        ids = [fcall_publish(self.r, TOPIC, ("%03d" % i) * 300) for i in range(20)]  # 900 B
        self.r.cmd("XADD", stream_key(TOPIC), "*", "d", "z" * 100000)
        self.r.cmd("XADD", stream_key(TOPIC), "*", "n" * 50000, "v", "d", "ok")
        ep = self.r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        got, since = [], "0-0"
        for _ in range(40):
            epoch, gap, ents, tail = self.r.cmd("FCALL_RO", "herald_history", 1, TOPIC, since, ep,
                                                500, 4000)
            self.assertEqual((epoch.decode(), gap), (ep, b""))
            size = sum(len(v) for e in ents for v in e[1][1::2])
            self.assertLessEqual(size, 4000, "%d entries" % len(ents))
            self.assertGreaterEqual(len(ents), 1)
            got += ents
            since = ents[-1][0].decode()
            if since == tail.decode():
                break
        self.assertEqual([e[0].decode() for e in got[:20]], ids)
        self.assertEqual(got[20][1], [b"x", b"100001"])
        self.assertEqual(got[21][1], [b"x", b"50004"])  # field names count too
        self.assertEqual(len(got), 22)


if __name__ == "__main__":
    harness.main()
