"""The deployment files: docker-compose.yml validates with docker-compose, deploy/haproxy.cfg is
valid for both ways it is used (compose DNS discovery, local fixed edges), and
deploy/Dockerfile's stages build and ship the same target as the CMake build and install the
run-time libraries the binary needs."""

import os
import re
import shutil
import subprocess
import unittest

import harness
from harness import HERALD_BIN, SRC

COMPOSE = os.path.join(SRC, "docker-compose.yml")
DOCKERFILE = os.path.join(SRC, "deploy", "Dockerfile")
HAPROXY_CFG = os.path.join(SRC, "deploy", "haproxy.cfg")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(extra)
    return env


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                          **kw)


def parse_dockerfile(text):
    """[(stage name, base image, [(INSTRUCTION, argument text)])] with continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
            stages.append((m.group(2), m.group(1), []))
        else:
            if not stages:
                raise AssertionError("instruction before FROM: %r" % line)
            stages[-1][2].append((word, " ".join(rest.split())))
    return stages


def deb_package_of(path):
    out = run(["dpkg", "-S", os.path.realpath(path)])
    if out.returncode != 0:
        out = run(["dpkg", "-S", path])
    if out.returncode != 0:
        return None
    return out.stdout.decode().split(":")[0].strip()


class Compose(unittest.TestCase):

    def test_docker_compose_config_validates(self):
        exe = shutil.which("docker-compose")
        if not exe:
            if os.environ.get("CI"):
                self.fail("docker-compose is not installed; tests/run.sh installs it "
                          "(deploy/deps.sh compose)")
            self.skipTest("docker-compose is not installed (deploy/deps.sh compose)")
        out = run([exe, "-f", COMPOSE, "config", "-q"], cwd=SRC, env=clean_env())
        self.assertEqual(out.returncode, 0, out.stdout.decode())
        full = run([exe, "-f", COMPOSE, "config"], cwd=SRC, env=clean_env())
        self.assertEqual(full.returncode, 0, full.stdout.decode())
        cfg = full.stdout.decode()
        for needle in ("dockerfile: deploy/Dockerfile", "image: redis:7", "scale: 3",
                       "HERALD_EDGE_DNS: edge:8080", "redis-data", "condition: service_healthy",
                       "/usr/local/etc/haproxy/haproxy.cfg"):
            self.assertIn(needle, cfg)
        harness.log("docker-compose -f docker-compose.yml config -q: ok (%s)" % exe)

    def test_compose_uses_the_one_haproxy_config(self):
        with open(COMPOSE) as f:
            text = f.read()
        self.assertIn("./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro", text)
        for name in re.findall(r"^\s+(\w+):", text, re.M):
            if name.isupper():
                self.assertTrue(name.startswith("HERALD_"), "non-HERALD_ variable %s" % name)


class HAProxyConfig(unittest.TestCase):

    def check(self, **env):
        exe = shutil.which("haproxy")
        if not exe:
            self.fail("haproxy is not installed (deploy/deps.sh lb)")
        out = run([exe, "-c", "-f", HAPROXY_CFG], env=clean_env(**env))
        self.assertEqual(out.returncode, 0, out.stdout.decode())

    def test_valid_as_compose_runs_it(self):
        self.check(HERALD_LB_BIND="0.0.0.0:8080", HERALD_EDGE_DNS="edge:8080")

    def test_valid_as_local_runs_it(self):
        self.check(HERALD_LB_BIND="127.0.0.1:8080", HERALD_EDGE_1="127.0.0.1:8081",
                   HERALD_EDGE_2="127.0.0.1:8082", HERALD_EDGE_3="127.0.0.1:8083",
                   HERALD_LB_STATS_SOCKET="/tmp/herald-lb-check.sock")

    def test_streaming_settings(self):
        with open(HAPROXY_CFG) as f:
            text = f.read()
        lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        self.assertIn("mode http", lines)
        self.assertIn("balance roundrobin", lines)
        self.assertIn("http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host herald-lb", lines)
        for key in ("timeout client", "timeout server", "timeout tunnel"):
            v = [ln for ln in lines if ln.startswith(key + " ")]
            self.assertEqual(len(v), 1, key)
            self.assertEqual(v[0], key + " 1h")
        for bad in ("compression", "cookie", "stick", "http-buffer-request", "cache"):
            self.assertFalse([ln for ln in lines if ln.split()[0] == bad or
                              ln.startswith("option " + bad)], "%s would break streaming" % bad)


class Dockerfile(unittest.TestCase):

    def setUp(self):
        with open(DOCKERFILE) as f:
            self.text = f.read()
        self.stages = parse_dockerfile(self.text)

    def test_stages(self):
        self.assertEqual([(n, img) for n, img, _ in self.stages],
                         [("build", "debian:12"), ("runtime", "debian:12-slim")])
        build, runtime = self.stages[0][2], self.stages[1][2]
        runs = " && ".join(a for w, a in build if w == "RUN")
        self.assertRegex(runs, r"cmake -S \. -B build\b")
        self.assertRegex(runs, r"cmake --build build .*--target herald\b")
        copies = [a for w, a in build if w == "COPY"]
        for needed in ("CMakeLists.txt", "common/", "edge/"):
            self.assertTrue(any(c.startswith(needed) for c in copies), needed)
        self.assertIn(("COPY", "--from=build /src/build/herald /usr/local/bin/herald"), runtime)
        users = [a for w, a in runtime if w == "USER"]
        self.assertEqual(len(users), 1)
        self.assertNotRegex(users[0], r"^(root|0)(:|$)")
        hc = [a for w, a in runtime if w == "HEALTHCHECK"]
        self.assertEqual(len(hc), 1)
        self.assertIn("/healthz", hc[0])
        self.assertIn(("ENTRYPOINT", '["/usr/local/bin/herald"]'), runtime)
        self.assertFalse([a for w, a in runtime if w == "RUN" and "-dev" in a],
                         "the runtime stage installs -dev packages")

    def test_build_stage_has_the_dev_packages_cmake_asks_for(self):
        """Every pkg-config module CMakeLists.txt requires for herald comes from a package the
        build stage installs."""
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            cmake = f.read()
        modules = set()
        for m in re.finditer(r"pkg_check_modules\(\w+ REQUIRED IMPORTED_TARGET ([^)]*)\)", cmake):
            modules.update(m.group(1).split())
        modules.discard("cmocka")
        self.assertIn("hiredis", modules)
        build_runs = " ".join(a for w, a in self.stages[0][2] if w == "RUN")
        for mod in sorted(modules):
            out = run(["pkg-config", "--path", mod])
            self.assertEqual(out.returncode, 0, "pkg-config does not know %s" % mod)
            pkg = deb_package_of(out.stdout.decode().strip())
            self.assertIsNotNone(pkg, mod)
            self.assertIn(" %s " % pkg, " %s " % build_runs,
                          "%s (pkg-config %s) is not installed by the build stage" % (pkg, mod))

    def test_runtime_stage_has_the_event_loop_plugin(self):
        """The service threads run on lws' libev plugin, loaded at run time (not in NEEDED);
        without it the edge falls back to poll(2), which is slow with many connections."""
        runs = " ".join(a for w, a in self.stages[1][2] if w == "RUN")
        self.assertIn(" libwebsockets-evlib-ev ", " %s " % runs)

    def test_runtime_stage_has_the_libraries_herald_loads(self):
        out = run(["readelf", "-d", HERALD_BIN])
        self.assertEqual(out.returncode, 0, out.stdout.decode())
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout.decode())
        self.assertTrue(needed)
        ldd = run(["ldd", HERALD_BIN]).stdout.decode()
        runtime_runs = " ".join(a for w, a in self.stages[1][2] if w == "RUN")
        for lib in needed:
            if re.match(r"lib(c|m|pthread|dl|asan|ubsan|stdc\+\+|gcc_s)\.so", lib):
                continue  # in the base image, or only in sanitizer builds
            m = re.search(r"^\s*%s => (\S+)" % re.escape(lib), ldd, re.M)
            self.assertTrue(m, "ldd does not resolve %s" % lib)
            pkg = deb_package_of(m.group(1))
            self.assertIsNotNone(pkg, lib)
            self.assertIn(" %s " % pkg, " %s " % runtime_runs,
                          "%s (for %s) is not installed by the runtime stage" % (pkg, lib))


if __name__ == "__main__":
    unittest.main(verbosity=2)
