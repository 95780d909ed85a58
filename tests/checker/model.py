"""The checks: what Redis stored (snapshots, one per epoch a Redis restart wiped, and the final
one) against what every publisher was told and what every subscriber segment received.

Stored history: every snapshot's XRANGE, by topic and epoch; an entry's order key is
(epoch index, ms, seq), epochs in the order they appeared. Snapshots before a restart that
loses the data are taken under CLIENT PAUSE WRITE, so nothing acknowledged escapes them.

Entries present in one snapshot and gone from a later one of the same epoch (a failover to a
replica that had not received them) are "vanished": stored, then lost, the README's window;
a subscriber need not get them, but one that got some is told with a notice before the next
event ("failover-without-notice").

Per segment (one topic of one connection; see actors.py), with start S and end E:
  - every delivered event is a stored entry with the same payload (else "unstored" /
    "payload"), in strictly increasing order ("duplicate" / "reorder"), after S
    ("before-start": the cursor's own or an older entry; a fresh subscriber's first event
    stored before its request is counted apart, not a violation: see FINDINGS.md);
  - an epoch change between two delivered events (or from the cursor's epoch) is preceded by a
    `reset` notice ("epoch-without-reset");
  - every stored entry after S and up to E was delivered, or a notice excuses it
    ("silent-loss"): `trimmed` excuses the entries between the events around the notice,
    `reset` the entries of older epochs. S is the cursor, or for a fresh subscriber the
    confirmation of its subscription: entries stored between its request and that
    confirmation may or may not come. E is the last event delivered (or a long-poll `next`);
    for the segment still open at the end of the run, the topic's last stored entry.
Per publish: an acknowledged publish is stored exactly once with its ID ("acked-lost",
"stored-twice"); an unacknowledged or raw one at most once; raw PUBLISHes are stored in
publish order ("raw-reorder"); a raw PUBLISH that reached a receiver is stored, unless it was
sent within RAW_WINDOW_S of a Redis stop (or earlier, while an edge's link to Redis was slowed or
cut until then: its stores take that long), or within RAW_RESUB_WINDOW_S after Redis came back
(only standbys had subscribed again) (the documented windows, counted separately).
"""

MARGIN_MS = 5          # stream-ID milliseconds vs. the client's clock reading (same host)
RAW_WINDOW_S = 1.0     # a raw PUBLISH this close to a Redis stop may be lost (README)
# After a Redis restart the edges subscribe to raw channels again one by one, each after its
# reconnection backoff (BACKOFF_MAX_MS 5 s in edge/broker.c, plus the connect): a raw PUBLISH
# heard only by standbys before the next leader subscribed again is dropped, counted in
# herald_ingest_unled_total (README "Raw ingest", FINDINGS F2). Counted apart, not a violation.
RAW_RESUB_WINDOW_S = 6.0


class History:
    def __init__(self, snapshots):
        self.epochs = {}      # topic -> [epoch, ...] in order of appearance
        self.entries = {}     # topic -> {(epoch, ms, seq): payload}
        self.anomalies = []
        self.vanished = {}    # topic -> {(epoch, ms, seq)}: gone from a later snapshot of
        prev = {}             # the same epoch (a failover to a replica that lacked them)
        for snap in snapshots:
            for t, info in snap["topics"].items():
                ep = info["epoch"]
                if info["entries"] and ep is None:
                    self.anomalies.append("topic %s: a stream without an epoch key (%s)" % (
                        t, snap["why"]))
                if ep is None:
                    continue
                order = self.epochs.setdefault(t, [])
                if ep not in order:
                    order.append(ep)
                ents = self.entries.setdefault(t, {})
                keys = set()
                for eid, _ in info["entries"]:
                    ms, seq = eid.split("-")
                    keys.add((ep, int(ms), int(seq)))
                if t in prev and prev[t][0] == ep:
                    self.vanished.setdefault(t, set()).update(prev[t][1] - keys)
                prev[t] = (ep, keys)
                for eid, payload in info["entries"]:
                    ms, seq = eid.split("-")
                    k = (ep, int(ms), int(seq))
                    if k in ents and ents[k] != payload:
                        self.anomalies.append("topic %s: entry %s-%s changed payload" % (
                            t, ms, seq))
                    ents[k] = payload
        self.sorted = {}
        for t, ents in self.entries.items():
            self.sorted[t] = sorted(ents, key=lambda k, t=t: self.key(t, k))

    def key(self, topic, k):
        """(epoch index, ms, seq) of (epoch, ms, seq); epoch index -1 when unknown."""
        order = self.epochs.get(topic, [])
        ei = order.index(k[0]) if k[0] in order else -1
        return (ei, k[1], k[2])

    def last_epoch(self, topic):
        order = self.epochs.get(topic, [])
        return len(order) - 1

    def tail(self, topic):
        s = self.sorted.get(topic)
        return s[-1] if s else None


def _cursor_key(hist, topic, cursor):
    sid, _, epoch = cursor.partition("_")
    ms, _, seq = sid.partition("-")
    return hist.key(topic, (epoch, int(ms), int(seq)))


class Report:
    def __init__(self):
        self.violations = []          # (kind, text, t)
        self.documented = {}          # what -> count
        self.counts = {}

    def bad(self, kind, text, t=None):
        self.violations.append((kind, text, t))

    def doc(self, what, n=1):
        self.documented[what] = self.documented.get(what, 0) + n

    def count(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n


def check_segment(hist, seg, rep):
    t = seg["topic"]
    who = "sub %d (%s) conn %d on %s, topic %s" % (seg["sub"], seg["kind"], seg["conn"],
                                                   seg["edge"], t)
    ents = hist.entries.get(t, {})
    start = seg["start"]
    if "cursor" in start:
        start_key = _cursor_key(hist, t, start["cursor"])
        if start_key[0] < 0:
            rep.bad("bad-cursor", "%s: started from cursor %s of an epoch never seen" % (
                who, start["cursor"]))
            return
        must_ms = None
    else:
        start_key = None
        must_ms = None if start["t_confirm"] is None else start["t_confirm"] * 1000 + MARGIN_MS
        early_ms = start["t_req"] * 1000 - MARGIN_MS
    prev = start_key
    delivered = set()
    excused = []              # (reason, prev key, next key or None)
    pending_gaps = []
    reset_since_prev = False
    lost_unannounced = None   # a delivered entry a failover then lost, no notice since
    vanished = hist.vanished.get(t, ())
    n_ev = 0
    for rec in seg["recs"]:
        if rec[0] == "gap":
            rep.count("gap notices")
            pending_gaps.append(rec[1])
            lost_unannounced = None
            if rec[1] == "reset":
                reset_since_prev = True
            continue
        _, epoch, ms, seq, data, t_recv = rec
        n_ev += 1
        k = hist.key(t, (epoch, ms, seq))
        name = "%d-%d_%s" % (ms, seq, epoch)
        if (epoch, ms, seq) not in ents:
            rep.bad("unstored", "%s: delivered %s (%r) that was never stored" % (who, name, data),
                    t_recv)
            continue
        if ents[(epoch, ms, seq)] != data:
            rep.bad("payload", "%s: %s delivered %r, stored %r" % (
                who, name, data, ents[(epoch, ms, seq)]), t_recv)
        if k in delivered:
            rep.bad("duplicate", "%s: %s delivered twice" % (who, name), t_recv)
            continue
        if prev is not None and k < prev:
            kind = "before-start" if prev == start_key else "reorder"
            rep.bad(kind, "%s: %s delivered after %s" % (who, name, prev), t_recv)
        if prev is not None and prev == start_key and k == start_key:
            rep.bad("before-start", "%s: the cursor's own event %s delivered" % (who, name),
                    t_recv)
        if start_key is None and not delivered and ms < early_ms:
            # Not a loss, duplicate or reorder: the edge's "next live event" was still on
            # its way from Redis (slow link) or came with a refill after a reconnect.
            rep.doc("fresh subscriber's first event stored before its request (not a "
                    "violation; FINDINGS.md)")
        if prev is not None and k[0] != prev[0] and not reset_since_prev:
            rep.bad("epoch-without-reset", "%s: %s of a new epoch without a reset notice" % (
                who, name), t_recv)
        if (epoch, ms, seq) in vanished:
            lost_unannounced = lost_unannounced or name
        elif lost_unannounced is not None and prev is not None and k > prev:
            rep.bad("failover-without-notice", "%s: got %s, lost in a failover, then %s "
                    "without a trimmed notice (PROTOCOL.md: events lost by Redis)" % (
                        who, lost_unannounced, name), t_recv)
            lost_unannounced = None
        for g in pending_gaps:
            excused.append((g, prev, k))
        pending_gaps = []
        reset_since_prev = False
        delivered.add(k)
        if prev is None or k > prev:
            prev = k
    for g in pending_gaps:
        excused.append((g, prev, None))
    rep.count("events delivered", n_ev)
    # the end of what this segment vouches for
    if seg["final"]:
        tail = hist.tail(t)
        end = hist.key(t, tail) if tail else None
    else:
        end = prev
        if seg.get("end_cursor"):
            ek = _cursor_key(hist, t, seg["end_cursor"])
            if ek[0] >= 0 and (end is None or ek > end):
                end = ek
    if end is None:
        return
    missing = []
    last_ei = hist.last_epoch(t)
    for k3 in hist.sorted.get(t, []):
        k = hist.key(t, k3)
        if k > end:
            break
        if k in delivered:
            continue
        if k3 in hist.vanished.get(t, ()):
            rep.doc("stored entry lost in a failover, not delivered to a segment (README)")
            continue
        if start_key is not None:
            if k <= start_key:
                continue
        elif must_ms is None or k3[1] <= must_ms:
            continue
        ok = False
        for reason, a, b in excused:
            if a is not None and k <= a:
                continue
            if reason == "reset":
                bound = b[0] if b is not None else last_ei
                if k[0] < bound:
                    ok = True
            elif b is None or k < b:
                ok = True
            if ok:
                break
        if not ok:
            missing.append(k3)
    if missing:
        first = missing[0]
        rep.bad("silent-loss", "%s: %d stored event(s) neither delivered nor announced by a "
                "notice, first %d-%d_%s (%r), last %d-%d; start %s, %d delivered%s" % (
                    who, len(missing), first[1], first[2], first[0], ents[first],
                    missing[-1][1], missing[-1][2],
                    start.get("cursor") or "fresh, confirmed at %.3f" % (
                        start["t_confirm"] or 0), len(delivered),
                    ", still open at the end" if seg["final"] else ""), first[1] / 1000.0)
        rep.count("events silently lost", len(missing))


def check_publishes(hist, pubs, faults, rep):
    by_payload = {}
    for t, ents in hist.entries.items():
        for (ep, ms, seq), payload in ents.items():
            by_payload.setdefault(payload, []).append((t, ep, ms, seq))
    known = set()
    # Redis gone, or one edge's connections killed (CLIENT KILL): a raw store on its way is
    # lost, and the ingest leader listens again only once it has subscribed again (README)
    redis_stops = [f for f in faults if f["what"].startswith(("redis down", "failover",
                                                               "client_kill"))]
    # an edge's link to Redis slowed or cut: a store in flight on it takes as long as the
    # fault lasts (FINDINGS F22: a throttled leader's stores of 1.3 s earlier were still on
    # their way when Redis stopped)
    slow_links = [f for f in faults if f["what"].startswith(
        ("throttle_redis", "delay_redis", "loss_redis", "part_redis"))]
    raw_order = {}
    for p in pubs:
        known.add(p["payload"])
        rep.count("publishes %s" % p["m"])
        where = by_payload.get(p["payload"], [])
        where_t = [w for w in where if w[0] == p["topic"]]
        if len(where) != len(where_t):
            rep.bad("wrong-topic", "%s publish %s stored in another topic: %r" % (
                p["m"], p["payload"], where))
        if len(where_t) > 1:
            rep.bad("stored-twice", "%s publish %s (ok=%s) stored %d times: %r" % (
                p["m"], p["payload"], p["ok"], len(where_t), where_t), p["t0"])
        wiped = [w for w in where_t if hist.epochs[w[0]].index(w[1]) != hist.last_epoch(w[0])]
        if wiped:
            rep.doc("stored, then lost with Redis's data (restart without data)")
        if [w for w in where_t if (w[1], w[2], w[3]) in hist.vanished.get(w[0], ())]:
            rep.doc("stored, then lost in a failover (README)")
        if p["m"] == "raw":
            if not p["ok"]:
                rep.doc("raw PUBLISH refused (Redis down)")
                continue
            if where_t:
                t, ep, ms, seq = where_t[0]
                raw_order.setdefault((t, ep), []).append(((ms, seq), p["n"], p["payload"]))
                continue
            if p["recv"] == 0:
                rep.doc("raw PUBLISH with 0 receivers, not stored (README)")
                continue
            near = [f for f in redis_stops if f["t"] - RAW_WINDOW_S <= p["t1"] and
                    (f["until"] is None or p["t0"] <= f["until"] + RAW_WINDOW_S)]
            near += [f for f in redis_stops for g in slow_links
                     if g["t"] - RAW_WINDOW_S <= p["t1"] <= f["t"] and
                     (g["until"] is None or g["until"] >= f["t"] - RAW_WINDOW_S)]
            resub = [f for f in redis_stops if f["until"] is not None and
                     f["until"] <= p["t0"] <= f["until"] + RAW_RESUB_WINDOW_S]
            # (no window for FUNCTION FLUSH: a store that met the missing library is kept and
            # stored in order, FINDINGS F25)
            if near:
                rep.doc("raw PUBLISH lost on its way when Redis stopped (README)")
            elif resub:
                rep.doc("raw PUBLISH heard only by standbys before the next ingest leader "
                        "subscribed again after a Redis restart (README)")
            else:
                rep.bad("raw-lost", "raw PUBLISH %s to %s reached %d receiver(s) and was never "
                        "stored" % (p["payload"], p["topic"], p["recv"]), p["t0"])
            continue
        if not p["ok"]:
            rep.count("unacknowledged %s publishes stored" % p["m"], 1 if where_t else 0)
            continue
        mine = [w for w in where_t if "%d-%d" % (w[2], w[3]) == p["id"]]
        if not mine:
            rep.bad("acked-lost", "%s publish %s to %s acknowledged as %s, stored: %r" % (
                p["m"], p["payload"], p["topic"], p["id"], where_t), p["t0"])
    for (t, ep), lst in raw_order.items():
        lst.sort()
        ns = [n for _, n, _ in lst]
        for a, b in zip(lst, lst[1:]):
            if b[1] < a[1]:
                rep.bad("raw-reorder", "topic %s: raw %s stored after %s" % (t, b[2], a[2]),
                        a[0][0] / 1000.0)
        rep.count("raw stored", len(ns))
    for payload, where in by_payload.items():
        if payload not in known:
            rep.bad("unknown-entry", "stored entry %r was never published: %r" % (payload,
                                                                                  where))


def check(snapshots, segments, pubs, faults):
    hist = History(snapshots)
    rep = Report()
    for a in hist.anomalies:
        rep.bad("history", a)
    for seg in segments:
        check_segment(hist, seg, rep)
    check_publishes(hist, pubs, faults, rep)
    rep.count("stored entries", sum(len(v) for v in hist.entries.values()))
    rep.count("epochs", sum(len(v) for v in hist.epochs.values()))
    return rep


def near_faults(faults, t, before=3.0, after=1.0):
    """The faults active within [t - before, t + after] (for diagnosis)."""
    out = []
    for f in faults:
        end = f["until"] if f["until"] is not None else f["t"]
        if f["t"] <= t + after and end >= t - before:
            out.append(f["what"])
    return out
