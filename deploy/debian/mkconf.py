#!/usr/bin/env python3
"""Writes the packaged /etc/herald/herald.conf: `HERALD --help-markdown` -> every setting,
commented out at its default, with its meaning and accepted values (the --config format of
README "Configuration file"). Generated at build time, so it never lags the flags.
Usage: mkconf.py HERALD_BINARY OUT"""

import subprocess
import sys
import textwrap

HEAD = """\
# /etc/herald/herald.conf: settings of the Herald edge (herald --config, README "Configuration
# file"). One `name = value` per line; every setting below is commented out at its default.
# Precedence: command line, then HERALD_* environment (e.g. a systemd drop-in), then this file.
# Secrets (publish-key, jwt-secret) belong here, not on the command line: this file is mode
# 0640, owner root, group herald. After a change: systemctl restart herald (the edge drains).
"""
# The demo page on "/" has no flag (every edge serves it); nothing here differs from the
# binary's defaults.
SKIP = {"config"}  # not allowed inside the file


def main():
    out = [HEAD.rstrip("\n")]
    table = subprocess.run([sys.argv[1], "--help-markdown"], check=True, capture_output=True,
                           env={"PATH": "/usr/bin:/bin"}).stdout.decode()
    for line in table.splitlines():
        line = line.strip()
        if not line.startswith("| `--"):
            continue
        cells = [c.strip() for c in line[1:-1].split(" | ")]
        if len(cells) != 5:
            sys.exit("mkconf: unexpected row %r" % line)
        flag, env, default, values, meaning = cells
        name = flag.strip("`")[2:]
        if name in SKIP:
            continue
        default = default.strip("`")
        out.append("")
        for w in textwrap.wrap("%s (%s; %s)" % (meaning, env.strip("`"), values), 94):
            out.append("# " + w)
        out.append("#%s = %s" % (name, default if default else '""'))
    if len(out) < 10:
        sys.exit("mkconf: no settings read from herald --help-markdown")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
