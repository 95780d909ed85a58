"""Headless Chromium on a page of another origin (listed in --allowed-origins) against an edge
with --jwt-secret: runs `node tests/browser/tickets.test.js` (see that file for what the page
checks: POST /tickets through CORS, an EventSource with ?ticket= once, never twice, a WebSocket
with ?ticket=). Fails, never skips, when node, chromium or tests/browser/node_modules are
missing."""

import os
import subprocess
import sys
import time

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import HeraldTestCase, make_jwt
from test_browser_auth import page_server

SECRET = "browser-secret-0123456789abcdef"


class BrowserTickets(HeraldTestCase):

    def test_event_source_with_a_ticket(self):
        node = require_browser(self)
        page = page_server(self)
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--jwt-secret", SECRET, "--allowed-origins", page])
        exp = int(time.time()) + 3600
        sub = make_jwt(SECRET, {"sub": "page", "exp": exp, "subscribe": ["browser.ticket"]})
        pub = make_jwt(SECRET, {"sub": "page", "exp": exp, "publish": ["browser.*"]})
        argv = [node, os.path.join(BROWSER_DIR, "tickets.test.js"),
                "--edge", "http://127.0.0.1:%d" % h.port, "--page", page + "/",
                "--sub", sub, "--pub", pub, "--scale", str(harness.SCALE)]
        env = dict(os.environ, CHROMIUM=CHROMIUM)
        try:
            p = subprocess.run(argv, cwd=BROWSER_DIR, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=150 * harness.SCALE)
        except subprocess.TimeoutExpired as e:
            self.fail("node did not finish: %s" % (e.output or b"").decode("utf-8", "replace"))
        text = p.stdout.decode("utf-8", "replace")
        sys.stdout.write(text)
        self.assertEqual(p.returncode, 0, "node tests/browser/tickets.test.js failed")
        m = harness.scrape(h.port)
        self.assertEqual(m['herald_tickets_total{outcome="issued"}'], 2)
        self.assertEqual(m['herald_tickets_total{outcome="redeemed"}'], 2)
        self.assertEqual(m['herald_tickets_total{outcome="refused"}'], 1)
        self.assertNotIn(sub, h.log())


if __name__ == "__main__":
    harness.main()
