"""herald.js in headless Chromium through HAProxy and two edges: runs
`node tests/browser/client.test.js` (see that file: tabs sharing one connection, hand-over of the
leading tab, SSE and long-poll transports, SIGKILL of the serving edge, the ETag of /herald.js).
Fails, never skips, when node, chromium or tests/browser/node_modules are missing: tests/run.sh
installs them (deploy/deps.sh browser; npm ci in tests/browser)."""

import os
import subprocess
import sys

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import HeraldTestCase
from lbkit import HAProxy



class BrowserClient(HeraldTestCase):

    def test_herald_js(self):
        node = require_browser(self)
        srv = self.redis()
        secret = "browser-client-secret"
        hs = self.edges(srv, 2, args=("--retry-ms", "500", "--jwt-secret", secret,
                                      "--allow-anonymous", "on", "--jwt-leeway", "1",
                                      "--max-topics-per-connection", "200"))
        cookie_edge = self.edge(srv, "edge-cookie", ["--jwt-secret", secret,
                                                     "--auth-cookie", "herald_token"])
        busy_edge = self.edge(srv, "edge-busy", ["--topic-rate", "5", "--threads", "1"])
        lb = HAProxy(hs)
        try:
            lb.wait_all_up()
            argv = [node, os.path.join(BROWSER_DIR, "client.test.js"),
                    "--edge", "http://127.0.0.1:%d" % lb.port, "--redis-port", str(srv.port),
                    "--edges", ",".join("%d:%d" % (h.port, h.proc.pid) for h in hs),
                    "--cookie-edge", "http://127.0.0.1:%d" % cookie_edge.port,
                    "--busy-edge", "http://127.0.0.1:%d" % busy_edge.port,
                    "--jwt-secret", secret, "--scale", str(harness.SCALE)]
            p = subprocess.run(argv, cwd=BROWSER_DIR, env=dict(os.environ, CHROMIUM=CHROMIUM),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=240 * harness.SCALE)
            text = p.stdout.decode("utf-8", "replace")
            sys.stdout.write(text)
            for h in hs:
                if not h.alive():
                    h.expected_exit = True   # the test SIGKILLs the serving edge
            self.assertEqual(p.returncode, 0, "node tests/browser/client.test.js failed")
            self.assertRegex(text, r"(?m)^# pass 10$")
        finally:
            lb.close()


if __name__ == "__main__":
    harness.main()
