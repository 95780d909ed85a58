"""deploy/local.sh, the local twin of docker-compose.yml: with HERALD_BIN (no build) it starts
redis-server, two edges and HAProxy, prints "ready <lb url>" once HAProxy sees both edges UP;
through that URL the demo page, round-robin over both edges and SSE delivery work; SIGTERM
stops everything and the script exits 0."""

import os
import re
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import HERALD_BIN, SRC, SSEClient, deadline, free_port, http_get, wait_until

LOCAL = os.path.join(SRC, "deploy", "local.sh")


def free_run(n):
    """A port p with p .. p+n-1 all free a moment ago."""
    for _ in range(50):
        p = free_port()
        if p + n < 65535 and not any(harness.port_open(p + i) for i in range(n)):
            return p
    raise AssertionError("no run of %d free ports" % n)


class LocalTwin(unittest.TestCase):

    def start_local(self):
        """local.sh on free ports -> (process, its output lines, their reader, LB port, Redis port). The
        ports were free a moment ago; another test's connection may take one in between (they
        are ephemeral ports): local.sh then refuses them and is started again on others."""
        env = dict(os.environ, HERALD_BIN=HERALD_BIN)
        for attempt in range(3):
            lb_port, redis_port = free_run(3), free_port()
            p = subprocess.Popen(["bash", LOCAL, "--edges", "2", "--port", str(lb_port),
                                  "--redis-port", str(redis_port)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            lines = []
            ready = threading.Event()

            def reader(p=p, lines=lines, ready=ready):
                for raw in p.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    lines.append(line)
                    if line.startswith("ready "):
                        ready.set()
            t = threading.Thread(target=reader, daemon=True)
            t.start()
            end = deadline(60)
            while not ready.is_set() and p.poll() is None:
                self.assertLess(time.monotonic(), end, "no ready line:\n" + "\n".join(lines))
                ready.wait(0.1)
            if ready.is_set():
                return p, lines, t, lb_port, redis_port
            p.wait(10)
            t.join(5)  # the reader has the last lines
            text = "\n".join(lines)
            self.assertIn("already in use", text, "local.sh exited:\n" + text)
            harness.log("local.sh: a port was taken meanwhile, again on others: %s" % text)
        self.fail("local.sh found a port taken three times")

    def test_local_sh_starts_the_lb_topology(self):
        p, lines, t, lb_port, redis_port = self.start_local()
        try:
            ready_lines = [ln for ln in lines if ln.startswith("ready ")]
            self.assertEqual(ready_lines, ["ready http://127.0.0.1:%d" % lb_port])
            self.assertIn("edge-1 http://127.0.0.1:%d" % (lb_port + 1), lines)
            self.assertIn("edge-2 http://127.0.0.1:%d" % (lb_port + 2), lines)

            status, hdrs, body = http_get(lb_port, "/")
            self.assertEqual(status, 200)
            self.assertTrue(hdrs["content-type"].startswith("text/html"))
            with open(os.path.join(SRC, "edge", "demo.html"), "rb") as f:
                self.assertEqual(body, f.read(), "/ through the LB is not edge/demo.html")
            nodes = {http_get(lb_port, "/readyz")[1].get("x-herald-node") for _ in range(4)}
            self.assertEqual(nodes, {"edge-1", "edge-2"}, "round-robin over both edges")

            c = SSEClient(lb_port, "/events/local.twin")
            try:
                self.assertEqual(c.status, 200)
                r = harness.RedisClient(redis_port)
                harness.wait_live_subscribed(r, "local.twin")
                rid = harness.fcall_publish(r, "local.twin", "through-the-lb")
                r.close()
                ev = c.next_event()
                self.assertEqual((harness.split_cursor(ev.id)[0], ev.data), (rid, "through-the-lb"))
            finally:
                c.close()
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                code = p.wait(30 * harness.SCALE)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                code = p.wait(10)
            t.join(5)
            p.stdout.close()
        self.assertEqual(code, 0, "local.sh after SIGTERM:\n" + "\n".join(lines))
        self.assertIn("local: stopped", lines)
        wait_until(lambda: not any(harness.port_open(lb_port + i) for i in range(3)), 10,
                   what="the LB and edge ports to be closed")
        harness.log("local.sh: %s" % " | ".join(lines[:4]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
