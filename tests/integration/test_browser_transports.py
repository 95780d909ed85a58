"""Headless Chromium's native EventSource and WebSocket against one edge that is SIGKILLed and
restarted on the same port: starts Redis and the edge, then runs
`node tests/browser/transports.test.js` (see that file). When node prints "killed <node>", the
edge is restarted here and node is told "restarted" on its stdin. Fails, never skips, when node,
chromium or tests/browser/node_modules are missing."""

import os
import queue
import subprocess
import sys
import threading
import time

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import HeraldTestCase



class BrowserTransports(HeraldTestCase):

    def test_eventsource_and_websocket_recover_after_restart(self):
        node = require_browser(self)
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--retry-ms", "500"])
        argv = [node, os.path.join(BROWSER_DIR, "transports.test.js"),
                "--edge", "http://127.0.0.1:%d" % h.port, "--redis-port", str(srv.port),
                "--pid", str(h.proc.pid), "--node", h.node_id, "--scale", str(harness.SCALE)]
        env = dict(os.environ, CHROMIUM=CHROMIUM)
        p = subprocess.Popen(argv, cwd=BROWSER_DIR, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = queue.Queue()

        def reader():
            for raw in p.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)
        threading.Thread(target=reader, daemon=True).start()
        out = []
        restarted = False
        end = harness.deadline(120)
        try:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    self.fail("node did not finish within %.0fs:\n%s" % (
                        120 * harness.SCALE, "".join(out)))
                try:
                    line = lines.get(timeout=left)
                except queue.Empty:
                    continue
                if line is None:
                    break
                out.append(line)
                if line.startswith("killed ") and not restarted:
                    h.expected_exit = True
                    h.kill()          # reaps the SIGKILLed process
                    h.start()         # same port, waits for /readyz
                    restarted = True
                    harness.log("edge restarted on port %d" % h.port)
                    p.stdin.write(b"restarted\n")
                    p.stdin.flush()
            rc = p.wait(30 * harness.SCALE)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        text = "".join(out)
        sys.stdout.write(text)
        sys.stdout.flush()
        self.assertTrue(restarted, "node never killed the edge")
        self.assertEqual(rc, 0, "node tests/browser/transports.test.js failed")
        self.assertRegex(text, r"(?m)^reconnect: ")


if __name__ == "__main__":
    harness.main()
