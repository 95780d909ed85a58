"""The fault-schedule checker's short run (tests/checker/run.py, issue 15): three seeds with
process faults (edge SIGKILL/SIGTERM/SIGSTOP, Redis restarts with and without data) and one
with network faults, against every transport and publish path; fails on any violation the
checker reports (silent loss, duplicate, reorder, unstored delivery, an acknowledged publish
not stored, ...). The long run is `tests/checker/run.py --seeds 1-200 --net-faults`."""

import os
import subprocess
import sys
import unittest

import harness

SEEDS = os.environ.get("HERALD_CHECKER_SEEDS", "3-5")
NET_SEEDS = os.environ.get("HERALD_CHECKER_NET_SEEDS", "22")
CHECKER = os.path.join(harness.SRC, "tests", "checker")


class CheckerShortRun(unittest.TestCase):
    def test_a_selftest(self):
        """The checks find what was planted in made-up histories (no processes)."""
        p = subprocess.run([sys.executable, os.path.join(CHECKER, "selftest.py")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        print(p.stdout.decode("utf-8", "replace"), flush=True)
        self.assertEqual(p.returncode, 0, "the checker's self-test failed")

    def test_short_run(self):
        run = os.path.join(CHECKER, "run.py")
        p = subprocess.run([sys.executable, run, "--seeds", SEEDS, "--duration", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=280)
        out = p.stdout.decode("utf-8", "replace")
        print(out, flush=True)
        self.assertIn("checker: ", out)
        self.assertEqual(p.returncode, 0, "the checker found violations (see above)")

    def test_short_run_net_faults(self):
        """One schedule with network faults (partitions, loss, tbf, latency), in a private
        network namespace: needs root; the tools are installed with deploy/deps.sh."""
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root")
        p = subprocess.run([sys.executable, os.path.join(CHECKER, "run.py"), "--seeds",
                            NET_SEEDS, "--net-faults"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=200)
        out = p.stdout.decode("utf-8", "replace")
        print(out, flush=True)
        self.assertIn("net faults", out)
        self.assertEqual(p.returncode, 0, "the checker found violations (see above)")


if __name__ == "__main__":
    harness.main()
