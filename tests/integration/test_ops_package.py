"""The Debian package: `cpack -G DEB` in the build directory of $HERALD_BIN makes
herald_<version>_<arch>.deb; unpacked with dpkg-deb -x into a scratch root, its binary runs with
its /etc/herald/herald.conf (every setting listed, commented; uncommented at their defaults
still valid) against a test Redis, serves, and drains on SIGTERM; its systemd unit passes
`systemd-analyze verify` without a warning, is hardened (`systemd-analyze security --offline`)
and sized for the connection limit. Needs deploy/deps.sh ops (dpkg-dev, systemd)."""

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import HERALD_BIN, SRC, SSEClient, free_port, http_get, wait_until

BUILD = os.path.dirname(os.path.abspath(HERALD_BIN))


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        return re.search(r"^project\(herald VERSION (\d+\.\d+\.\d+)", f.read(), re.M).group(1)


def settings():
    """{flag name: default} from herald --help-markdown."""
    out = subprocess.run([HERALD_BIN, "--help-markdown"], capture_output=True, check=True)
    rows = {}
    for line in out.stdout.decode().splitlines():
        if line.startswith("| `--"):
            cells = [c.strip() for c in line[1:-1].split(" | ")]
            rows[cells[0].strip("`")[2:]] = cells[2].strip("`")
    return rows


class Package(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps", "systemd-analyze"):
            if not shutil.which(tool):
                raise AssertionError("%s is not installed (deploy/deps.sh ops)" % tool)
        if not os.path.exists(os.path.join(BUILD, "CPackConfig.cmake")):
            raise AssertionError("no CPackConfig.cmake beside %s" % HERALD_BIN)
        cls.tmp = tempfile.mkdtemp(prefix="herald-ops-pkg-")
        p = subprocess.run(["cpack", "-G", "DEB", "-B", os.path.join(cls.tmp, "out"),
                            "--config", os.path.join(BUILD, "CPackConfig.cmake")],
                           cwd=BUILD, capture_output=True, timeout=120 * harness.SCALE)
        if p.returncode != 0:
            raise AssertionError("cpack failed:\n%s%s" % (p.stdout.decode(), p.stderr.decode()))
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              check=True).stdout.decode().strip()
        cls.arch = arch
        cls.deb = os.path.join(cls.tmp, "out", "herald_%s_%s.deb" % (project_version(), arch))
        cls.root = os.path.join(cls.tmp, "root")
        if os.path.exists(cls.deb):
            subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return subprocess.run(["dpkg-deb", "-f", self.deb, name], capture_output=True,
                              check=True).stdout.decode().strip()

    def test_package_metadata_and_files(self):
        self.assertTrue(os.path.exists(self.deb), "no %s: %s" % (
            os.path.basename(self.deb), os.listdir(os.path.join(self.tmp, "out"))))
        self.assertEqual(self.field("Package"), "herald")
        self.assertEqual(self.field("Version"), project_version())
        self.assertEqual(self.field("Architecture"), self.arch)
        depends = self.field("Depends")
        for dep in ("adduser", "libwebsockets", "libhiredis", "libevent", "libev4"):
            self.assertIn(dep, depends)
        for path in ("usr/bin/herald", "usr/lib/systemd/system/herald.service",
                     "etc/herald/herald.conf", "usr/share/doc/herald/CHANGELOG.md"):
            self.assertTrue(os.path.exists(os.path.join(self.root, path)), path)
        mode = stat.S_IMODE(os.stat(os.path.join(self.root, "etc/herald/herald.conf")).st_mode)
        self.assertEqual(mode, 0o640, "herald.conf may hold secrets")
        ctl = os.path.join(self.tmp, "control")
        subprocess.run(["dpkg-deb", "-e", self.deb, ctl], check=True)
        with open(os.path.join(ctl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/herald/herald.conf"])
        with open(os.path.join(ctl, "postinst")) as f:
            post = f.read()
        self.assertIn("adduser --system", post)
        self.assertIn("chown root:herald /etc/herald/herald.conf", post)
        for script in ("postinst", "prerm", "postrm"):
            self.assertEqual(subprocess.run(["sh", "-n", os.path.join(ctl, script)]).returncode, 0)

    def test_config_lists_every_setting(self):
        with open(os.path.join(self.root, "etc/herald/herald.conf")) as f:
            conf = f.read()
        rows = settings()
        self.assertGreater(len(rows), 20)
        for name, default in rows.items():
            if name == "config":
                self.assertNotRegex(conf, r"(?m)^#?config\b")
                continue
            self.assertRegex(conf, r"(?m)^#%s = %s$" % (re.escape(name),
                                                       re.escape(default or '""')))
        # Nothing is set: every setting line is a comment.
        self.assertEqual([ln for ln in conf.splitlines() if ln and not ln.startswith("#")], [])

    def run_installed(self, conf, redis_port):
        port = free_port()
        binary = os.path.join(self.root, "usr/bin/herald")
        p = subprocess.Popen([binary, "--config", conf, "--listen", "127.0.0.1:%d" % port,
                              "--redis", "redis://127.0.0.1:%d" % redis_port,
                              "--node-id", "pkg"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: p.poll() is not None or (harness.port_open(port) and
                                                        http_get(port, "/readyz")[0] == 200),
                       20 * harness.SCALE, what="the installed herald to be ready")
            self.assertIsNone(p.poll(), "installed herald exited")
            with SSEClient(port, "/events/pkg.t") as c:
                self.assertEqual(c.status, 200)
                r = harness.RedisClient(redis_port)
                harness.wait_live_subscribed(r, "pkg.t")
                harness.fcall_publish(r, "pkg.t", "from-the-package")
                r.close()
                self.assertEqual(c.next_event().data, "from-the-package")
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(15 * harness.SCALE), 0, "exit status after SIGTERM")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            out = p.stdout.read()
            p.stdout.close()
        self.assertIsNone(harness.SANITIZER_RE.search(out), out.decode("utf-8", "replace"))
        return out

    def test_installed_binary_runs_with_installed_config(self):
        binary = os.path.join(self.root, "usr/bin/herald")
        v = subprocess.run([binary, "--version"], capture_output=True, check=True).stdout
        self.assertEqual(v, subprocess.run([HERALD_BIN, "--version"], capture_output=True,
                                           check=True).stdout)
        with harness.RedisServer() as srv:
            self.run_installed(os.path.join(self.root, "etc/herald/herald.conf"), srv.port)
            # Every setting uncommented at its printed default is a valid configuration.
            with open(os.path.join(self.root, "etc/herald/herald.conf")) as f:
                conf = re.sub(r"(?m)^#([a-z][a-z0-9-]* = )", r"\1", f.read())
            full = os.path.join(self.tmp, "full.conf")
            with open(full, "w") as f:
                f.write(conf)
            os.chmod(full, 0o600)
            self.assertGreater(len(re.findall(r"(?m)^[a-z]", conf)), 20)
            self.run_installed(full, srv.port)

    def test_systemd_unit(self):
        unit_path = os.path.join(self.root, "usr/lib/systemd/system/herald.service")
        with open(unit_path) as f:
            unit = f.read()
        kv = {}
        for line in unit.splitlines():
            if "=" in line and not line.startswith("#"):
                k, _, v = line.partition("=")
                kv.setdefault(k, []).append(v)
        self.assertEqual(kv["ExecStart"], ["/usr/bin/herald --config /etc/herald/herald.conf"])
        self.assertEqual(kv["User"], ["herald"])
        for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("Restart", "on-failure"), ("KillSignal", "SIGTERM")):
            self.assertEqual(kv[k], [v], k)
        rows = settings()
        self.assertGreaterEqual(int(kv["LimitNOFILE"][0]), int(rows["max-connections"]) + 1024,
                                "LimitNOFILE below the default connection limit")
        stop = int(kv["TimeoutStopSec"][0].rstrip("s"))
        self.assertGreater(stop, int(rows["drain-timeout"]), "SIGKILL before the drain ends")
        # systemd-analyze checks ExecStart exists: the same unit, pointed at the scratch root.
        test_unit = os.path.join(self.tmp, "herald.service")
        with open(test_unit, "w") as f:
            f.write(unit.replace("ExecStart=/usr/bin/herald",
                                 "ExecStart=" + os.path.join(self.root, "usr/bin/herald")))
        p = subprocess.run(["systemd-analyze", "verify", test_unit], capture_output=True,
                           timeout=60 * harness.SCALE)
        self.assertEqual((p.returncode, p.stderr.decode()), (0, ""), "systemd-analyze verify")
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", test_unit],
                           capture_output=True, timeout=60 * harness.SCALE)
        text = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
        m = re.search(r"Overall exposure level for herald\.service: ([0-9.]+)", text)
        self.assertIsNotNone(m, text[-2000:])
        self.assertLessEqual(float(m.group(1)), 2.5, "unit less hardened than before:\n" + text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
