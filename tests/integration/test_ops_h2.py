"""HTTP/2 and TLS at the balancer: deploy/haproxy.cfg's TLS front (deploy/lb.sh --tls-port,
--tls-cert; a self-signed certificate made here) offers h2 by ALPN and speaks HTTP/1.1 to two
edges. `node tests/browser/h2.test.js` has headless Chromium open 10 EventSources on one page:
all 10 open and receive over h2, only 6 over the plain HTTP/1.1 front of the same HAProxy.
Also: curl negotiates h2 and gets the SSE head. Fails, never skips, when node, chromium,
haproxy or tests/browser/node_modules are missing (deploy/deps.sh browser ops; npm ci)."""

import os
import shutil
import signal
import subprocess
import tempfile

import harness
from browserkit import BROWSER_DIR, CHROMIUM, require_browser
from harness import SRC, HeraldTestCase, free_port

LB = os.path.join(SRC, "deploy", "lb.sh")
KEY = "ops-h2-key"


class BalancerH2(HeraldTestCase):

    def start_lb(self, edges):
        tmp = tempfile.mkdtemp(prefix="herald-ops-h2-")
        self.addCleanup(shutil.rmtree, tmp, True)
        key, crt, pem = (os.path.join(tmp, n) for n in ("key.pem", "crt.pem", "lb.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", crt, "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        with open(pem, "w") as out:
            for part in (crt, key):
                with open(part) as f:
                    out.write(f.read())
        sock = os.path.join(tmp, "haproxy.sock")
        for _ in range(3):
            port, tls_port = free_port(), free_port()
            argv = ["bash", LB, "run", "--port", str(port), "--tls-port", str(tls_port),
                    "--tls-cert", pem, "--stats-socket", sock]
            for h in edges:
                argv += ["--edge", "127.0.0.1:%d" % h.port]
            log = open(os.path.join(tmp, "haproxy.log"), "wb")
            self.addCleanup(log.close)
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)

            def stop(p=p):
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait(5)
            self.addCleanup(stop)
            try:
                harness.wait_until(lambda: p.poll() is not None or (
                    harness.port_open(port) and harness.port_open(tls_port)), 20,
                    what="haproxy to listen")
            except AssertionError:
                pass
            if p.poll() is None:
                subprocess.run(["bash", LB, "wait", "--stats-socket", sock, "--edges",
                                str(len(edges)), "--timeout", str(int(20 * harness.SCALE))],
                               check=True)
                return port, tls_port
            with open(log.name, errors="replace") as f:
                text = f.read()
            harness.log("haproxy did not start (a port taken meanwhile?): %s" % text[-2000:])
        self.fail("haproxy did not start three times")

    def test_ten_eventsources_over_h2_six_over_http1(self):
        node = require_browser(self)
        self.assertTrue(shutil.which("haproxy"), "haproxy is not installed (deploy/deps.sh lb)")
        srv = self.redis()
        edges = self.edges(srv, 2, ["--publish-key", KEY])
        port, tls_port = self.start_lb(edges)

        # curl (HTTP/2 over TLS, ALPN) gets the SSE response head from an edge through HAProxy.
        p = subprocess.run(["curl", "-sk", "--http2", "-m", str(int(2 * harness.SCALE)), "-o",
                            "/dev/null", "-w", "%{http_version} %{http_code} %{content_type}",
                            "https://127.0.0.1:%d/events/h2.curl" % tls_port],
                           capture_output=True, timeout=30 * harness.SCALE)
        self.assertEqual(p.stdout.decode(), "2 200 text/event-stream", p.stderr)

        argv = [node, os.path.join(BROWSER_DIR, "h2.test.js"),
                "--h2", "https://127.0.0.1:%d" % tls_port, "--h1", "http://127.0.0.1:%d" % port,
                "--edge", "http://127.0.0.1:%d" % edges[0].port, "--key", KEY,
                "--scale", str(harness.SCALE)]
        p = subprocess.run(argv, cwd=BROWSER_DIR, env=dict(os.environ, CHROMIUM=CHROMIUM),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120 * harness.SCALE)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        harness.log(out)
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("ok", out.splitlines())
        for h in edges:
            self.assert_serving(h)


if __name__ == "__main__":
    harness.main()
