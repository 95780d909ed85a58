"""Configuration: the --config file (precedence flag > environment > file > default, each error
named by file and line), and a table-driven check that a bad value for every flag that
`herald --help-markdown` lists — given as a flag, an environment variable or a file line —
exits 2 with one line naming the flag, before anything listens."""

import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import HERALD_BIN, SCALE, HeraldTestCase, free_port, port_open


def run(args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") or k in (
        "HERALD_BIN", "HERALD_SRC")}
    e.update(env or {})
    return subprocess.run([HERALD_BIN] + args, capture_output=True, env=e, timeout=timeout * SCALE,
                          stdin=subprocess.DEVNULL)


def settings():
    """(flag, env, default, values) for every row of the --help-markdown table."""
    out = subprocess.run([HERALD_BIN, "--help-markdown"], check=True, capture_output=True,
                         text=True).stdout
    rows = []
    for line in out.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        flag, env, default, values = (cells[0].strip("`")[2:], cells[1].strip("`"),
                                      cells[2].strip("`"), cells[3].replace("\\|", "|"))
        rows.append((flag, env, default, values))
    return rows


def bad_values(flag, values):
    """Values the `values` column says are wrong (out of range, not a number, unknown word,
    malformed address, forbidden characters, missing file)."""
    m = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", values)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        return ["abc", "12x", "", " 5", str(lo - 1), str(hi + 1), "99999999999999999999999"]
    if values == "on|off":
        return ["maybe", "", "ON "]
    if values == "debug|info|warn|error":
        return ["loud", "", "INFO"]
    if values == "IP:PORT":
        return ["nohost", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "localhost:8080",
                "300.1.1.1:8080", "[::1:8080"]
    if values.startswith("redis://"):
        return ["http://127.0.0.1:6379", "redis://127.0.0.1:notaport", "redis://h:1/x",
                "redis://h:70000"]
    if values.endswith("[A-Za-z0-9._:-]"):
        return ["has space", "semi;colon", "x" * 64]
    if values.startswith("* or http"):
        return ["ftp://example.com", "http://a.example/path", "https://a.example, https://b",
                "*,https://a.example", ""]
    if values == "printable ASCII, no spaces":
        return ["has space", "tab\there"]
    if values == "file path":
        return ["/nonexistent/herald-test/file.pem"]
    if values == "text":
        return ["x" * 300]  # longer than any text setting holds
    raise AssertionError("no bad values known for --%s (%s): extend this test" % (flag, values))


class Config(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="herald-cfg-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        super().tearDown()

    def conf(self, text, name="herald.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_refused(self, args, needle, env=None, under_test=None):
        """Runs herald with args; it must exit 2 with one line holding needle, and not listen.
        under_test: the flag whose bad value comes from env or a file (not overridden here)."""
        port = free_port()
        base = []
        if under_test != "listen":
            base += ["--listen", "127.0.0.1:%d" % port]
        if under_test != "redis":
            base += ["--redis", "redis://127.0.0.1:1"]
        try:
            p = run(base + args, env=env, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("%r %r: accepted, the edge started" % (args, env))
        err = p.stderr.decode("utf-8", "replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertEqual(p.returncode, 2, "%r %r: exit %s, stderr %r" % (args, env, p.returncode,
                                                                        err))
        self.assertEqual(len(lines), 1, "%r %r: stderr %r" % (args, env, err))
        self.assertIn(needle, lines[0], "%r %r" % (args, env))
        self.assertFalse(port_open(port), "%r %r: listened before validating" % (args, env))
        return lines[0]

    def test_file_precedence_on_a_running_edge(self):
        srv = self.redis()
        path = self.conf("# test edge\n"
                         "node-id = from-file\n"
                         "retry-ms 4321\n"
                         "heartbeat = 33\n"
                         "publish-key = \"file-key\"\n")
        # the file sets node-id, retry-ms and publish-key; the environment beats it for
        # retry-ms and the command line beats both for node-id
        h = self.edge(srv, "from-flag", args=["--config", path],
                      env={"HERALD_RETRY_MS": "2468"})
        status, hdrs, _ = harness.http_get(h.port, "/healthz")
        self.assertEqual(hdrs.get("x-herald-node"), "from-flag")
        c = self.sse(h.port, "/events/cfg")
        self.assertEqual(c.wait_retry(), 2468)
        status, _, body = harness.http_get(h.port, "/publish/cfg", method="POST", body=b"x",
                                           headers={"Authorization": "Bearer file-key"})
        self.assertEqual(status, 200, body)
        self.assertEqual(c.next_event().data, "x")

        # HERALD_CONFIG names the file when no flag does; the file beats the default
        h2 = self.edge(srv, "edge-2", env={"HERALD_CONFIG": path})
        status, hdrs, _ = harness.http_get(h2.port, "/healthz")
        self.assertEqual(hdrs.get("x-herald-node"), "edge-2")  # the harness passes --node-id
        c2 = self.sse(h2.port, "/events/cfg")
        self.assertEqual(c2.wait_retry(), 4321)
        self.assertIn('"config":"%s"' % path, h2.log())

    def test_secret_in_a_world_readable_file_is_warned_about(self):
        srv = self.redis()
        warning = "holds a secret and every user may read it"
        path = self.conf("publish-key = file-key\n", "open.conf")
        os.chmod(path, 0o644)
        h = self.edge(srv, "open", args=["--config", path])
        self.assertIn(warning, h.log())
        shut = self.conf("publish-key = file-key\n", "shut.conf")
        os.chmod(shut, 0o600)
        h2 = self.edge(srv, "shut", args=["--config", shut])
        # the secret from the file is in use, and nothing is said about the file
        status, _, body = harness.http_get(h2.port, "/publish/cfg", method="POST", body=b"x",
                                           headers={"Authorization": "Bearer file-key"})
        self.assertEqual(status, 200, body)
        self.assertNotIn(warning, h2.log())
        self.assertNotIn("file-key", h.log() + h2.log())

    def test_the_readme_example_file_loads(self):
        with open(os.path.join(os.environ["HERALD_SRC"], "README.md"), encoding="utf-8") as f:
            m = re.search(r"```ini\n(.*?)```", f.read(), re.S)
        self.assertIsNotNone(m, "README has no ```ini example")
        # TLS has its own test; the harness's --listen and --redis flags win over the file's
        text = "".join(ln + "\n" for ln in m.group(1).splitlines() if not ln.startswith("tls-"))
        key = re.search(r'^publish-key = "(.*)"$', text, re.M).group(1)
        path = self.conf(text)
        os.chmod(path, 0o600)
        srv = self.redis()
        h = self.edge(srv, "readme", args=["--config", path])
        status, _, body = harness.http_get(h.port, "/publish/readme", method="POST", body=b"x",
                                           headers={"Authorization": "Bearer " + key})
        self.assertEqual(status, 200, body)

    def test_file_errors_name_file_and_line(self):
        cases = [
            ("history-max = 10\nhistory-maxx = 5\n", ":2: unknown setting 'history-maxx'"),
            ("# c\n\nheartbeat = often\n", ":3: invalid --heartbeat 'often'"),
            ("retry-ms = 50\n", ":1: invalid --retry-ms '50'"),
            ("ingest\n", ":1: 'ingest' has no value"),
            ("jwt-secret =\n", ":1: 'jwt-secret' has no value"),
            ("prefix = a:\nprefix = b:\n", ":2: 'prefix' is already set on line 1"),
            ("config = /etc/other.conf\n", ":1: 'config' cannot be set inside"),
            ("--listen = 127.0.0.1:1\n", ":1: unknown setting '--listen'"),
            ("publish-key = two words\n", ":1: invalid --publish-key"),
            ("x" * 5000 + "\n", ":1: line longer than 4096 bytes"),
        ]
        for text, needle in cases:
            with self.subTest(text=text[:40]):
                path = self.conf(text)
                line = self.assert_refused(["--config", path], path + needle)
                harness.log("%-40r -> %s" % (text[:40], line[:140]))
        line = self.assert_refused(["--config", os.path.join(self.dir, "missing.conf")],
                                   "cannot read --config file")
        self.assertIn("No such file", line)
        self.assert_refused([], "cannot read --config file",
                            env={"HERALD_CONFIG": os.path.join(self.dir, "missing.conf")})
        big = self.conf("# padding\n" * 7000, "big.conf")
        self.assert_refused(["--config", big], "larger than 65536 bytes")
        # a secret is never echoed, from a file either
        path = self.conf("publish-key = top secret\n")
        line = self.assert_refused(["--config", path], "--publish-key")
        self.assertNotIn("secret", line)

    def test_bad_value_of_every_flag_exits_2_before_listening(self):
        rows = settings()
        self.assertGreater(len(rows), 25)
        tried = 0
        for flag, env, default, values in rows:
            for n, bad in enumerate(bad_values(flag, values)):
                if flag == "config":
                    needle = "--config"
                else:
                    needle = "--" + flag
                with self.subTest(flag=flag, value=bad):
                    # the command line
                    self.assert_refused(["--" + flag, bad], needle)
                    tried += 1
                    if n > 0:
                        continue  # the same check runs on every source: the first value will do
                    # the environment twin: the message names the variable too
                    line = self.assert_refused([], needle, env={env: bad}, under_test=flag)
                    # files are read after all values are in, so their errors name the flag
                    if values != "file path":
                        self.assertIn(env, line)
                    # a --config file line
                    if flag != "config":
                        path = self.conf("\n%s = '%s'\n" % (flag, bad))
                        line = self.assert_refused(["--config", path], needle, under_test=flag)
                        if values != "file path":
                            self.assertIn(path + ":2:", line)
        harness.log("%d bad values of %d flags refused (the first of each flag also from the "
                    "environment and a file)" % (tried, len(rows)))

    def test_good_edge_values_are_accepted(self):
        # the bounds themselves are valid: checked without starting an edge (--help after them
        # prints help only when every earlier value parsed)
        for flag, env, default, values in settings():
            m = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", values)
            if not m:
                continue
            for v in (m.group(1), m.group(2)):
                p = run(["--" + flag, v, "--help"])
                self.assertEqual(p.returncode, 0, (flag, v, p.stderr))


if __name__ == "__main__":
    harness.main()
