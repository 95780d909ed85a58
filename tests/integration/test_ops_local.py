"""deploy/local.sh as an operator's local twin: an edge killed with SIGKILL is restarted (logged,
with back-off) while a subscriber resumes through the balancer from its Last-Event-ID; the
publish key (HERALD_PUBLISH_KEY, printed at start) lets the demo page publish; SIGTERM still
stops everything with exit 0."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import HERALD_BIN, SRC, SSEClient, deadline, free_port, http_get, wait_until

LOCAL = os.path.join(SRC, "deploy", "local.sh")
LB = os.path.join(SRC, "deploy", "lb.sh")
KEY = "ops-local-test-key"


def free_run(n):
    """A port p with p .. p+n-1 all free a moment ago."""
    for _ in range(50):
        p = free_port()
        if p + n < 65535 and not any(harness.port_open(p + i) for i in range(n)):
            return p
    raise AssertionError("no run of %d free ports" % n)


class LocalRestart(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-ops-local-")
        self.p = None

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "success"):
            return not outcome.success
        return any(exc for _, exc in getattr(outcome, "errors", []))

    def tearDown(self):
        if self._failed():
            for name in ("haproxy.log", "edge-1.log", "edge-2.log"):
                path = os.path.join(self.dir, name)
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        harness.log("--- %s:\n%s" % (name, f.read()[-4000:]))
        # local.sh stops what it started; whatever is left (it was killed, or failed to stop
        # something) is killed by its pid file before the run directory goes.
        if self.p is not None and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30 * harness.SCALE)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(10)
        for name in os.listdir(self.dir):
            if name.endswith(".pid"):
                pid = self.read_pid(name)
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if any(w in cmd for w in (b"herald", b"redis-server", b"haproxy")):
                    harness.log("local.sh left %s (pid %d) running; killing it" % (name, pid))
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_local(self):
        env = dict(os.environ, HERALD_BIN=HERALD_BIN, HERALD_LOCAL_DIR=self.dir,
                   HERALD_PUBLISH_KEY=KEY)
        for _ in range(3):
            lb_port, redis_port = free_run(3), free_port()
            p = subprocess.Popen(["bash", LOCAL, "--edges", "2", "--port", str(lb_port),
                                  "--redis-port", str(redis_port)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            self.p = p
            lines = []
            ready = threading.Event()

            def reader(p=p, lines=lines, ready=ready):
                for raw in p.stdout:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    lines.append(line)
                    if line.startswith("demo page: "):  # the last line of the start-up
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
            t.join(5)
            text = "\n".join(lines)
            self.assertIn("already in use", text, "local.sh exited:\n" + text)
        self.fail("local.sh found a port taken three times")

    def read_pid(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return int(f.read().strip())

    def pid_of(self, n):
        return self.read_pid("edge-%d.pid" % n)

    def finish(self, p, t):
        """After local.sh exited: its output reader sees EOF once no child holds the pipe."""
        t.join(10)
        self.assertFalse(t.is_alive(), "a child of local.sh still holds its stdout")
        p.stdout.close()

    def assert_all_gone(self):
        for name in os.listdir(self.dir):
            if name.endswith(".pid"):
                pid = self.read_pid(name)
                alive = os.path.exists("/proc/%d" % pid)
                if alive:
                    with open("/proc/%d/stat" % pid) as f:
                        alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
                self.assertFalse(alive, "%s (pid %d) outlived local.sh" % (name, pid))

    def publish(self, lb_port, topic, body):
        status, _, out = http_get(lb_port, "/publish/" + topic, method="POST", body=body,
                                  headers={"Authorization": "Bearer " + KEY,
                                           "Content-Type": "text/plain"})
        self.assertEqual(status, 200, "publish through the LB: %d %r" % (status, out))
        return json.loads(out)

    def test_killed_edge_is_restarted_and_subscriber_resumes(self):
        p, lines, t, lb_port, redis_port = self.start_local()
        text = lambda: "\n".join(lines)  # noqa: E731
        self.assertIn("publish key: " + KEY, lines)
        self.assertIn("demo page: http://127.0.0.1:%d/?redis_port=%d#key=%s"
                      % (lb_port, redis_port, KEY), lines)
        self.assertIn("publish with: redis-cli -p %d PUBLISH news hello" % redis_port, lines)

        r = harness.RedisClient(redis_port)
        c = SSEClient(lb_port, "/events/ops.local")
        self.assertEqual(c.status, 200)
        node = c.headers.get("x-herald-node")
        self.assertIn(node, ("edge-1", "edge-2"))
        n = int(node.split("-")[1])
        harness.wait_live_subscribed(r, "ops.local")
        self.publish(lb_port, "ops.local", b"before")
        ev1 = c.next_event()
        self.assertEqual(ev1.data, "before")

        victim = self.pid_of(n)
        os.kill(victim, signal.SIGKILL)
        # The subscriber's connection ends with its edge.
        end = deadline(10 * harness.SCALE)
        while not c.closed:
            self.assertLess(time.monotonic(), end, "SSE connection open after its edge died")
            c.pump(0.2)
        c.close()
        # Published while the edge is down, straight into Redis.
        harness.fcall_publish(r, "ops.local", "while-down")

        # The subscriber resumes through the balancer from its Last-Event-ID, retrying as an
        # EventSource does: until HAProxy's check sees the edge down (or back up), a request
        # may still reach its port.
        c2, tries = None, []
        end = deadline(20 * harness.SCALE)
        while c2 is None:
            self.assertLess(time.monotonic(), end, "no resume through the LB: %r" % tries)
            try:
                c2 = SSEClient(lb_port, "/events/ops.local", headers={"Last-Event-ID": ev1.id})
                if c2.status != 200:
                    tries.append(c2.status)
                    c2.close()
                    c2 = None
            except (AssertionError, OSError) as e:
                tries.append(str(e)[:80])
            if c2 is None:
                time.sleep(0.3)
        try:
            ev2 = c2.next_event()
            self.assertEqual(ev2.data, "while-down", "resume after the kill")
        finally:
            c2.close()

        # local.sh logged the exit and restarted the edge on its port.
        wait_until(lambda: any(ln.startswith("local: restarted edge-%d " % n) for ln in lines),
                   20 * harness.SCALE, what="local.sh to restart edge-%d:\n%s" % (n, text()))
        self.assertTrue(any(re.match(r"local: edge-%d .*exited unexpectedly \(status 137\); "
                                     r"restarting it in 1 s" % n, ln) for ln in lines), text())
        self.assertIsNone(p.poll(), "local.sh exited after an edge died:\n" + text())
        new_pid = self.pid_of(n)
        self.assertNotEqual(new_pid, victim)
        wait_until(lambda: http_get(lb_port + n, "/readyz")[0] == 200
                   if harness.port_open(lb_port + n) else False,
                   30 * harness.SCALE, what="the restarted edge-%d to be ready" % n)
        subprocess.run(["bash", LB, "wait", "--stats-socket", os.path.join(self.dir, "haproxy.sock"),
                        "--edges", "2", "--timeout", str(int(20 * harness.SCALE))], check=True)
        # Both edges serve through the LB again.
        nodes = {http_get(lb_port, "/readyz")[1].get("x-herald-node") for _ in range(4)}
        self.assertEqual(nodes, {"edge-1", "edge-2"})
        r.close()

        p.send_signal(signal.SIGTERM)
        code = p.wait(30 * harness.SCALE)
        self.finish(p, t)
        self.assertEqual(code, 0, "local.sh after SIGTERM:\n" + text())
        self.assertIn("local: stopped", lines)
        self.assert_all_gone()
        wait_until(lambda: not any(harness.port_open(lb_port + i) for i in range(3)), 10,
                   what="the LB and edge ports to be closed")

    def test_ctrl_c_during_the_restart_back_off_stops_everything(self):
        p, lines, t, lb_port, _ = self.start_local()
        victim = self.pid_of(1)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: any(re.match(r"local: edge-1 .*restarting it in 1 s", ln)
                               for ln in lines), 10 * harness.SCALE,
                   what="the back-off line:\n" + "\n".join(lines))
        # Ctrl-C: SIGINT to the terminal's foreground process group (the script's own; its
        # children run in their own groups).
        started = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        code = p.wait(30 * harness.SCALE)
        self.finish(p, t)
        self.assertEqual(code, 0, "\n".join(lines))
        self.assertIn("local: stopped", lines)
        self.assertFalse(any(ln.startswith("local: restarted") for ln in lines),
                         "an edge was started after Ctrl-C:\n" + "\n".join(lines))
        self.assertLess(time.monotonic() - started, 20 * harness.SCALE)
        wait_until(lambda: not any(harness.port_open(lb_port + i) for i in range(3)), 10,
                   what="the LB and edge ports to be closed")
        self.assert_all_gone()


if __name__ == "__main__":
    unittest.main(verbosity=2)
