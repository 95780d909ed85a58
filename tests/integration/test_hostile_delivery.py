"""The delivery path under large events, resumes and churn (issue 14, classes 3, 4, 5, 12).

- an event whose multi-topic SSE frame is bigger than any write buffer is delivered intact
  (a 70 KB text payload, a 48 KB binary one in base64), and the edge does not spin;
- a resume over 200 x 60 KB events with a small --client-queue-bytes is paced, not punished:
  SSE, WebSocket and long-poll get every event in order exactly once, nobody is cut off;
- subscribe-with-cursor / unsubscribe churn over WebSocket does not make the edge or Redis read
  history nobody receives (edge RSS and Redis' memory peak stay bounded, others unaffected);
- a cursor ahead of the stream (its epoch, a later ID) gets a reset notice, then live events.
Each test also checks a Bystander, assert_idle and assert_serving (hostile.py).
"""

import base64
import itertools
import json
import socket
import time
import urllib.parse

import harness
from harness import (HeraldTestCase, fcall_publish, http_get, split_cursor, wait_live_subscribed,
                     wait_until)
from hostile import Bystander, assert_idle
from wsclient import WSClient

BIG = 60 * 1024
N_RESUME = 200


def metric(h, name):
    status, _, body = http_get(h.port, "/metrics")
    assert status == 200, status
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def redis_info(r, field):
    text = r.cmd("INFO", "memory").decode()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no %s in INFO memory" % field)


def big_payload(i, size=BIG):
    head = ("event-%05d:" % i).encode()
    return head + bytes([97 + (i + k) % 26 for k in range(size - len(head))])


class HostileDelivery(HeraldTestCase):

    def start(self, args=()):
        self.srv = self.redis()
        self.r = self.client(self.srv)
        self.h = self.edge(self.srv, "edge-1", list(args))
        self.bystander = Bystander(self, self.h, self.r)
        return self.h

    def finish(self, h):
        # no history read is left holding a slot, none waits (the gauges are sampled 4/s)
        harness.wait_until(lambda: metric(h, "herald_history_reads") == 0, 5,
                           what="herald_history_reads back to 0")
        self.bystander.check()
        assert_idle(self, h)
        self.assert_serving(h)

    def publish_many(self, topic, n, size=BIG):
        """n events of `size` bytes; returns [(stream id, payload)]."""
        out = []
        for base in range(0, n, 20):
            chunk = [big_payload(i, size) for i in range(base, min(n, base + 20))]
            ids = self.r.pipeline([("FCALL", "herald_publish", 1, topic, p) for p in chunk])
            for rid, p in zip(ids, chunk):
                self.assertIsInstance(rid, bytes, rid)
                out.append((rid.decode(), p))
        return out

    # -- class 3: an event bigger than the write buffer, multi-topic SSE --

    def test_large_events_multi_topic_sse(self):
        h = self.start(["--max-message-bytes", "131072"])
        topics = ["big.a", "big.b"]
        c = self.sse(h.port, "/events?" + "&".join("topic=" + t for t in topics))
        self.assertEqual(c.status, 200)
        for t in topics:
            wait_live_subscribed(self.r, t)
        # Events of two topics keep their publish order on one connection only once both
        # topics are live: a topic's first subscription is refilled once confirmed, and its
        # live events wait for that read (no order is promised across topics). One event each
        # first, taken in whatever order, so that the order below is the publish order.
        for t in topics:
            fcall_publish(self.r, t, "warm")
        self.assertEqual(sorted(json.loads(e.data)["topic"] for e in c.events(2, timeout=10)),
                         topics)
        text = ("0123456789abcdef" * (70 * 1024 // 16)).encode()  # 70 KB
        binary = bytes(range(256)) * (48 * 1024 // 256)  # 48 KB, not UTF-8: base64 (64 KB)
        sid1 = fcall_publish(self.r, "big.a", text)
        sid2 = fcall_publish(self.r, "big.b", binary)
        sid3 = fcall_publish(self.r, "big.a", "small")
        got = c.events(3, timeout=10)
        objs = [json.loads(e.data) for e in got]
        self.assertEqual([(o["topic"], split_cursor(o["id"])[0]) for o in objs],
                         [("big.a", sid1), ("big.b", sid2), ("big.a", sid3)])
        self.assertEqual(objs[0]["data"].encode(), text)
        self.assertEqual(objs[1].get("encoding"), "base64")
        self.assertEqual(base64.b64decode(objs[1]["data"]), binary)
        self.assertEqual(objs[2]["data"], "small")
        # the composite id line follows each event: both topics' cursors
        self.assertEqual(got[1].id.split(","), [objs[0]["id"], objs[1]["id"]])
        self.assertEqual(got[2].id.split(","), [objs[2]["id"], objs[1]["id"]])
        # a reconnect with that composite cursor gets nothing again, then a live event
        c.close()
        c2 = self.sse(h.port, "/events?" + "&".join("topic=" + t for t in topics),
                      {"Last-Event-ID": got[2].id})
        sid4 = fcall_publish(self.r, "big.b", text)
        e = c2.next_event()
        self.assertEqual(split_cursor(json.loads(e.data)["id"])[0], sid4)
        self.finish(h)

    def test_id_line_split_across_writes(self):
        """The composite id line of a multi-topic SSE event may straddle two writes: frames
        sized so that the line starts at each position of a write buffer's last bytes."""
        h = self.start(["--max-message-bytes", "262144"])
        topics = ["split.a", "split.b"]
        c = self.sse(h.port, "/events?" + "&".join("topic=" + t for t in topics))
        for t in topics:
            wait_live_subscribed(self.r, t)
        fcall_publish(self.r, "split.b", "b")
        c.next_event()
        # measure the frame's overhead: raw bytes = frame (payload + overhead) + id line
        before = len(c.raw)
        fcall_publish(self.r, "split.a", "x" * 1000)
        e = c.next_event()
        idline = len("id: %s\n\n" % e.id)
        overhead = len(c.raw) - before - idline - 1000
        wbuf = 65536
        for k in range(1, idline + 1):
            size = 2 * wbuf - k - overhead  # the frame ends k bytes before a buffer's end
            payload = ("%06d" % k).encode() + b"y" * (size - 6)
            sid = fcall_publish(self.r, "split.a", payload)
            e = c.next_event(timeout=10)
            obj = json.loads(e.data)
            self.assertEqual((split_cursor(obj["id"])[0], obj["data"].encode()), (sid, payload))
            self.assertIsNotNone(e.id, "the event's id line was lost or garbled")
            parts = e.id.split(",")
            self.assertEqual(len(parts), 2, e.id)
            self.assertEqual(parts[0], obj["id"])
        self.finish(h)

    # -- class 4: a resume over large events is paced --

    def resume_setup(self, topic):
        h = self.start(["--client-queue-bytes", "1048576"])
        mark = fcall_publish(self.r, topic, "mark")
        epoch = self.r.cmd("GET", "herald:{%s}:epoch" % topic).decode()
        evs = self.publish_many(topic, N_RESUME)
        return h, "%s_%s" % (mark, epoch), evs

    def check_no_slow_cut(self, h):
        self.assertEqual(metric(h, "herald_slow_disconnects_total"), 0,
                         "a resuming client was cut off as a slow consumer")

    def test_resume_large_sse(self):
        topic = "resume.sse"
        h, cursor, evs = self.resume_setup(topic)
        c = self.sse(h.port, "/events/" + topic, {"Last-Event-ID": cursor})
        got = c.events(N_RESUME, timeout=20)
        self.assertEqual([(split_cursor(e.id)[0], e.data.encode()) for e in got],
                         [(i, p) for i, p in evs])
        sid = fcall_publish(self.r, topic, "live")
        e = c.next_event()
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "live"))
        self.check_no_slow_cut(h)
        self.finish(h)

    def test_resume_large_ws(self):
        topic = "resume.ws"
        h, cursor, evs = self.resume_setup(topic)
        for deflate in (False, True):  # offering permessage-deflate (declined) changes nothing
            ws = WSClient(h.port, deflate=deflate)
            self._closers.append(ws)
            ws.send_json({"type": "subscribe", "topic": topic, "since": cursor})
            self.assertEqual(ws.recv_json()["type"], "subscribed")
            got = [ws.recv_json(timeout=20) for _ in range(N_RESUME)]
            self.assertEqual(
                [(g["type"], split_cursor(g["id"])[0], g["data"].encode()) for g in got],
                [("event", i, p) for i, p in evs])
            sid = fcall_publish(self.r, topic, "live-%s" % deflate)
            evs.append((sid, ("live-%s" % deflate).encode()))
            g = ws.recv_json()
            self.assertEqual((split_cursor(g["id"])[0], g["data"]), (sid, "live-%s" % deflate))
            ws.close()
            cursor = "%s_%s" % (evs[0][0], split_cursor(got[0]["id"])[1])
            evs = evs[1:]
        self.check_no_slow_cut(h)
        self.finish(h)

    def test_resume_on_a_busy_connection(self):
        """A WebSocket whose queue holds more than a page when it subscribes with a cursor:
        the read waits for room, then starts once the client reads (never forgotten)."""
        h = self.start(["--client-queue-bytes", "1048576", "--send-buffer", "16384"])
        hist = "busy.hist"
        mark = fcall_publish(self.r, hist, "mark")
        cursor = "%s_%s" % (mark, self.r.cmd("GET", "herald:{%s}:epoch" % hist).decode())
        old = self.publish_many(hist, 5)

        def small(sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ws = WSClient(h.port, tune=small)
        self._closers.append(ws)
        ws.send_json({"type": "subscribe", "topic": "busy.live"})
        self.assertEqual(ws.recv_json()["type"], "subscribed")
        wait_live_subscribed(self.r, "busy.live")
        live = self.publish_many("busy.live", 10)  # ~600 KB: most of it waits in the queue
        time.sleep(0.5)
        ws.send_json({"type": "subscribe", "topic": hist, "since": cursor})
        got = {"busy.live": [], hist: []}
        acked = False
        while len(got["busy.live"]) < 10 or len(got[hist]) < 5 or not acked:
            m = ws.recv_json(timeout=20)
            if m["type"] == "subscribed":
                acked = True
            else:
                got[m["topic"]].append((split_cursor(m["id"])[0], m["data"].encode()))
        self.assertEqual(got, {"busy.live": live, hist: old})
        self.check_no_slow_cut(h)
        self.finish(h)

    def test_resume_large_multi_sse(self):
        """Two topics resuming on one connection share its one read slot, page by page."""
        h = self.start(["--client-queue-bytes", "1048576"])
        topics, cursors, evs = ["resume.ma", "resume.mb"], [], {}
        for t in topics:
            mark = fcall_publish(self.r, t, "mark")
            cursors.append("%s_%s" % (mark, self.r.cmd("GET", "herald:{%s}:epoch" % t).decode()))
            evs[t] = self.publish_many(t, N_RESUME // 2)
        c = self.sse(h.port, "/events?" + "&".join("topic=" + t for t in topics),
                     {"Last-Event-ID": ",".join(cursors)})
        got = {t: [] for t in topics}
        for _ in range(N_RESUME):
            o = json.loads(c.next_event(timeout=20).data)
            got[o["topic"]].append((split_cursor(o["id"])[0], o["data"].encode()))
        for t in topics:
            self.assertEqual(got[t], evs[t], t)
        self.check_no_slow_cut(h)
        self.finish(h)

    def test_resume_large_poll(self):
        topic = "resume.poll"
        h, cursor, evs = self.resume_setup(topic)
        got, since, answers = [], cursor, 0
        while len(got) < N_RESUME and answers < N_RESUME + 5:
            status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0" % (
                topic, urllib.parse.quote(since, safe="")), timeout=20)
            answers += 1
            self.assertEqual(status, 200, body[:200])
            obj = json.loads(body)
            self.assertNotIn("gap", obj)
            self.assertTrue(obj["events"], "an empty answer while history remains")
            got.extend(obj["events"])
            since = obj["next"]
        self.assertEqual([(split_cursor(g["id"])[0], g["data"].encode()) for g in got],
                         [(i, p) for i, p in evs])
        self.check_no_slow_cut(h)
        self.finish(h)

    # -- class 5: subscribe-with-cursor / unsubscribe churn --

    def test_history_churn_is_bounded(self):
        topic = "churn"
        h = self.start()
        mark = fcall_publish(self.r, topic, "mark")
        epoch = self.r.cmd("GET", "herald:{%s}:epoch" % topic).decode()
        self.publish_many(topic, 500)
        cursor = "%s_%s" % (mark, epoch)
        time.sleep(0.5)
        rss0 = rss_bytes(h.proc.pid)
        # Redis 7.0 cannot reset its peak: the peak after the churn is compared with what
        # Redis uses before it (the peak so far is the stream plus the publishes' buffers)
        used0 = redis_info(self.r, "used_memory")
        ws = WSClient(h.port)
        self._closers.append(ws)
        pairs = 40
        for i in range(pairs):
            ws.send_json({"type": "subscribe", "topic": topic, "since": cursor, "id": 2 * i})
            ws.send_json({"type": "unsubscribe", "topic": topic, "id": 2 * i + 1})
        # the bystander's latency while the edge works through the churn
        t0 = time.monotonic()
        self.bystander.check(timeout=10)
        latency = time.monotonic() - t0
        acks = 0
        end = harness.deadline(20)
        while acks < 2 * pairs and time.monotonic() < end:
            m = ws.recv_json(timeout=20)
            if m.get("type") in ("subscribed", "unsubscribed"):
                acks += 1
        self.assertEqual(acks, 2 * pairs)
        ws.close()
        assert_idle(self, h)
        grew = rss_bytes(h.proc.pid) - rss0
        peak = redis_info(self.r, "used_memory_peak") - used0
        harness.log("churn: bystander latency %.3fs, edge RSS +%d KB, Redis peak +%d KB" % (
            latency, grew >> 10, peak >> 10))
        self.assertLess(latency, 1.0 * harness.SCALE, "bystander latency during the churn")
        self.assertLess(grew, 48 << 20, "edge RSS grew by %d MB" % (grew >> 20))
        self.assertLess(peak, 64 << 20, "Redis memory peak grew by %d MB" % (peak >> 20))
        self.finish(h)

    def test_long_poll_whose_history_read_fails_gets_503(self):
        """A long-poll whose history read failed was closed without an answer (a transport
        error to the client, which cannot tell it from a network fault). It gets 503 now, and
        asks again from the same cursor."""
        h = self.start()
        topic = "pollfail"
        sid = fcall_publish(self.r, topic, "first")
        cursor = "%s_%s" % (sid, self.r.cmd("GET", "herald:{%s}:epoch" % topic).decode())
        holder = self.sse(h.port, "/events/" + topic, {})  # the edge's subscription is up
        wait_live_subscribed(self.r, topic)
        later = fcall_publish(self.r, topic, "later")
        self.assertEqual(holder.next_event().data, "later")
        lib = self.r.cmd("FUNCTION", "LIST", "LIBRARYNAME", "herald", "WITHCODE")[0]
        code = dict(zip(lib[::2], lib[1::2]))[b"library_code"].decode()
        anchor = "function_name = F .. '_history', flags = {'no-writes'},\n  callback = " \
                 "function(keys, args)\n"
        self.assertIn(anchor, code)
        # a library replaced around Herald whose reads fail (any error Redis answers)
        self.r.cmd("FUNCTION", "LOAD", "REPLACE", code.replace(
            anchor, anchor + "  if true then return redis.error_reply('ERR reads fail') end\n"))
        status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=5" % (
            topic, urllib.parse.quote(cursor, safe="")), timeout=20)
        self.assertEqual((status, body), (503, b"history read failed: retry\n"))
        self.r.cmd("FUNCTION", "LOAD", "REPLACE", code)
        status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=0" % (
            topic, urllib.parse.quote(cursor, safe="")), timeout=20)
        self.assertEqual([split_cursor(e["id"])[0] for e in json.loads(body)["events"]], [later],
                         body)
        self.finish(h)

    # -- class 12: a cursor ahead of the stream --

    def test_cursor_ahead_of_stream(self):
        """An hour ahead, and the largest stream ID (which Redis refuses as an exclusive
        start: it failed every read, the long-poll closed without an answer and EventSource
        came back with it for ever)."""
        h = self.start()
        for transport, far in itertools.product(("sse", "ws", "poll"), (False, True)):
            topic = "ahead.%s.%d" % (transport, far)
            sid = fcall_publish(self.r, topic, "first")
            epoch = self.r.cmd("GET", "herald:{%s}:epoch" % topic).decode()
            ms = int(sid.split("-")[0])
            ahead = "%d-0_%s" % (ms + 3600 * 1000, epoch)  # an hour ahead, same epoch
            if far:
                ahead = "18446744073709551615-18446744073709551615_" + epoch
            if transport == "sse":
                c = self.sse(h.port, "/events/" + topic, {"Last-Event-ID": ahead})
                e = c.next_event()
                self.assertEqual((e.event, json.loads(e.data)),
                                 ("herald.gap", {"topic": topic, "reason": "reset"}))
                wait_live_subscribed(self.r, topic)
                live = fcall_publish(self.r, topic, "live")
                e = c.next_event()
                self.assertEqual((split_cursor(e.id)[0], e.data), (live, "live"))
            elif transport == "ws":
                ws = WSClient(h.port)
                self._closers.append(ws)
                ws.send_json({"type": "subscribe", "topic": topic, "since": ahead})
                self.assertEqual(ws.recv_json()["type"], "subscribed")
                self.assertEqual(ws.recv_json(), {"type": "gap", "topic": topic,
                                                  "reason": "reset"})
                wait_live_subscribed(self.r, topic)
                live = fcall_publish(self.r, topic, "live")
                g = ws.recv_json()
                self.assertEqual((split_cursor(g["id"])[0], g["data"]), (live, "live"))
            else:
                status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=5" % (
                    topic, urllib.parse.quote(ahead, safe="")), timeout=20)
                self.assertEqual(status, 200)
                obj = json.loads(body)
                self.assertEqual(obj.get("gap"), "reset", obj)
                # next lets the client continue without loss from the stream's tail
                self.assertEqual(split_cursor(obj["next"])[0], sid)
                live = fcall_publish(self.r, topic, "live")
                status, _, body = http_get(h.port, "/poll/%s?since=%s&timeout=5" % (
                    topic, urllib.parse.quote(obj["next"], safe="")), timeout=20)
                obj = json.loads(body)
                self.assertEqual([(split_cursor(g["id"])[0], g["data"]) for g in obj["events"]],
                                 [(live, "live")])
        self.finish(h)


if __name__ == "__main__":
    harness.main()
