"""What the headless-Chromium tests share (tests/integration/test_browser_*.py): where the node
scripts and Chromium are, and the check that they are installed. A browser test fails, never
skips, when node, chromium or tests/browser/node_modules are missing: tests/run.sh installs them
(deploy/deps.sh browser; npm ci in tests/browser)."""

import os
import shutil

from harness import SRC

BROWSER_DIR = os.path.join(SRC, "tests", "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_browser(test):
    """The path of node; fails `test` when node, Chromium or playwright-core is missing."""
    node = shutil.which("node")
    test.assertTrue(node, "node is not installed (deploy/deps.sh browser)")
    test.assertTrue(os.access(CHROMIUM, os.X_OK), "%s is missing (deploy/deps.sh browser)" % CHROMIUM)
    test.assertTrue(os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")),
                    "tests/browser/node_modules is missing: run npm ci in tests/browser")
    return node
