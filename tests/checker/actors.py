"""Subscribers and publishers of the checker: each is a thread that records what it did and
what it got, with wall-clock times (the same clock Redis stamps stream IDs with).

A subscriber records one *segment* per topic per connection (see model.py for the checks):

    {"sub", "kind", "topic", "edge", "conn",
     "start": {"cursor": c, "t_req": wall} | {"fresh": True, "t_req": wall,
               "t_confirm": wall | None},
     "recs": [["ev", epoch, ms, seq, data, t], ["gap", reason, t]],
     "end_cursor": poll "next" | None, "final": set by the driver at the end}

The confirmation (the subscribe point of a fresh subscriber) is the SSE `retry:` field after
a 200, the WebSocket "subscribed" reply, or the long-poll answer.
"""

import http.client
import json
import random
import socket
import threading
import time
import urllib.parse

import harness
import wsclient

PUBLISH_KEY = "checker-key"
IO_TIMEOUT = 3.0      # seconds without a byte (heartbeats every second) before a reconnect


def split(cursor):
    """'<ms>-<seq>_<epoch>' -> (ms, seq, epoch)."""
    sid, _, epoch = cursor.partition("_")
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq), epoch


class Subscriber(threading.Thread):
    """A logical subscriber (EventSource-like): whenever its connection ends it reconnects to
    a random live edge with the last cursor of each topic. The driver may ask it to leave for
    good, bounce (reconnect elsewhere with its cursors), rewind (reconnect with an older
    cursor it received) or refresh (reconnect without cursors)."""

    def __init__(self, idx, kind, topics, world, rng, cursors=None, first_edge=None):
        super().__init__(daemon=True, name="sub-%d" % idx)
        self.first_edge = first_edge         # the edge of the first connection (else random)
        self.idx, self.kind, self.topics, self.world, self.rng = idx, kind, topics, world, rng
        self.cursors = dict(cursors or {})   # topic -> last cursor (None: fresh)
        # topic -> when a poll answered `next` 0-0 (nothing stored on the topic then): a poll
        # from it must get every entry stored after that answer
        self.zero_at = {}
        self.history = {t: [] for t in topics}   # every cursor received, per topic
        self.segments = []
        self.cur = {}                        # topic -> current segment
        self.conns = 0
        self.lock = threading.Lock()
        self.cmd = None
        self.quit = False
        self.sock = None
        self.errors = []                     # protocol surprises (not faults)

    # -- driver side --

    def order(self, cmd):
        """leave | bounce | rewind | refresh: takes effect by cutting the connection."""
        with self.lock:
            self.cmd = cmd
            if cmd == "leave":
                self.quit = True
            s = self.sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def caught_up(self, tails):
        """True when every topic's current segment has delivered the topic's tail entry."""
        for t in self.topics:
            tail = tails.get(t)
            if tail is None:
                continue
            seg = self.cur.get(t)
            if seg is None or (seg.get("closed") and self.kind != "poll"):
                return False
            c = self.cursors.get(t)
            if c is None and seg["start"].get("fresh") and seg["start"].get("t_confirm") and \
                    seg["start"]["t_confirm"] * 1000 > tail[0] + 1000:
                continue  # a fresh start confirmed well after the tail was stored: nothing due
            if c is None or split(c) != tail:
                return False
        return True

    # -- recording --

    def _open(self, edge, t_req):
        self.conns += 1
        self.cur = {}
        for t in self.topics:
            c = self.cursors.get(t)
            if c and c == "0-0" and t in self.zero_at:  # from that answer on, as a fresh start
                start = {"fresh": True, "t_req": self.zero_at[t], "t_confirm": self.zero_at[t]}
            else:
                start = ({"cursor": c, "t_req": t_req} if c else
                         {"fresh": True, "t_req": t_req, "t_confirm": None})
            seg = {"sub": self.idx, "kind": self.kind, "topic": t, "edge": edge,
                   "conn": self.conns, "start": start, "recs": [], "end_cursor": None,
                   "final": False, "closed": False}
            self.segments.append(seg)
            self.cur[t] = seg

    def _confirm(self, topic=None):
        now = time.time()
        for t, seg in self.cur.items():
            if (topic is None or t == topic) and "fresh" in seg["start"]:
                if seg["start"]["t_confirm"] is None:
                    seg["start"]["t_confirm"] = now

    def _event(self, topic, cursor, data):
        seg = self.cur.get(topic)
        if seg is None:
            self.errors.append("event for topic %r not subscribed: %r" % (topic, cursor))
            return
        try:
            ms, seq, epoch = split(cursor)
        except ValueError:
            self.errors.append("malformed cursor %r" % cursor)
            return
        seg["recs"].append(["ev", epoch, ms, seq, data, time.time()])
        self.cursors[topic] = cursor
        self.history[topic].append(cursor)

    def _gap(self, topic, reason):
        seg = self.cur.get(topic)
        if seg is None:
            self.errors.append("gap for topic %r not subscribed" % topic)
            return
        seg["recs"].append(["gap", reason, time.time()])

    def _close(self):
        for seg in self.cur.values():
            seg["closed"] = True

    # -- the loop --

    def run(self):
        while True:
            with self.lock:
                cmd, self.cmd = self.cmd, None
                if self.quit:
                    break
            if cmd == "refresh":
                self.cursors = {}
            elif cmd == "rewind":
                for t in self.topics:
                    h = self.history[t]
                    if h:
                        self.cursors[t] = h[self.rng.randrange(len(h))]
            port, edge = self.world.pick_edge(self.rng, self.first_edge)
            self.first_edge = None
            if port is None:
                time.sleep(0.2)
                continue
            try:
                getattr(self, "_run_" + self.kind)(port, edge)
            except (OSError, ConnectionError, AssertionError, ValueError,
                    http.client.HTTPException) as e:
                if not self.quit and not isinstance(e, (OSError, ConnectionError)):
                    self.errors.append("%s on %s: %s" % (type(e).__name__, edge, str(e)[:200]))
            finally:
                self._close()
                with self.lock:
                    self.sock = None
            if not self.quit and cmd is None:
                time.sleep(self.rng.uniform(0.1, 0.5))

    def _set_sock(self, s):
        with self.lock:
            self.sock = s
            if self.quit or self.cmd:
                s.shutdown(socket.SHUT_RDWR)

    def _sse_loop(self, c, on_event):
        self._set_sock(c.sock)
        if c.status != 200:
            raise AssertionError("SSE answered %s" % c.status)
        last = time.monotonic()
        n = len(c.raw)
        confirmed = False
        while True:
            alive = c.pump(0.3)
            if not confirmed and c.retry is not None:
                self._confirm()
                confirmed = True
            for ev in c._events:
                on_event(ev)
            c._events.clear()
            if not alive:
                return
            if len(c.raw) != n:
                n, last = len(c.raw), time.monotonic()
            elif time.monotonic() - last > IO_TIMEOUT * harness.SCALE:
                return  # dead connection (partition, stopped edge): reconnect elsewhere

    def _run_sse(self, port, edge):
        t = self.topics[0]
        hdrs = {"Last-Event-ID": self.cursors[t]} if self.cursors.get(t) else None
        self._open(edge, time.time())
        c = harness.SSEClient(port, "/events/" + t, hdrs, timeout=IO_TIMEOUT)
        try:
            def on(ev):
                if ev.event == "herald.gap":
                    self._gap(t, json.loads(ev.data).get("reason"))
                elif ev.id:
                    self._event(t, ev.id, ev.data)
                else:
                    self.errors.append("SSE event without id: %r" % ev)
            self._sse_loop(c, on)
        finally:
            c.close()

    def _run_msse(self, port, edge):
        q = "&".join("topic=" + t for t in self.topics)
        hdrs = None
        if any(self.cursors.get(t) for t in self.topics):
            hdrs = {"Last-Event-ID": ",".join(self.cursors.get(t) or "" for t in self.topics)}
        self._open(edge, time.time())
        c = harness.SSEClient(port, "/events?" + q, hdrs, timeout=IO_TIMEOUT)
        try:
            def on(ev):
                obj = json.loads(ev.data)
                if ev.event == "herald.gap":
                    self._gap(obj["topic"], obj.get("reason"))
                else:
                    self._event(obj["topic"], obj["id"], obj["data"])
            self._sse_loop(c, on)
        finally:
            c.close()

    def _run_ws(self, port, edge):
        self._open(edge, time.time())
        ws = wsclient.WSClient(port, timeout=IO_TIMEOUT)
        try:
            self._set_sock(ws.sock)
            for i, t in enumerate(self.topics):
                m = {"type": "subscribe", "topic": t, "id": i}
                if self.cursors.get(t):
                    m["since"] = self.cursors[t]
                ws.send_json(m)
            last = time.monotonic()
            next_ping = last + 1.0
            while True:
                try:
                    op, data = ws.recv_message(0.3)
                except wsclient.Closed:
                    return
                except AssertionError:
                    if ws.closed:
                        return
                    now = time.monotonic()
                    if now - last > IO_TIMEOUT * harness.SCALE:
                        return
                    if now >= next_ping:
                        ws.send_json({"type": "ping"})
                        next_ping = now + 1.0
                    continue
                last = time.monotonic()
                m = json.loads(data.decode("utf-8"))
                ty = m.get("type")
                if ty == "subscribed":
                    self._confirm(m.get("topic"))
                elif ty == "event":
                    self._event(m["topic"], m["id"], m["data"])
                elif ty == "gap":
                    self._gap(m["topic"], m.get("reason"))
                elif ty == "error":
                    self.errors.append("ws error on %s: %r" % (edge, m))
                    return
        finally:
            ws.sock.close()

    def _run_poll(self, port, edge):
        t = self.topics[0]
        while True:
            with self.lock:
                if self.quit or self.cmd:
                    return
            since = self.cursors.get(t)
            q = "timeout=1"
            if since:
                q += "&since=" + urllib.parse.quote(since, safe="")
            self._open(edge, time.time())
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=IO_TIMEOUT * 2)
            try:
                conn.connect()
                self._set_sock(conn.sock)
                conn.request("GET", "/poll/%s?%s" % (t, q))
                resp = conn.getresponse()
                body = resp.read()
            finally:
                conn.close()
                with self.lock:
                    self.sock = None
            if resp.status != 200:
                self.errors.append("poll on %s answered %d %r" % (edge, resp.status, body[:100]))
                return
            obj = json.loads(body)
            self._confirm()
            if obj.get("gap"):
                self._gap(t, obj["gap"])
            for ev in obj.get("events", []):
                self._event(ev["topic"], ev["id"], ev["data"])
            nxt = obj.get("next")
            if nxt:
                self.cur[t]["end_cursor"] = nxt
                self.cursors[t] = nxt
                if nxt == "0-0":
                    self.zero_at[t] = time.time()
            self._close()


class Publisher(threading.Thread):
    """Publishes unique payloads `<name>-<n>` at about `rate`/s over `topics` with one of
    `methods` per publish (raw, fcall, http, ws), recording each attempt:
    {"n", "m", "topic", "payload", "t0", "t1", "ok", "id", "recv", "err"}."""

    def __init__(self, name, methods, topics, rate, world, rng):
        super().__init__(daemon=True, name="pub-" + name)
        self.pname, self.methods, self.topics, self.rate = name, methods, topics, rate
        self.world, self.rng = world, rng
        self.records = []
        self.stop = threading.Event()
        self.r = None
        self.ws = None

    def _redis(self):
        if self.r is None:
            self.r = harness.RedisClient(self.world.redis_port, timeout=2.0)
        return self.r

    def _drop(self):
        for c in (self.r, self.ws):
            if c is not None:
                try:
                    c.sock.close() if c is self.ws else c.close()
                except OSError:
                    pass
        self.r = self.ws = None

    def _http(self, topic, payload):
        port, _ = self.world.pick_edge(self.rng)
        if port is None:
            raise ConnectionError("no live edge")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
        try:
            conn.request("POST", "/publish/" + topic, body=payload.encode(),
                         headers={"Authorization": "Bearer " + PUBLISH_KEY})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise ConnectionError("HTTP %d %r" % (resp.status, body[:80]))
        return json.loads(body)["id"]

    def _ws(self, topic, payload, n):
        if self.ws is None:
            port, _ = self.world.pick_edge(self.rng)
            if port is None:
                raise ConnectionError("no live edge")
            self.ws = wsclient.WSClient(port, timeout=2.0,
                                        headers={"Authorization": "Bearer " + PUBLISH_KEY})
        self.ws.send_json({"type": "publish", "topic": topic, "data": payload, "id": n})
        _, m = self.ws.recv_until(lambda x: x.get("id") == n, 2.0)
        if m.get("type") != "published":
            raise ConnectionError("ws publish answered %r" % m)
        return m["event_id"]

    def run(self):
        start = time.monotonic()
        n = 0
        while not self.stop.is_set():
            topic = self.rng.choice(self.topics)
            m = self.rng.choice(self.methods)
            payload = "%s-%d" % (self.pname, n)
            rec = {"n": n, "m": m, "topic": topic, "payload": payload, "t0": time.time(),
                   "ok": False, "id": None, "recv": None, "err": None}
            try:
                if m == "raw":
                    rec["recv"] = self._redis().publish(topic, payload)
                elif m == "fcall":
                    rec["id"] = harness.fcall_publish(self._redis(), topic, payload)
                elif m == "http":
                    rec["id"] = self._http(topic, payload)
                else:
                    rec["id"] = self._ws(topic, payload, n)
                rec["ok"] = True
            except (OSError, ConnectionError, harness.RedisError, AssertionError, ValueError,
                    KeyError, http.client.HTTPException) as e:
                rec["err"] = "%s: %s" % (type(e).__name__, str(e)[:120])
                if m in ("raw", "fcall", "ws"):
                    self._drop()
            rec["t1"] = time.time()
            self.records.append(rec)
            n += 1
            delay = start + n / self.rate - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            elif not rec["ok"]:
                self.stop.wait(0.05)
        self._drop()


def make_rng(seed, name):
    """A random.Random derived from the run's seed and a name (stable across Python runs)."""
    return random.Random("%s/%s" % (seed, name))
