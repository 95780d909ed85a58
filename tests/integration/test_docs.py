"""The README's settings table is the one `herald --help-markdown` prints: every flag is
documented, with its environment variable and default, and none is documented that is gone."""

import os
import re
import subprocess
import unittest


class Docs(unittest.TestCase):

    def test_readme_settings_table_matches_the_binary(self):
        table = subprocess.run([os.environ["HERALD_BIN"], "--help-markdown"], check=True,
                               capture_output=True, text=True).stdout
        with open(os.path.join(os.environ["HERALD_SRC"], "README.md"), encoding="utf-8") as f:
            readme = f.read()
        m = re.search(r"<!-- settings-table -->\n(.*?)<!-- /settings-table -->", readme, re.S)
        self.assertIsNotNone(m, "README has no settings-table markers")
        self.assertEqual(m.group(1), table,
                         "README settings table is stale: regenerate it with "
                         "`herald --help-markdown`")

    def test_every_flag_has_an_env_twin_in_help(self):
        out = subprocess.run([os.environ["HERALD_BIN"], "--help"], check=True,
                             capture_output=True, text=True).stdout
        flags = re.findall(r"^  --([a-z-]+)=VALUE  \((HERALD_[A-Z_]+),", out, re.M)
        self.assertGreater(len(flags), 20)
        for flag, env in flags:
            self.assertEqual(env, "HERALD_" + flag.upper().replace("-", "_"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
