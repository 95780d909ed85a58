"""herald --version: the version of CMakeLists.txt's project() plus the git revision the binary
was built from (when built from git), printed without reading any configuration or touching
Redis; --help names it; CHANGELOG.md (Keep a Changelog) has its Unreleased section."""

import os
import re
import shutil
import subprocess
import unittest

import harness
from harness import HERALD_BIN, SRC


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        m = re.search(r"^project\(herald VERSION (\d+\.\d+\.\d+)", f.read(), re.M)
    assert m, "no project(herald VERSION x.y.z) in CMakeLists.txt"
    return m.group(1)


def run(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([HERALD_BIN] + args, capture_output=True, env=e, stdin=subprocess.DEVNULL,
                          timeout=20 * harness.SCALE)


class Version(unittest.TestCase):

    def test_version_line(self):
        p = run(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        line = p.stdout.decode()
        m = re.fullmatch(r"herald (\d+\.\d+\.\d+)(?: \(git ([0-9a-f]{12})(-dirty)?\))?\n", line)
        self.assertIsNotNone(m, "unexpected --version output %r" % line)
        self.assertEqual(m.group(1), project_version())
        git = shutil.which("git")
        if git and subprocess.run([git, "-C", SRC, "rev-parse", "--git-dir"],
                                  capture_output=True).returncode == 0:
            head = subprocess.run([git, "-C", SRC, "rev-parse", "--short=12", "HEAD"],
                                  capture_output=True, check=True).stdout.decode().strip()
            self.assertEqual(m.group(2), head, "the binary was not built from HEAD (rebuild?)")
        else:
            self.assertIsNone(m.group(2), "a revision without git: %r" % line)

    def test_version_reads_no_configuration(self):
        # Invalid settings in the environment and a missing config file do not matter, and no
        # Redis is contacted (there is none on that port).
        p = run(["--version", "--history-max", "abc"],
                env={"HERALD_CONFIG": "/nonexistent/herald.conf", "HERALD_THREADS": "x",
                     "HERALD_REDIS": "redis://127.0.0.1:%d" % harness.free_port()})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"herald " + project_version().encode()))

    def test_help_names_version(self):
        p = run(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"--version", p.stdout)

    def test_changelog(self):
        with open(os.path.join(SRC, "CHANGELOG.md")) as f:
            text = f.read()
        self.assertIn("Keep a Changelog", text)
        self.assertIn("Semantic Versioning", text)
        self.assertRegex(text, r"(?m)^## \[Unreleased\]$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
