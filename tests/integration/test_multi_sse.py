"""Multi-topic SSE (GET /events?topic=a&topic=b), checked against PROTOCOL.md: each event's id
is the composite cursor of all the URL's topics (in URL order, empty for a topic with nothing
delivered yet), its data the WebSocket event object; a composite Last-Event-ID resumes each
topic exactly on any edge; gap notices per topic; 400 for a wrong part count, duplicates, bad
topics and too many topics."""

import json
import urllib.parse

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, stream_key, wait_live_subscribed,
                     xrange)


def epoch_of(r, topic):
    e = r.cmd("GET", "herald:{%s}:epoch" % topic)
    assert e is not None, "no epoch key for %r" % topic
    return e.decode()


def wait_many_subscribed(r, topics, timeout=10.0):
    chans = [harness.live_channel(t) for t in topics]

    def ok():
        reply = r.cmd("PUBSUB", "NUMSUB", *chans)
        return all(reply[i] >= 1 for i in range(1, len(reply), 2))
    harness.wait_until(ok, timeout, what="live subscriptions for %d topics" % len(topics))


def multi_path(topics, extra=""):
    return "/events?" + "&".join("topic=" + urllib.parse.quote(t, safe="") for t in topics) + extra


class MultiSSE(HeraldTestCase):

    def start(self, args=(), n=1):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.hs = [self.edge(self.srv, "edge-%d" % (i + 1), list(args)) for i in range(n)]
        self.h = self.hs[0]

    def cursor(self, topic, sid):
        return "%s_%s" % (sid, epoch_of(self.r, topic))

    def open(self, topics, h=None, headers=None, extra=""):
        h = h or self.h
        c = self.sse(h.port, multi_path(topics, extra), headers)
        self.assertEqual(c.status, 200, bytes(c.raw[:300]))
        self.assertEqual(c.headers.get("content-type", "").split(";")[0].strip(),
                         "text/event-stream")
        self.assertEqual(c.headers.get("x-herald-node"), h.node_id)
        return c

    def expect(self, c, topics, state, topic, sid, data, event=None):
        """The next event is (topic, sid, data, event); state (topic -> cursor) is updated and
        the composite id checked."""
        e = c.next_event()
        cur = self.cursor(topic, sid)
        state[topic] = cur
        obj = {"type": "event", "topic": topic, "id": cur, "data": data}
        if event is not None:
            obj["event"] = event
        self.assertEqual(e.event, event, e)
        self.assertEqual(json.loads(e.data), obj, e)
        self.assertEqual(e.id, ",".join(state.get(t, "") for t in topics), e)
        return e

    def status_of(self, path, headers=None, h=None):
        status, hdrs, body = http_get((h or self.h).port, path, headers=headers)
        self.assertEqual(hdrs.get("x-herald-node"), (h or self.h).node_id, path)
        if status == 400:
            text = body.rstrip(b"\r\n")
            self.assertTrue(text and b"\n" not in text, "%s: one-line reason %r" % (path, body))
        return status, body

    def test_interleaved_composite_ids(self):
        self.start()
        topics = ["m.a", "m.b"]
        c = self.open(topics)
        wait_many_subscribed(self.r, topics)
        state = {}
        plan = [("m.a", "a1", None), ("m.b", "b1", "bee"), ("m.a", "a2", None),
                ("m.b", "b2\nline two", None), ("m.b", "b3", None), ("m.a", "a3", "ay")]
        pub = [(t, fcall_publish(self.r, t, d, ev), d, ev) for t, d, ev in plan]
        first = self.expect(c, topics, state, *pub[0])
        self.assertTrue(first.id.endswith(","), "empty part for m.b: %r" % first.id)
        for p in pub[1:]:
            self.expect(c, topics, state, *p)
        # order of the URL matters, not of the first event. A client without a cursor starts
        # "from now", which may be just after the next publish: resume m.a from the last
        # event so the test does not race the edge taking the new connection.
        d = self.open(["m.b", "m.a"], headers={"Last-Event-ID": "," + state["m.a"]})
        wait_many_subscribed(self.r, topics)
        st2 = {}
        sid = fcall_publish(self.r, "m.a", "a4")
        e = self.expect(d, ["m.b", "m.a"], st2, "m.a", sid, "a4")
        self.assertTrue(e.id.startswith(","), e.id)
        self.expect(c, topics, state, "m.a", sid, "a4")

    def resume_scenario(self, how):
        self.start(n=2)
        topics = ["r.a", "r.b"]
        c = self.open(topics)
        wait_many_subscribed(self.r, topics)
        state = {}
        for t, d in (("r.a", "a1"), ("r.b", "b1"), ("r.a", "a2")):
            last = self.expect(c, topics, state, t, fcall_publish(self.r, t, d), d)
        c.close()
        missed = [(t, fcall_publish(self.r, t, d), d)
                  for t, d in (("r.b", "b2"), ("r.a", "a3"), ("r.b", "b3"), ("r.a", "a4"))]
        if how == "header":
            d = self.open(topics, h=self.hs[1], headers={"Last-Event-ID": last.id})
        else:
            d = self.open(topics, h=self.hs[1], extra="&lastEventId=" + urllib.parse.quote(
                last.id, safe=""))
        got = d.events(len(missed))
        per_topic = {t: [] for t in topics}
        for e in got:
            obj = json.loads(e.data)
            per_topic[obj["topic"]].append((obj["id"], obj["data"]))
            state[obj["topic"]] = obj["id"]
            self.assertEqual(e.id, ",".join(state[t] for t in topics), e)
        want = {t: [(self.cursor(t, sid), dd) for tt, sid, dd in missed if tt == t]
                for t in topics}
        self.assertEqual(per_topic, want, "exactly the missed events per topic")
        wait_many_subscribed(self.r, topics)
        sid = fcall_publish(self.r, "r.b", "live")
        self.expect(d, topics, state, "r.b", sid, "live")  # and nothing before it

    def test_resume_composite_header_on_other_edge(self):
        self.resume_scenario("header")

    def test_resume_composite_query_on_other_edge(self):
        self.resume_scenario("query")

    def test_empty_part_resumes_live_only(self):
        self.start()
        topics = ["e.a", "e.b"]
        a1 = fcall_publish(self.r, "e.a", "a1")
        fcall_publish(self.r, "e.b", "b-before")
        a2 = fcall_publish(self.r, "e.a", "a2")
        comp = self.cursor("e.a", a1) + ","
        c = self.open(topics, headers={"Last-Event-ID": comp})
        state = {"e.a": self.cursor("e.a", a1)}
        self.expect(c, topics, state, "e.a", a2, "a2")
        wait_many_subscribed(self.r, topics)
        sid = fcall_publish(self.r, "e.b", "b-live")
        self.expect(c, topics, state, "e.b", sid, "b-live")

    def test_gap_notice_per_topic(self):
        self.start(["--history-max", "10"])
        topics = ["g.a", "g.b"]
        ca = self.cursor("g.a", fcall_publish(self.r, "g.a", "a-0"))
        cb = self.cursor("g.b", fcall_publish(self.r, "g.b", "b-0"))
        replies = self.r.pipeline([("FCALL", "herald_publish", 1, "g.a", "a-%d" % i)
                                   for i in range(1, 300)])
        self.assertEqual([x for x in replies if isinstance(x, harness.RedisError)], [])
        b1 = fcall_publish(self.r, "g.b", "b-1")
        retained = xrange(self.r, "g.a")
        self.assertLess(len(retained), 300)
        c = self.open(topics, headers={"Last-Event-ID": ca + "," + cb})
        evs = c.events(2 + len(retained))
        gaps = [e for e in evs if e.event == "herald.gap"]
        self.assertEqual([json.loads(e.data) for e in gaps],
                         [{"topic": "g.a", "reason": "trimmed"}])
        a_evs = [json.loads(e.data) for e in evs if e.event != "herald.gap"
                 and json.loads(e.data)["topic"] == "g.a"]
        self.assertLess(evs.index(gaps[0]), evs.index(
            next(e for e in evs if e.event != "herald.gap" and
                 json.loads(e.data)["topic"] == "g.a")), "the gap notice comes first")
        self.assertEqual([(o["id"], o["data"]) for o in a_evs],
                         [(self.cursor("g.a", eid), f["d"].decode()) for eid, f in retained])
        b_evs = [json.loads(e.data) for e in evs if e.event != "herald.gap"
                 and json.loads(e.data)["topic"] == "g.b"]
        self.assertEqual([(o["id"], o["data"]) for o in b_evs], [(self.cursor("g.b", b1), "b-1")])

    def test_gap_reset(self):
        self.start()
        topics = ["gr.a", "gr.b"]
        old = self.cursor("gr.a", fcall_publish(self.r, "gr.a", "old"))
        self.assertEqual(self.r.cmd("DEL", stream_key("gr.a")), 1)
        new = fcall_publish(self.r, "gr.a", "new")
        c = self.open(topics, headers={"Last-Event-ID": old + ","})
        g = c.next_event()
        self.assertEqual((g.event, json.loads(g.data)), ("herald.gap",
                                                         {"topic": "gr.a", "reason": "reset"}))
        self.expect(c, topics, {}, "gr.a", new, "new")

    def test_bad_requests_400(self):
        self.start()
        ok = "1-0_ab"
        cases = [
            ("one part for two topics (header)", multi_path(["p.a", "p.b"]),
             {"Last-Event-ID": ok}),
            ("three parts for two topics (header)", multi_path(["p.a", "p.b"]),
             {"Last-Event-ID": ok + "," + ok + "," + ok}),
            ("two parts for one topic (header)", multi_path(["p.a"]),
             {"Last-Event-ID": ok + "," + ok}),
            ("one part for two topics (query)", multi_path(["p.a", "p.b"], "&lastEventId=" + ok),
             None),
            ("bad cursor in a part", multi_path(["p.a", "p.b"]), {"Last-Event-ID": ok + ",x"}),
            ("duplicate topic", multi_path(["p.a", "p.b", "p.a"]), None),
            ("bad topic", multi_path(["p.a", "a b"]), None),
            ("empty topic", multi_path(["p.a", ""]), None),
            ("129-byte topic", multi_path(["t" * 129]), None),
            ("no topic", "/events?", None),
            ("other parameter only", "/events?foo=bar", None),
            ("65 topics", multi_path(["t%02d" % i for i in range(65)]), None),
        ]
        for what, path, headers in cases:
            status, body = self.status_of(path, headers)
            self.assertEqual(status, 400, "%s: %s -> %r" % (what, path[:120], body))
        # 64 topics and a matching composite are fine
        topics = ["t%02d" % i for i in range(64)]
        c = self.open(topics, headers={"Last-Event-ID": "," * 63})
        c.wait_retry()
        c.close()
        c = self.open(["p.a", "p.b"], headers={"Last-Event-ID": ok + "," + ok})
        c.wait_retry()
        self.assert_serving(self.h)

    def test_lowered_topic_limit(self):
        self.start(["--max-topics-per-connection", "3"])
        self.open(["l.a", "l.b", "l.c"]).wait_retry()
        status, body = self.status_of(multi_path(["l.a", "l.b", "l.c", "l.d"]))
        self.assertEqual(status, 400, body)


    def test_topic_lists_in_one_argument(self):
        """More topics than libwebsockets parses as separate arguments (~90 header lines and
        query arguments together; a request with more was dropped without an answer): one
        argument may list them, joined by ",". Mixed with single ones, in URL order."""
        self.start(["--max-topics-per-connection", "300"])
        topics = ["l%03d" % i for i in range(300)]
        path = "/events?topic=%s&topic=%s&topic=%s" % (",".join(topics[:150]), topics[150],
                                                      ",".join(topics[151:]))
        c = self.sse(self.h.port, path, None)
        self.assertEqual(c.status, 200, bytes(c.raw[:300]))
        wait_many_subscribed(self.r, [topics[0], topics[150], topics[299]])
        state = {}
        for t in (topics[299], topics[0], topics[150]):
            sid = fcall_publish(self.r, t, "on " + t)
            self.expect(c, topics, state, t, sid, "on " + t)
        for what, bad in (("empty part", "a,,b"), ("trailing comma", "a,b,"),
                          ("listed twice", "a,b,a"), ("bad byte", "a,b c")):
            status, body = self.status_of("/events?topic=" + urllib.parse.quote(bad, safe=","))
            self.assertEqual(status, 400, "%s: %r" % (what, body))
        status, body = self.status_of("/events?topic=" + ",".join(topics) + ",x")
        self.assertEqual(status, 400, body)  # 301 topics
        self.assert_serving(self.h)

    def test_resume_at_the_topic_limit_with_a_browser_head(self):
        """At the default limits a client with the most topics it may have resumes: its
        request names them all, and its composite Last-Event-ID carries a cursor per topic
        (about 27 bytes each), beside a browser's cookies. Over --max-header-bytes
        libwebsockets drops the request without an answer, and EventSource reconnects with
        the same head for ever: with the old 4,096-byte default a 64-topic client of 40-byte
        names could never resume."""
        self.start()
        topics = ["resume.at.the.limit.%020d" % i for i in range(64)]
        self.assertEqual(len(topics[0]), 40)
        state = {t: self.cursor(t, fcall_publish(self.r, t, "before " + t)) for t in topics}
        head = {"Last-Event-ID": ",".join(state[t] for t in topics),
                "Cookie": "session=" + "c" * 3000,
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                              "Gecko) Chrome/131.0.0.0 Safari/537.36"}
        c = self.sse(self.h.port, "/events?topic=" + ",".join(topics), head)
        self.assertEqual(c.status, 200, bytes(c.raw[:300]))
        wait_many_subscribed(self.r, [topics[0], topics[63]])
        for t in (topics[63], topics[0]):
            sid = fcall_publish(self.r, t, "after " + t)
            self.expect(c, topics, state, t, sid, "after " + t)
        c.pump(0.3)
        self.assertEqual(c.pending(), [], "an event at or before its cursor")

if __name__ == "__main__":
    harness.main()
