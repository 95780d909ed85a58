"""Headless Chromium on pages of two other origins (one in --allowed-origins, one not) against
an edge with --jwt-secret: runs `node tests/browser/auth.test.js` (see that file for what the
page checks) and serves the two pages from local HTTP servers on their own ports. Fails, never
skips, when node, chromium or tests/browser/node_modules are missing."""

import http.server
import os
import subprocess
import sys
import threading
import time

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import HeraldTestCase, make_jwt

SECRET = "browser-secret-0123456789abcdef"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>app</title><p>app page</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def page_server(test):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    test.addCleanup(srv.server_close)
    test.addCleanup(srv.shutdown)
    return "http://127.0.0.1:%d" % srv.server_address[1]


class BrowserAuth(HeraldTestCase):

    def test_cross_origin_page_with_tokens(self):
        node = require_browser(self)
        allowed, denied = page_server(self), page_server(self)
        srv = self.redis()
        h = self.edge(srv, "edge-1", ["--jwt-secret", SECRET, "--allowed-origins", allowed])
        exp = int(time.time()) + 3600
        sub = make_jwt(SECRET, {"sub": "page", "exp": exp, "subscribe": ["browser.auth"]})
        pub = make_jwt(SECRET, {"sub": "page", "exp": exp, "publish": ["browser.*"]})
        other = make_jwt(SECRET, {"sub": "page", "exp": exp, "subscribe": ["elsewhere"]})
        argv = [node, os.path.join(BROWSER_DIR, "auth.test.js"),
                "--edge", "http://127.0.0.1:%d" % h.port, "--allowed", allowed + "/",
                "--denied", denied + "/", "--sub", sub, "--pub", pub, "--other", other,
                "--scale", str(harness.SCALE)]
        env = dict(os.environ, CHROMIUM=CHROMIUM)
        try:
            p = subprocess.run(argv, cwd=BROWSER_DIR, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=150 * harness.SCALE)
        except subprocess.TimeoutExpired as e:
            self.fail("node did not finish: %s" % (e.output or b"").decode("utf-8", "replace"))
        text = p.stdout.decode("utf-8", "replace")
        sys.stdout.write(text)
        self.assertEqual(p.returncode, 0, "node tests/browser/auth.test.js failed")
        # the page on the other origin never got its publish through (preflight refused)
        self.assertEqual(len(harness.xrange(self.client(srv), "browser.auth")), 1)
        m = harness.scrape(h.port)
        self.assertGreaterEqual(m['herald_rejected_total{reason="origin"}'], 3)
        self.assertGreaterEqual(m['herald_rejected_total{reason="forbidden"}'], 1)
        self.assertGreaterEqual(m['herald_rejected_total{reason="unauthorized"}'], 1)


if __name__ == "__main__":
    harness.main()
