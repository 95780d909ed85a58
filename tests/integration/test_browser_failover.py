"""Headless Chromium's own EventSource through HAProxy, across the SIGKILL of its edge: starts
Redis, three edges and HAProxy (deploy/haproxy.cfg), then runs
`node tests/browser/failover.test.js` with their ports and pids (see that file). Fails, never
skips, when node, chromium or tests/browser/node_modules are missing: tests/run.sh installs
them (deploy/deps.sh browser; npm ci in tests/browser)."""

import os
import re
import subprocess
import sys

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import HeraldTestCase
from lbkit import HAProxy



class BrowserFailover(HeraldTestCase):

    def test_eventsource_resumes_after_sigkill(self):
        node = require_browser(self)

        srv = self.redis()
        hs = self.edges(srv, 3, args=("--retry-ms", "1000"))
        lb = HAProxy(hs)
        try:
            lb.wait_all_up()
            argv = [node, os.path.join(BROWSER_DIR, "failover.test.js"),
                    "--lb", "http://127.0.0.1:%d" % lb.port,
                    "--redis-port", str(srv.port),
                    "--edges", ",".join("%s:%d" % (h.node_id, h.proc.pid) for h in hs),
                    "--scale", str(harness.SCALE)]
            env = dict(os.environ, CHROMIUM=CHROMIUM)
            try:
                out = subprocess.run(argv, cwd=BROWSER_DIR, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, timeout=120 * harness.SCALE)
                text = out.stdout.decode("utf-8", "replace")
                rc = out.returncode
            except subprocess.TimeoutExpired as e:
                text = (e.stdout or b"").decode("utf-8", "replace")
                rc = "timeout"
            sys.stdout.write(text)
            sys.stdout.flush()
            for m in re.finditer(r"^killed (\S+)", text, re.M):
                h = self.edge_by_node(m.group(1))
                if h is not None:
                    h.expected_exit = True
            if rc != 0:
                sys.stderr.write("\n===== haproxy =====\n%s\n" % lb.log())
            self.assertEqual(rc, 0, "node tests/browser/failover.test.js failed")
            self.assertRegex(text, r"(?m)^killed edge-\d")
            self.assertRegex(text, r"(?m)^reconnect: ")
        finally:
            lb.close()


if __name__ == "__main__":
    harness.main()
