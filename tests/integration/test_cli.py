"""Command line: --help documents every flag; an invalid value exits 2 with one line on stderr
before listening; every flag has a HERALD_* environment twin (flag wins over env)."""

import os
import subprocess

import harness
from harness import HERALD_BIN, SCALE, HeraldTestCase, free_port, port_open

FLAGS = ["--listen", "--redis", "--node-id", "--prefix", "--history-max", "--history-ttl",
         "--heartbeat", "--retry-ms", "--threads", "--ingest", "--log-level", "--help"]


def run(args, env=None, timeout=20):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([HERALD_BIN] + args, capture_output=True, env=e, timeout=timeout * SCALE,
                          stdin=subprocess.DEVNULL)


class Cli(HeraldTestCase):

    def test_help(self):
        p = run(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout.decode()
        for f in FLAGS:
            self.assertIn(f, text)
            if f != "--help":
                env = "HERALD_" + f[2:].upper().replace("-", "_")
                self.assertIn(env, text, "help does not name %s" % env)

    def test_invalid_values_exit_2(self):
        srv = self.redis()
        port = free_port()
        base = ["--listen", "127.0.0.1:%d" % port, "--redis", "redis://127.0.0.1:%d" % srv.port,
                "--node-id", "cli"]
        bad = [
            ["--history-max", "abc"], ["--history-max", "-1"], ["--history-ttl", "x"],
            ["--heartbeat", "0x"], ["--retry-ms", ""], ["--threads", "abc"],
            ["--ingest", "maybe"], ["--log-level", "loud"], ["--listen", "nohost"],
            ["--listen", "127.0.0.1:70000"], ["--redis", "http://127.0.0.1:6379"],
            ["--redis", "redis://127.0.0.1:notaport"], ["--no-such-flag"], ["--history-max"],
        ]
        for extra in bad:
            with self.subTest(extra):
                p = run(base + extra)
                err = p.stderr.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 2, "%r: exit %d, stderr %r" % (extra, p.returncode, err))
                lines = [ln for ln in err.splitlines() if ln.strip()]
                self.assertEqual(len(lines), 1, "%r: stderr %r" % (extra, err))
                self.assertFalse(port_open(port), "%r: listened before validating" % extra)
                harness.log("%-40r -> %s" % (extra, lines[0][:120]))

        # The environment twin is validated the same way.
        p = run(base, env={"HERALD_HISTORY_MAX": "abc"})
        self.assertEqual(p.returncode, 2, p.stderr)

    def test_env_twins(self):
        srv = self.redis()
        env = {"HERALD_NODE_ID": "from-env", "HERALD_RETRY_MS": "4321"}
        h = self.edge(srv, "flag-node", env=env)  # --node-id flag beats HERALD_NODE_ID
        status, hdrs, _ = harness.http_get(h.port, "/healthz")
        self.assertEqual(hdrs.get("x-herald-node"), "flag-node")
        c = self.sse(h.port, "/events/env")
        self.assertEqual(c.wait_retry(), 4321)
        self.assertTrue(bytes(c.raw).startswith(b"retry: 4321\n\n"), bytes(c.raw[:40]))


if __name__ == "__main__":
    harness.main()
