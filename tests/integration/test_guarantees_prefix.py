"""--prefix separates deployments on one Redis: keys, channels and the function library (and its
settings) are per prefix; edges of one deployment that disagree on a setting are told."""

import json
import os
import re

import harness
from harness import HeraldTestCase, http_get, split_cursor, wait_until

KEY = "prefix-test-key"


def publish(port, topic, body):
    status, _, data = http_get(port, "/publish/" + topic, method="POST", body=body,
                               headers={"Authorization": "Bearer " + KEY})
    assert status == 200, (status, data)
    return json.loads(data)["id"]


def numsub(r, chan):
    return r.cmd("PUBSUB", "NUMSUB", chan)[1]


class PrefixIsolation(HeraldTestCase):

    def test_two_prefixes_one_redis(self):
        srv = self.redis()
        r = self.client(srv)
        # A takes raw PUBLISH (raw channels are one namespace per Redis: one ingesting deployment)
        a = self.edge(srv, "a-1", ["--prefix", "a:", "--history-max", "3", "--publish-key", KEY,
                                   "--ingest", "on"])
        b = self.edge(srv, "b-1", ["--prefix", "b:", "--history-max", "50", "--publish-key", KEY,
                                   "--ingest", "off"])
        sa = self.sse(a.port, "/events/t")
        sb = self.sse(b.port, "/events/t")
        wait_until(lambda: numsub(r, "a:{t}:live") >= 1 and numsub(r, "b:{t}:live") >= 1, 10,
                   what="both deployments subscribed")
        libs = sorted(dict(zip(x[::2], x[1::2]))[b"library_name"].decode()
                      for x in r.cmd("FUNCTION", "LIST"))
        self.assertEqual(libs, ["herald_a_c", "herald_b_c"])

        got = {"a": [], "b": []}
        ida = publish(a.port, "t", b"http-a")
        idb = publish(b.port, "t", b"http-b")
        fa = r.cmd("FCALL", "herald_a_c_publish", 1, "t", "fcall-a").decode()
        fb = r.cmd("FCALL", "herald_b_c_publish", 1, "t", "fcall-b").decode()
        wait_until(lambda: harness.lease_holder(r) is None and
                   r.cmd("GET", "a:ingest:lease") is not None, 15, what="A's ingest lease")
        wait_until(lambda: r.cmd("PUBLISH", "t", "raw") >= 1, 10, what="A's raw subscriber")
        for name, c, want in (("a", sa, [(ida, "http-a"), (fa, "fcall-a"), (None, "raw")]),
                              ("b", sb, [(idb, "http-b"), (fb, "fcall-b")])):
            for sid, data in want:
                e = c.next_event(10)
                self.assertEqual(e.data, data, "deployment %s" % name)
                if sid:
                    self.assertEqual(split_cursor(e.id)[0], sid)
            self.assertEqual(c.pending(), [])
        self.assertIsNone(r.cmd("GET", "herald:ingest:lease"))
        self.assertEqual(r.cmd("EXISTS", "herald:{t}:log"), 0, "nothing under the default prefix")
        self.assertEqual(r.cmd("XLEN", "a:{t}:log"), 3)
        self.assertEqual(r.cmd("XLEN", "b:{t}:log"), 2)

        # history limits per deployment (MAXLEN ~ trims whole nodes of 100 entries): A keeps
        # about 3, B (--history-max 50) about 50, not all 250
        for i in range(250):
            r.cmd("FCALL", "herald_a_c_publish", 1, "h", "x%d" % i)
            r.cmd("FCALL", "herald_b_c_publish", 1, "h", "x%d" % i)
        la, lb = r.cmd("XLEN", "a:{h}:log"), r.cmd("XLEN", "b:{h}:log")
        self.assertLess(la, 150)
        self.assertLess(lb, 250)
        self.assertGreaterEqual(lb, 50)
        # B's events never reached A's ingest as raw messages (B's live channels are not topics)
        self.assertNotIn("ingest", "".join(l for l in a.log().splitlines() if "reject" in l))

    def test_default_prefix_keeps_herald_publish(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.edge(srv, "edge-1")
        c = self.sse(h.port, "/events/d")
        harness.wait_live_subscribed(r, "d")
        sid = harness.fcall_publish(r, "d", "hello")
        e = c.next_event(10)
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "hello"))
        info = r.cmd("FCALL_RO", "herald_info", 0)
        self.assertEqual(info[1].decode(), "prefix=herald: history_max=1000 history_ttl=86400 "
                         "max_message_bytes=65536 cluster=0")


class SettingsMismatch(HeraldTestCase):

    def test_second_edge_with_other_settings_is_told_and_overrides_nothing(self):
        srv = self.redis()
        r = self.client(srv)
        a = self.edge(srv, "edge-1", ["--history-max", "5"])
        b = self.edge(srv, "edge-2", ["--history-max", "500"])
        # the library of the deployment is still the first edge's: history trimmed near 5
        # (MAXLEN ~ trims whole nodes of 100 entries)
        for i in range(300):
            harness.fcall_publish(r, "m", "x%d" % i)
        self.assertLess(r.cmd("XLEN", "herald:{m}:log"), 200, "edge-2 replaced the library")
        wait_until(lambda: "deployment settings disagree" in b.log(), 10,
                   what="the error in edge-2's log")
        self.assertNotIn("deployment settings disagree", a.log())
        metrics = harness.scrape(b.port)
        self.assertEqual(metrics.get("herald_library_mismatch"), 1.0, metrics)
        self.assertEqual(harness.scrape(a.port).get("herald_library_mismatch"), 0.0)

    def test_newer_library_is_not_replaced(self):
        srv = self.redis()
        r = self.client(srv)
        a = self.edge(srv, "edge-1")
        lib = r.cmd("FUNCTION", "LIST", "LIBRARYNAME", "herald", "WITHCODE")
        code = dict(zip(lib[0][::2], lib[0][1::2]))[b"library_code"].decode()
        newer = re.sub(r"local VERSION, SETTINGS = (\d+),",
                       lambda m: "local VERSION, SETTINGS = %d," % (int(m.group(1)) + 1), code)
        self.assertTrue(newer != code, "no VERSION line in the library")
        r.cmd("FUNCTION", "LOAD", "REPLACE", newer)
        b = self.edge(srv, "edge-2")
        wait_until(lambda: "incompatible function library" in b.log(), 10,
                   what="the error in edge-2's log")
        now = r.cmd("FUNCTION", "LIST", "LIBRARYNAME", "herald", "WITHCODE")
        self.assertEqual(dict(zip(now[0][::2], now[0][1::2]))[b"library_code"].decode(), newer)

    def test_unversioned_library_is_upgraded(self):
        srv = self.redis()
        r = self.client(srv)
        r.cmd("FUNCTION", "LOAD", "#!lua name=herald\n"
              "redis.register_function('herald_publish', function() return 'old' end)")
        h = self.edge(srv, "edge-1")
        self.assertIn("replacing an unversioned function library", h.log())
        with open(os.path.join(harness.SRC, "common", "hb_script.h")) as f:
            version = int(re.search(r"#define HB_SCRIPT_VERSION (\d+)", f.read()).group(1))
        self.assertEqual(r.cmd("FCALL_RO", "herald_info", 0)[0], version)
        self.assertNotEqual(harness.fcall_publish(r, "u", "x"), "old")


if __name__ == "__main__":
    harness.main()
