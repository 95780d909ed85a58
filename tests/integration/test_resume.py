"""Resume on another edge: after a disconnect, a client that comes back anywhere with its last
cursor gets every retained event after it, then live events: no duplicate, no gap."""

import urllib.parse

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed


class Resume(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.a, self.b = self.edges(self.srv, 2)

    def scenario(self, topic, how):
        a = self.sse(self.a.port, "/events/" + topic)
        wait_live_subscribed(self.r, topic)
        ids = [fcall_publish(self.r, topic, "ev-%d" % i) for i in range(1, 6)]
        first = a.events(5)
        self.assertEqual([e.data for e in first], ["ev-%d" % i for i in range(1, 6)])
        self.assertEqual([split_cursor(e.id)[0] for e in first], ids)
        a.close()

        ids += [fcall_publish(self.r, topic, "ev-%d" % i) for i in range(6, 11)]
        cursor = first[-1].id
        if how == "header":
            b = self.sse(self.b.port, "/events/" + topic, {"Last-Event-ID": cursor})
        elif how == "query":
            b = self.sse(self.b.port, "/events/%s?lastEventId=%s" % (
                topic, urllib.parse.quote(cursor, safe="")))
        else:
            b = self.sse(self.b.port, "/events/" + topic, {"Last-Event-ID": ids[4]})
        self.assertEqual(b.status, 200)
        self.assertEqual(b.headers.get("x-herald-node"), "edge-2")
        replay = b.events(5)
        self.assertEqual([(e.event, e.data) for e in replay],
                         [(None, "ev-%d" % i) for i in range(6, 11)])
        self.assertEqual([split_cursor(e.id)[0] for e in replay], ids[5:10])
        self.assertEqual({split_cursor(e.id)[1] for e in first + replay},
                         {split_cursor(first[0].id)[1]}, "one epoch for one stream")

        ids.append(fcall_publish(self.r, topic, "ev-11"))
        live = b.next_event()
        self.assertEqual((split_cursor(live.id)[0], live.data), (ids[10], "ev-11"))
        # Nothing else: no duplicate of a replayed or live event.
        b.pump(1.0)
        self.assertEqual(b.pending(), [], "unexpected extra events")
        harness.log("resume via %s: replayed %d, then live %s" % (how, len(replay), live.id))

    def test_last_event_id_header(self):
        self.scenario("resume.header", "header")

    def test_last_event_id_query(self):
        self.scenario("resume.query", "query")

    def test_bare_stream_id(self):
        self.scenario("resume.bare", "bare")


if __name__ == "__main__":
    harness.main()
