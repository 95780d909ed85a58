#!/usr/bin/env python3
"""Self-test of the checks in model.py on made-up histories: a clean history passes, and each
kind of violation is reported where it was planted (so that a green run means something).
Runs in a fraction of a second; `integration.test_checker_short` runs it first."""

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model  # noqa: E402

T = "t"
BASE = 1800000000000          # ms
E1, E2 = "epochone", "epochtwo"


def snap(epoch, ids, why="final"):
    return {"t": 0, "why": why, "topics": {T: {"epoch": epoch, "entries": [
        ["%d-0" % ms, "p%d" % ms] for ms in ids]}}}


def ev(epoch, ms, t=0.0):
    return ["ev", epoch, ms, 0, "p%d" % ms, t]


def seg(start, recs, final=True, end_cursor=None):
    return {"sub": 0, "kind": "sse", "topic": T, "edge": "e", "conn": 1, "start": start,
            "recs": recs, "end_cursor": end_cursor, "final": final}


def fresh(confirm_ms, req_ms=None):
    return {"fresh": True, "t_req": (req_ms or confirm_ms) / 1000.0,
            "t_confirm": confirm_ms / 1000.0}


def pub(ms, m="fcall", ok=True, n=0, recv=None, payload=None, t=0.0):
    return {"n": n, "m": m, "topic": T, "payload": payload or "p%d" % ms, "t0": t, "t1": t,
            "ok": ok, "id": "%d-0" % ms if ok and m != "raw" else None, "recv": recv,
            "err": None}


IDS = [BASE + 100 * i for i in range(1, 6)]          # five entries, 100 ms apart
PUBS = [pub(ms) for ms in IDS]
CLEAN = seg({"cursor": "%d-0_%s" % (IDS[0], E1)}, [ev(E1, ms) for ms in IDS[1:]])


def kinds(snaps, segs, pubs=PUBS, faults=()):
    rep = model.check(snaps, segs, pubs, list(faults))
    return sorted({k for k, _, _ in rep.violations})


def cases():
    s = [snap(E1, IDS)]
    yield "clean cursor segment", kinds(s, [CLEAN]), []
    yield "clean fresh segment, entry before confirmation skipped", kinds(s, [seg(
        fresh(IDS[1] + 50, IDS[0] - 50), [ev(E1, ms) for ms in IDS[2:]])]), []
    yield "entry before the request delivered to a fresh subscriber (counted apart)", kinds(
        s, [seg(fresh(IDS[2] + 50, IDS[2] + 10), [ev(E1, ms) for ms in IDS[1:]])]), []
    yield "entry before the cursor delivered", kinds(s, [seg(
        {"cursor": "%d-0_%s" % (IDS[2], E1)}, [ev(E1, ms) for ms in IDS[1:]])]), [
        "before-start"]
    bad = copy.deepcopy(CLEAN)
    bad["recs"].insert(2, ev(E1, IDS[2]))
    yield "duplicate", kinds(s, [bad]), ["duplicate"]
    bad = copy.deepcopy(CLEAN)
    bad["recs"][1], bad["recs"][2] = bad["recs"][2], bad["recs"][1]
    yield "reorder", kinds(s, [bad]), ["reorder"]
    bad = copy.deepcopy(CLEAN)
    del bad["recs"][1]
    yield "hole", kinds(s, [bad]), ["silent-loss"]
    bad = copy.deepcopy(CLEAN)
    del bad["recs"][-1]
    yield "final segment short of the tail", kinds(s, [bad]), ["silent-loss"]
    bad["final"] = False
    yield "non-final segment ending early", kinds(s, [bad]), []
    ok = copy.deepcopy(CLEAN)
    del ok["recs"][1]
    ok["recs"].insert(1, ["gap", "trimmed", 0])
    yield "hole after a trimmed notice", kinds(s, [ok]), []
    yield "fresh subscriber misses an entry after confirmation", kinds(s, [seg(
        fresh(IDS[0] + 50), [ev(E1, ms) for ms in IDS[2:]])]), ["silent-loss"]
    bad = copy.deepcopy(CLEAN)
    bad["recs"].append(ev(E1, IDS[-1] + 7))
    yield "delivered, never stored", kinds(s, [bad]), ["unstored"]
    # an epoch change: the old epoch wiped after IDS[2], the new one has two entries
    new = [IDS[-1] + 1000, IDS[-1] + 1100]
    s2 = [snap(E1, IDS[:3], "before a restart"), snap(E2, new)]
    p2 = [pub(ms) for ms in IDS[:3] + new]
    good = seg({"cursor": "%d-0_%s" % (IDS[0], E1)},
               [ev(E1, IDS[1]), ["gap", "reset", 0]] + [ev(E2, ms) for ms in new])
    yield "reset notice across an epoch change", kinds(s2, [good], p2), []
    bad = seg({"cursor": "%d-0_%s" % (IDS[0], E1)}, [ev(E1, IDS[1])] + [ev(E2, ms)
                                                                      for ms in new])
    yield "epoch change without a notice", kinds(s2, [bad], p2), ["epoch-without-reset",
                                                                  "silent-loss"]
    bad = seg({"cursor": "%d-0_%s" % (IDS[0], E1)},
              [ev(E1, IDS[1]), ["gap", "reset", 0], ev(E2, new[1])])
    yield "reset notice does not excuse the new epoch", kinds(s2, [bad], p2), ["silent-loss"]
    # a failover lost IDS[3:] (the new master never had them), then two more were stored
    s3 = [snap(E1, IDS, "before a failover"), snap(E1, IDS[:3] + new)]
    p3 = [pub(ms) for ms in IDS + new]
    got = seg({"cursor": "%d-0_%s" % (IDS[0], E1)}, [ev(E1, ms) for ms in IDS[1:3] + new])
    yield "entries lost in a failover need not come", kinds(s3, [got], p3), []
    got["recs"].pop()
    yield "but the ones after it must", kinds(s3, [got], p3), ["silent-loss"]
    had = seg({"cursor": "%d-0_%s" % (IDS[0], E1)}, [ev(E1, ms) for ms in IDS[1:4]] +
              [["gap", "trimmed", 0]] + [ev(E1, ms) for ms in new])
    yield "a lost entry delivered, then a notice", kinds(s3, [had], p3), []
    del had["recs"][3]
    yield "a lost entry delivered, no notice", kinds(s3, [had], p3), [
        "failover-without-notice"]
    # publishes
    yield "acknowledged publish not stored", kinds(s, [CLEAN], PUBS + [pub(BASE + 999)]), [
        "acked-lost"]
    raw = [pub(0, "raw", n=i, recv=1, payload="p%d" % ms) for i, ms in enumerate(IDS)]
    yield "raw stored in order", kinds(s, [CLEAN], raw), []
    raw_rev = [dict(r, n=len(raw) - r["n"]) for r in raw]
    yield "raw stored out of order", kinds(s, [CLEAN], raw_rev), ["raw-reorder"]
    lost = raw + [pub(0, "raw", n=9, recv=1, payload="r9", t=100.0)]
    yield "raw with a receiver never stored", kinds(s, [CLEAN], lost), ["raw-lost"]
    stop = [{"t": 100.5, "what": "redis down (with its data)", "until": 102.0}]
    yield "raw lost as Redis stops (documented)", kinds(s, [CLEAN], lost, stop), []
    back = [{"t": 95.0, "what": "redis down (with its data)", "until": 97.0}]
    yield "raw heard only by standbys after Redis came back (documented)", kinds(
        s, [CLEAN], lost, back), []
    late = [{"t": 90.0, "what": "redis down (with its data)", "until": 92.0}]
    yield "raw lost long after Redis came back", kinds(s, [CLEAN], lost, late), ["raw-lost"]
    # published at 100.0; Redis stops at 101.5 (1.5 s later: outside the plain window)
    stop2 = [{"t": 101.5, "what": "redis down (data lost)", "until": 103.0}]
    yield "raw lost 1.5 s before Redis stops", kinds(s, [CLEAN], lost, stop2), ["raw-lost"]
    slow = [{"t": 99.5, "what": "throttle_redis ck-3 {'bps': 2000}", "until": 102.0}]
    yield "raw lost on a throttled link to Redis, then Redis stops (documented)", kinds(
        s, [CLEAN], lost, stop2 + slow), []
    healed = [{"t": 99.5, "what": "throttle_redis ck-3 {'bps': 2000}", "until": 100.2}]
    yield "raw lost after the throttle healed well before the stop", kinds(
        s, [CLEAN], lost, stop2 + healed), ["raw-lost"]
    kill = [{"t": 100.4, "what": "client_kill ck-1 cmd (1 killed)", "until": 100.4}]
    yield "raw lost as an edge's connection is killed (documented)", kinds(
        s, [CLEAN], lost, kill), []
    kill_early = [{"t": 80.0, "what": "client_kill ck-1 all (3 killed)", "until": 80.0}]
    yield "raw lost long after a connection was killed", kinds(
        s, [CLEAN], lost, kill_early), ["raw-lost"]
    flushed = [{"t": 100.3, "what": "function library flushed", "until": 100.9}]
    yield "raw lost while the library was missing (kept and stored later: F25)", kinds(
        s, [CLEAN], lost, flushed), ["raw-lost"]
    twice = [snap(E1, IDS + [IDS[-1] + 50])]
    twice[0]["topics"][T]["entries"][-1][1] = "p%d" % IDS[0]
    yield "one publish stored twice", kinds(twice, [], PUBS), ["stored-twice"]


def main():
    failed = 0
    for name, got, want in cases():
        ok = got == sorted(want)
        failed += not ok
        print("%s %s: got %s%s" % ("ok  " if ok else "FAIL", name, got,
                                   "" if ok else ", want %s" % sorted(want)))
    print("selftest: %s" % ("all passed" if not failed else "%d failed" % failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
