"""A WebSocket client that unsubscribes and subscribes again to a topic (a view switched back
and forth) while an event of the topic is on its way to its service thread is not cut off.

Its thread's UNSUB and new SUB go to the broker behind that event: the event reaches the
thread's new subscription (the client has a position from it), and the broker answers the SUB
with a join (the topic had a message for the thread after the client's ask). The join meant
"what the broker emitted meanwhile may have missed this thread": a client with a position was
closed 1011 to resume, though nothing was lost; now it reads on from its position in place.
The broker thread alone is stopped (ptrace) so that the order is certain.
"""

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_until
from threadstop import ThreadStop
from wsclient import WSClient, request

TOPIC = "g.churn"


class Churn(HeraldTestCase):

    def test_resubscribe_while_an_event_is_on_its_way(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--threads", "1"])
        ws = WSClient(h.port)
        self._closers.append(ws)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": TOPIC, "id": 1}),
                         {"type": "subscribed", "topic": TOPIC, "id": 1})
        harness.wait_live_subscribed(r, TOPIC)
        warm = fcall_publish(r, TOPIC, "warm")
        self.assertEqual(split_cursor(ws.recv_json(10)["id"])[0], warm)

        with ThreadStop(h.proc.pid):  # the broker is the edge's main thread
            on_way = fcall_publish(r, TOPIC, "on its way")
            wait_until(lambda: harness.sub_socket_flushed(r), 5,
                       what="the event on the edge's socket")
            self.assertEqual(request(ws, {"type": "unsubscribe", "topic": TOPIC, "id": 2}),
                             {"type": "unsubscribed", "topic": TOPIC, "id": 2})
            self.assertEqual(request(ws, {"type": "subscribe", "topic": TOPIC, "id": 3}),
                             {"type": "subscribed", "topic": TOPIC, "id": 3})
        later = fcall_publish(r, TOPIC, "later")
        got = []
        while not got or got[-1] != later:
            m = ws.recv_json(10)  # a close (1011) raises here
            self.assertEqual(m.get("type"), "event", m)
            got.append(split_cursor(m["id"])[0])
        self.assertIn(got, ([on_way, later], [later]), "once each, in order")
        ws.pump(0.3)
        self.assertEqual(ws.pending(), [])
        self.assert_serving(h)


if __name__ == "__main__":
    harness.main()
