"""The same events, published once, arrive with the same ids (and data and names) over every
transport: SSE, multi-topic SSE, WebSocket and long-poll, on two edges."""

import json

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, lease_holder, wait_live_subscribed,
                     xrange)
from wsclient import WSClient, request

KEY = "same-ids-key"


def epoch_of(r, topic):
    return r.cmd("GET", "herald:{%s}:epoch" % topic).decode()


class SameIds(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.a, self.b = self.edges(self.srv, 2, ["--publish-key", KEY])

    def open_all(self, topic, other):
        seed = fcall_publish(self.r, topic, "seed")
        seed_cur = "%s_%s" % (seed, epoch_of(self.r, topic))
        sse = self.sse(self.a.port, "/events/" + topic)
        multi = self.sse(self.b.port, "/events?topic=%s&topic=%s" % (other, topic))
        ws = WSClient(self.b.port)
        self._closers.append(ws)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": topic, "id": 1}),
                         {"type": "subscribed", "topic": topic, "id": 1})
        status, _, body = http_get(self.a.port, "/poll/%s?timeout=0" % topic)
        self.assertEqual(status, 200, body)
        poll_next = json.loads(body)["next"]
        self.assertEqual(poll_next, seed_cur, "poll without since: next is the tail cursor")
        wait_live_subscribed(self.r, topic, 1)
        # both edges hold the live subscription (SSE on a; multi and WS on b)
        wait_live_subscribed(self.r, topic, 2)
        return sse, multi, ws, poll_next

    def collect(self, topic, sse, multi, ws, poll_next, n):
        got = {}
        got["sse"] = [(e.id, e.event, e.data) for e in sse.events(n)]
        m = [json.loads(e.data) for e in multi.events(n)]
        self.assertEqual({x["topic"] for x in m}, {topic})
        got["multi-sse"] = [(x["id"], x.get("event"), x["data"]) for x in m]
        w = [ws.recv_json() for _ in range(n)]
        self.assertEqual({x["type"] for x in w}, {"event"}, w)
        got["websocket"] = [(x["id"], x.get("event"), x["data"]) for x in w]
        p, since, answers = [], poll_next, 0
        while len(p) < n and answers < 2 * n:
            status, _, body = http_get(self.b.port, "/poll/%s?since=%s&timeout=10" % (
                topic, since), timeout=20)
            self.assertEqual(status, 200, body)
            obj = json.loads(body)
            self.assertNotIn("gap", obj, obj)
            p += [(x["id"], x.get("event"), x["data"]) for x in obj["events"]]
            since = obj["next"]
            answers += 1
        got["long-poll"] = p
        return got

    def check(self, topic, got, names):
        epoch = epoch_of(self.r, topic)
        stored = xrange(self.r, topic)[1:]  # without the seed
        want = [("%s_%s" % (eid, epoch), f["e"].decode() if "e" in f else None,
                 f["d"].decode()) for eid, f in stored]
        self.assertEqual([w[1] for w in want], names)
        for transport, events in got.items():
            self.assertEqual(events, want, transport)
        harness.log("same ids over %s: %s" % (", ".join(got), [w[0] for w in want]))

    def test_fcall_events(self):
        topic, other = "same.ids", "same.other"
        sse, multi, ws, poll_next = self.open_all(topic, other)
        plan = [("one", None), ("two", "named"), ("three\nlines", None), ("{\"n\":4}", "json"),
                ("f\u00fcnf", None)]
        for data, ev in plan:
            fcall_publish(self.r, topic, data, ev)
        got = self.collect(topic, sse, multi, ws, poll_next, len(plan))
        self.check(topic, got, [ev for _, ev in plan])

    def test_every_publish_path(self):
        topic, other = "same.paths", "same.other2"
        sse, multi, ws, poll_next = self.open_all(topic, other)
        fcall_publish(self.r, topic, "by fcall", "f")
        status, _, body = http_get(self.a.port, "/publish/%s?event=h" % topic, method="POST",
                                   body=b"by http", headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(status, 200, body)
        pws = WSClient(self.a.port, headers={"Authorization": "Bearer " + KEY})
        self._closers.append(pws)
        r = request(pws, {"type": "publish", "topic": topic, "data": "by ws", "event": "w"})
        self.assertEqual(r.get("type"), "published", r)
        harness.wait_until(lambda: lease_holder(self.r), 15, what="an ingest leader")
        self.r.publish(topic, "by raw publish")
        fcall_publish(self.r, topic, "by fcall again")
        got = self.collect(topic, sse, multi, ws, poll_next, 5)
        self.check(topic, got, ["f", "h", "w", None, None])


if __name__ == "__main__":
    harness.main()
