"""The demo page with the URL deploy/local.sh prints (?redis_port=R ... #key=K): headless
Chromium (node tests/browser/demo.test.js) sees the shell hints with the real Redis port,
origin and key, the key filled in, and its Publish button delivers to its own subscription.
Fails, never skips, when node, chromium or tests/browser/node_modules are missing."""

import os
import subprocess

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import HeraldTestCase

KEY = "demo-key-42"


class DemoPage(HeraldTestCase):

    def test_demo_hints_and_publish_key(self):
        node = require_browser(self)
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--publish-key", KEY])
        p = subprocess.run([node, os.path.join(BROWSER_DIR, "demo.test.js"),
                            "--url", "http://127.0.0.1:%d" % h.port,
                            "--redis-port", str(srv.port), "--key", KEY,
                            "--scale", str(harness.SCALE)],
                           cwd=BROWSER_DIR, env=dict(os.environ, CHROMIUM=CHROMIUM),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=90 * harness.SCALE)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        harness.log(out)
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("ok", out.splitlines())
        self.assert_serving(h)


if __name__ == "__main__":
    harness.main()
