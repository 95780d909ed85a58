"""A resume that spans several history pages, while the stream is wiped and recreated between
two of its pages (an operator's FLUSHALL: the edge's connections stay up, so only the epoch can
tell). The pages after the first must still be read against the epoch the resume started in:
the client gets the old stream's events it had, then a `reset` notice, then the new stream's
events, never the new stream's events as if they continued the old one (the checker's
"epoch-without-reset")."""

import json
import socket
import time

import harness
from harness import HeraldTestCase, fcall_publish, split_cursor, wait_live_subscribed

TOPIC = "rw.t"


class ResumeAcrossWipe(HeraldTestCase):

    def test_pages_after_a_wipe_get_a_reset(self):
        srv = self.redis()
        r = self.client(srv)
        # small pages: --history-batch 4, and the client reads nothing for a while, so each
        # next page waits for it (the resume is paced by the client's reading); the kernel's
        # send buffer capped, so that how much of the resume it absorbs before the wipe does not
        # depend on its autotuning (up to net.ipv4.tcp_wmem: all of it, on a fast edge)
        h = self.edge(srv, "edge-1", ["--ingest", "off", "--history-batch", "4",
                                      "--client-queue-bytes", "65536", "--send-buffer", "262144"])
        big = "x" * 30000
        ids = [fcall_publish(r, TOPIC, "old-%d-%s" % (i, big)) for i in range(120)]
        old_epoch = r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        cursor = "%s_%s" % (ids[0], old_epoch)

        c = self.sse(h.port, "/events/" + TOPIC, {"Last-Event-ID": cursor})
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_live_subscribed(r, TOPIC)
        time.sleep(1.0)  # the first pages fill the socket buffers; the next waits for the reader

        r.cmd("FLUSHALL")  # keys only: the function library stays, the edge stays connected
        new = [fcall_publish(r, TOPIC, "new-%d" % i) for i in range(3)]
        new_epoch = r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        self.assertNotEqual(new_epoch, old_epoch)

        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # read at full speed now
        got, seen_reset = [], False
        deadline = time.monotonic() + 60 * harness.SCALE
        while time.monotonic() < deadline:
            e = c.next_event(30 * harness.SCALE)
            if e.event == "herald.gap":
                self.assertEqual(json.loads(e.data), {"topic": TOPIC, "reason": "reset"})
                seen_reset = True
                got.append(("reset", None))
                continue
            sid, ep = split_cursor(e.id)
            if ep == new_epoch:
                self.assertTrue(seen_reset, "%s of the new stream (after %d old events) without "
                                "a reset notice first" % (e.data, len(got)))
            got.append((e.data.split("-%s" % big)[0] if ep == old_epoch else e.data, ep))
            if e.data == "new-2":
                break
        news = [d for d, ep in got if ep == new_epoch]
        self.assertEqual(news, ["new-0", "new-1", "new-2"], "the new stream's events, once each")
        olds = [d for d, ep in got if ep == old_epoch]
        self.assertGreater(len(olds), 0)
        self.assertLess(len(olds), 119, "the wipe must fall between two pages of the resume")
        self.assertEqual(olds, ["old-%d" % i for i in range(1, 1 + len(olds))],
                         "the old stream's events in order, from the cursor on, none twice")
        harness.log("resume across a wipe: %d old events, then %r" % (
            len(olds), [d for d, _ in got[len(olds):]]))

    def test_live_subscriber_gets_a_reset_after_a_wipe(self):
        """A subscriber that caught up from history and then saw no live event of the old
        stream: a wipe (FLUSHALL, connections up) and a publish make a new stream, whose first
        event must come after a `reset` notice, not as if it continued the old stream. The
        edge knows the old stream only from the position it read when it subscribed."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--ingest", "off"])
        ids = [fcall_publish(r, TOPIC, "old-%d" % i) for i in range(10)]
        old_epoch = r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        c = self.sse(h.port, "/events/" + TOPIC, {"Last-Event-ID": "%s_%s" % (ids[0], old_epoch)})
        wait_live_subscribed(r, TOPIC)
        self.assertEqual([c.next_event(10 * harness.SCALE).data for _ in range(9)],
                         ["old-%d" % i for i in range(1, 10)])
        r.cmd("FLUSHALL")
        fcall_publish(r, TOPIC, "new-0")
        new_epoch = r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        self.assertNotEqual(new_epoch, old_epoch)
        e = c.next_event(10 * harness.SCALE)
        self.assertEqual((e.event, json.loads(e.data)), ("herald.gap",
                                                         {"topic": TOPIC, "reason": "reset"}))
        e = c.next_event(10 * harness.SCALE)
        self.assertEqual((e.data, split_cursor(e.id)[1]), ("new-0", new_epoch))
        fcall_publish(r, TOPIC, "new-1")  # the same stream now: no second notice
        e = c.next_event(10 * harness.SCALE)
        self.assertEqual((e.event, e.data), (None, "new-1"))

    def test_pages_after_a_trim_get_a_trimmed_notice(self):
        """The same paced resume, while publishes trim the stream past where it stands: the
        next page must say `trimmed` before what is kept (else the trimmed events are lost
        without a word)."""
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1", ["--ingest", "off", "--history-batch", "4",
                                      "--client-queue-bytes", "65536", "--history-max", "200"])
        big = "x" * 30000
        ids = [fcall_publish(r, TOPIC, "old-%d-%s" % (i, big)) for i in range(150)]
        epoch = r.cmd("GET", "herald:{%s}:epoch" % TOPIC).decode()
        c = self.sse(h.port, "/events/" + TOPIC, {"Last-Event-ID": "%s_%s" % (ids[0], epoch)})
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_live_subscribed(r, TOPIC)
        time.sleep(1.0)
        for i in range(400):  # MAXLEN ~ 200: the old events the resume has not read are gone
            fcall_publish(r, TOPIC, "later-%d" % i)
        first_kept = r.cmd("XRANGE", harness.stream_key(TOPIC), "-", "+", "COUNT", "1")[0][0]
        self.assertFalse(first_kept.decode().startswith(ids[1].split("-")[0] + "-"),
                         "the publishes trimmed the stream")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = []
        while True:
            e = c.next_event(30 * harness.SCALE)
            if e.event == "herald.gap":
                got.append("gap:" + json.loads(e.data)["reason"])
                continue
            got.append(e.data.split("-%s" % big)[0])
            if e.data == "later-399":
                break
        olds = [g for g in got if g.startswith("old-")]
        self.assertEqual(olds, ["old-%d" % i for i in range(1, 1 + len(olds))])
        self.assertLess(len(olds), 149, "the trim must fall between two pages of the resume")
        after = got[len(olds):]
        self.assertEqual(after[0], "gap:trimmed",
                         "after old-%d the resume went on at %r without a notice" % (
                             len(olds), after[0]))
        laters = [g for g in after[1:] if g.startswith("later-")]
        self.assertEqual(laters, ["later-%d" % i for i in range(400 - len(laters), 400)],
                         "what is kept, in order, to the end")
        harness.log("resume across a trim: %d old events, then %r, then %d later ones" % (
            len(olds), after[0], len(laters)))


if __name__ == "__main__":
    harness.main()
