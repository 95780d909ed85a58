"""deploy/prometheus and deploy/grafana: the rules pass `promtool check` and their unit tests
(`promtool test rules`); a real Prometheus scraping three edges loads them without an error,
every recording rule and every Grafana panel query returns data, and HeraldEdgeDown goes
pending when an edge dies (every metric they name, the canary and the process descriptor
gauges included, is exported by the edges). Needs deploy/deps.sh ops (prometheus)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import harness
from harness import SRC, HeraldTestCase, free_port, wait_until

PROM_DIR = os.path.join(SRC, "deploy", "prometheus")
RULES = os.path.join(PROM_DIR, "herald.rules.yml")
DASHBOARD = os.path.join(SRC, "deploy", "grafana", "dashboards", "herald.json")
# Every metric a rule or panel names must return data from the three edges.
ALLOWED_ABSENT = set()


def promtool(*args):
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed (deploy/deps.sh ops)"
    p = subprocess.run([exe] + list(args), capture_output=True, cwd=PROM_DIR,
                       timeout=60 * harness.SCALE)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def metric_names(expr):
    return set(re.findall(r"\b((?:herald|process)_[a-z0-9_]+)", expr))


class Monitoring(HeraldTestCase):

    def test_promtool_checks_and_rule_unit_tests(self):
        rc, out = promtool("check", "rules", RULES)
        self.assertEqual(rc, 0, out)
        rc, out = promtool("test", "rules", os.path.join("tests", "herald.rules.test.yml"))
        self.assertEqual(rc, 0, out)
        self.assertIn("SUCCESS", out)
        rc, out = promtool("check", "config", os.path.join(PROM_DIR, "prometheus.yml"))
        self.assertEqual(rc, 0, out)

    def test_compose_monitoring_profile(self):
        exe = shutil.which("docker-compose")
        self.assertTrue(exe, "docker-compose is not installed (deploy/deps.sh compose)")
        compose = os.path.join(SRC, "docker-compose.yml")

        def services(*extra):
            p = subprocess.run([exe, "-f", compose] + list(extra) + ["config", "--services"],
                               capture_output=True, cwd=SRC, timeout=60 * harness.SCALE)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            return set(p.stdout.decode().split())
        self.assertEqual(services("--profile", "monitoring"),
                         {"redis", "edge", "lb", "prometheus", "grafana"})
        # Opt-in: only the two monitoring services carry the profile (docker-compose 1.29
        # lists every service in `config --services`, so read the file).
        with open(compose) as f:
            blocks = re.split(r"(?m)^  (\w[\w-]*):\n", f.read().split("\nvolumes:")[0])
        profiled = {blocks[i] for i in range(1, len(blocks), 2)
                    if 'profiles: ["monitoring"]' in blocks[i + 1]}
        self.assertEqual(profiled, {"prometheus", "grafana"})
        p = subprocess.run([exe, "-f", compose, "--profile", "monitoring", "config"],
                           capture_output=True, cwd=SRC, timeout=60 * harness.SCALE, check=True)
        for path in re.findall(r"source: (\S+)", p.stdout.decode()):
            if path.startswith("/"):
                self.assertTrue(os.path.exists(path), "compose mounts a missing %s" % path)
        for path in ("deploy/prometheus/prometheus.yml", "deploy/prometheus/herald.rules.yml",
                     "deploy/grafana/provisioning/datasources/prometheus.yml",
                     "deploy/grafana/provisioning/dashboards/herald.yml"):
            self.assertTrue(os.path.exists(os.path.join(SRC, path)), path)

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.prom_port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10 * harness.SCALE) as r:
            body = json.loads(r.read())
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def start_prometheus(self, targets):
        exe = shutil.which("prometheus")
        self.assertTrue(exe, "prometheus is not installed (deploy/deps.sh ops)")
        tmp = tempfile.mkdtemp(prefix="herald-ops-prom-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cfg = os.path.join(tmp, "prometheus.yml")
        # The shipped rules file as it is; only the intervals are short for the test.
        with open(cfg, "w") as f:
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "rule_files": [RULES],
                       "scrape_configs": [{"job_name": "herald",
                                           "static_configs": [{"targets": targets}]}]}, f)
        self.prom_port = free_port()
        log = open(os.path.join(tmp, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([exe, "--config.file=" + cfg,
                              "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                              "--web.listen-address=127.0.0.1:%d" % self.prom_port,
                              "--log.level=warn"],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def stop():
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.addCleanup(stop)

        def ready():
            if p.poll() is not None:
                with open(log.name, errors="replace") as f:
                    self.fail("prometheus exited: " + f.read()[-3000:])
            return harness.port_open(self.prom_port) and urllib.request.urlopen(
                "http://127.0.0.1:%d/-/ready" % self.prom_port, timeout=5).status == 200
        wait_until(ready, 30, what="prometheus to be ready")

    def test_live_prometheus_rules_and_dashboard(self):
        srv = self.redis()
        edges = self.edges(srv, 3)
        targets = ["127.0.0.1:%d" % h.port for h in edges]
        # Traffic, so that delivery counters and histograms move.
        c = self.sse(edges[0].port, "/events/ops.prom")
        r = self.client(srv)
        harness.wait_live_subscribed(r, "ops.prom")
        self.start_prometheus(targets)
        for i in range(5):
            harness.fcall_publish(r, "ops.prom", "e%d" % i)
        self.assertEqual([e.data for e in c.events(5)], ["e%d" % i for i in range(5)])
        exported = set()
        for h in edges:
            exported |= {k.split("{")[0] for k in harness.scrape(h.port)}

        def targets_up():
            active = self.api("targets")["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)
        wait_until(targets_up, 30, what="prometheus to scrape the three edges")
        for i in range(5, 10):  # more deliveries, now with scrapes on both sides
            harness.fcall_publish(r, "ops.prom", "e%d" % i)
        c.events(5)

        # Every rule of the shipped file is loaded and evaluates without an error.
        def rules_ok():
            groups = self.api("rules")["groups"]
            rules = [ru for g in groups for ru in g["rules"]]
            return ({g["name"] for g in groups} == {"herald-recording", "herald-alerts"} and
                    len(rules) >= 20 and all(ru["health"] == "ok" for ru in rules)) and rules
        rules = wait_until(rules_ok, 30, what="every rule evaluated with health ok")

        def has_data(expr):
            return len(self.query(expr)) > 0

        record_of = {ru["name"]: ru["query"] for ru in rules if ru["type"] == "recording"}

        def check(expr, what):
            # A recorded series stands for the metrics of its rule's query.
            names = metric_names(expr)
            for rec, q in record_of.items():
                if rec in expr:
                    names |= metric_names(q)
            missing = names & ALLOWED_ABSENT - exported
            if missing and not has_data(expr):
                harness.log("%s: %s is not exported yet; %r returns nothing" % (what, missing, expr))
                return
            wait_until(lambda: has_data(expr), 20, what="%s to return data: %s" % (what, expr))

        recorded = [ru for ru in rules if ru["type"] == "recording"]
        self.assertEqual(set(record_of), {ru["name"] for ru in recorded})
        self.assertGreaterEqual(len(recorded), 10)
        for ru in recorded:
            check(ru["query"], "recording rule " + ru["name"])
            check(ru["name"], "recorded series " + ru["name"])
        # Not every rule may be allowed to be empty: the core series have data on each edge.
        self.assertEqual(len(self.query("herald:connections:sum")), 3)
        # one ingest leader: it comes a lease period or two after three edges start together
        # (a young edge watches the lease lie free first: FINDINGS F14)
        wait_until(lambda: [r["value"][1] for r in self.query("herald:ingest_leaders:sum")] ==
                   ["1"], 30, what="herald:ingest_leaders:sum to be 1")

        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(exprs), 15)
        for title, expr in exprs:
            q = expr.replace("$instance", ".*").replace("$__rate_interval", "1m")
            self.assertNotIn("$", q, "a dashboard variable the test does not know")
            check(q, "panel %r" % title)
        for v in dash["templating"]["list"]:
            if v["type"] == "query":
                m = re.fullmatch(r"label_values\((\w+), (\w+)\)", v["definition"])
                self.assertIsNotNone(m, v["definition"])
                vals = self.api("label/%s/values" % m.group(2), **{"match[]": m.group(1)})
                self.assertEqual(sorted(vals), sorted(targets))

        # An edge dies: HeraldEdgeDown is pending (firing would take its 1 minute "for").
        edges[2].kill()

        def pending():
            return [a for a in self.api("alerts")["alerts"]
                    if a["labels"]["alertname"] == "HeraldEdgeDown"]
        alerts = wait_until(pending, 30, what="HeraldEdgeDown to be pending")
        self.assertEqual([a["labels"]["instance"] for a in alerts], [targets[2]])
        self.assertEqual(alerts[0]["state"], "pending")


if __name__ == "__main__":
    harness.main()
