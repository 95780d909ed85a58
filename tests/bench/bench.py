#!/usr/bin/env python3
"""Herald and nchan side by side: the scenarios of tests/bench/run.sh.

Started by run.sh (which installs the packages and builds the binaries). Every server runs on a
free loopback port with a fresh redis-server; every process started here is in its own process
group and is ended on every exit path (normal end, exception, SIGINT, SIGTERM).

Writes <out>/results.json (every loadgen object plus the derived figures), <out>/results.md
(the tables) and, with --readme, rewrites the results section of tests/bench/README.md.
"""

import argparse
import atexit
import datetime
import http.client
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"

_procs = []


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def _end(p, grace=5.0):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


def cleanup():
    while _procs:
        _end(_procs.pop())


def _on_signal(signum, frame):
    cleanup()
    sys.exit(128 + signum)


atexit.register(cleanup)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGTERM, _on_signal)


def spawn(argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _procs.append(p)
    return p


def stop(p):
    if p in _procs:
        _procs.remove(p)
    _end(p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


# ---------- a minimal Redis client ----------

class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    @staticmethod
    def enc(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = self.f.read(n + 2)[:-2]
            return d.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def cmd(self, *args):
        self.s.sendall(self.enc(args))
        r = self.read()
        if isinstance(r, Exception):
            raise r
        return r

    def pipeline(self, cmds):
        self.s.sendall(b"".join(self.enc(c) for c in cmds))
        return [self.read() for _ in cmds]

    def close(self):
        self.s.close()


def start_redis(tmp, extra=()):
    port = free_port()
    d = tempfile.mkdtemp(dir=tmp, prefix="redis-")
    p = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", d, "--maxclients", "10000",
               "--logfile", os.path.join(d, "redis.log")] + list(extra),
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        r = Redis(port)
        try:
            return r.cmd("PING") == "PONG"
        finally:
            r.close()
    wait_until(up, 10, "redis-server")
    return p, port


def start_herald(bin_, tmp, redis_port, threads, extra=()):
    port = free_port()
    logf = open(os.path.join(tmp, "herald-%d.log" % port), "wb")
    p = spawn([bin_, "--listen", "127.0.0.1:%d" % port, "--redis",
               "redis://127.0.0.1:%d" % redis_port, "--threads", str(threads),
               "--publish-key", "benchkey", "--log-level", "warn"] + list(extra),
              stdout=subprocess.DEVNULL, stderr=logf)
    logf.close()

    def ready():
        if p.poll() is not None:
            raise RuntimeError("herald exited with %s" % p.returncode)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("GET", "/readyz")
            return c.getresponse().status == 200
        finally:
            c.close()
    wait_until(ready, 20, "herald /readyz")
    ex = [str(x) for x in extra]
    if not any(ex[i] == "--ingest" and ex[i + 1] == "off" for i in range(len(ex) - 1)):
        # raw PUBLISHes before the first ingest leader (a fresh edge waits out a lease another
        # edge may hold, about 7 s) are stored later as a burst: measured, it reads as seconds
        # of latency. Published only once a leader holds the lease.
        wait_until(lambda: redis_has(redis_port, LEASE_KEY), 30,
                   "the raw-ingest leader")
    return p, port, p.pid


LEASE_KEY = "herald:ingest:lease"


def redis_has(port, key):
    """Whether key exists on the Redis at port (EXISTS by hand: the benchmarks need no client
    library)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"*2\r\n$6\r\nEXISTS\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
        return s.recv(64).startswith(b":1")


NGINX_CONF = """
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log error;
load_module {module};
worker_rlimit_nofile {nofile};
events {{ worker_connections {wconns}; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 100000000;   # publishers keep their connection
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream bench_redis {{ nchan_redis_server redis://127.0.0.1:{rport}; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location ~ ^/sub/(.+)$ {{
      nchan_subscriber websocket eventsource;
      nchan_channel_id $1;
      nchan_redis_pass bench_redis;
      nchan_subscriber_first_message newest;
      nchan_message_buffer_length 1000;   # Herald's --history-max default
      nchan_message_timeout 1h;
    }}
    location ~ ^/pub/(.+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_redis_pass bench_redis;
    }}
  }}
}}
"""


def start_nchan(tmp, redis_port, nofile):
    port = free_port()
    d = tempfile.mkdtemp(dir=tmp, prefix="nginx-")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, module=NCHAN_MODULE, rport=redis_port, port=port,
                                  nofile=nofile - 100, wconns=nofile - 200))
    p = spawn(["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
              stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "stderr.log"), "wb"))
    worker = []

    def up():
        if p.poll() is not None:
            raise RuntimeError("nginx exited with %s (see %s)" % (p.returncode, d))
        kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
        if not kids:
            return False
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        worker[:] = [int(kids[0])]
        return True
    wait_until(up, 20, "nginx")
    # nchan is ready once it is connected to Redis: a publish succeeds.
    def pub_ok():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("POST", "/pub/bench.ready", body=b"x")
            return c.getresponse().status in (200, 201, 202)
        finally:
            c.close()
    wait_until(pub_ok, 20, "nchan publisher")
    return p, port, worker[0]


# ---------- running the generator ----------

def loadgen(lg, args, timeout):
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as tf:
        path = tf.name
    argv = [lg] + [str(a) for a in args] + ["--json", path]
    log(" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv)))
    p = spawn(argv, stdout=subprocess.DEVNULL)
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        raise RuntimeError("loadgen did not finish within %d s" % timeout)
    if p in _procs:
        _procs.remove(p)
    if rc != 0:
        raise RuntimeError("loadgen exited with %d" % rc)
    with open(path) as f:
        d = json.load(f)
    os.unlink(path)
    return d


def perf_report(data, out):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                        "--percent-limit", "0.5"],
                       capture_output=True, text=True, timeout=120)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    with open(out, "w") as f:
        f.write("\n".join(lines[:80]) + "\n")


# ---------- scenarios ----------

def scenario_list(quick):
    big, small = (1000, 200) if quick else (10000, 2000)
    step = 1.5 if quick else 4
    fixed = 2 if quick else 10
    steps = 4 if quick else 14
    ramp = 3.0 if quick else 1.5
    fan = []
    for mode in ("sse", "ws"):
        fan.append(dict(name="%s-%dk" % (mode, small // 1000) if small >= 1000 else
                        "%s-%d" % (mode, small), kind="fanout", mode=mode, conns=small,
                        topics=1, rate=25, step=step, steps=steps, ramp=ramp, fixed=fixed))
        fan.append(dict(name="%s-%dk" % (mode, big // 1000), kind="fanout", mode=mode,
                        conns=big, topics=1, rate=5, step=step, steps=steps, ramp=ramp, fixed=fixed))
    fan.append(dict(name="idle-%dk" % (big // 1000), kind="idle", mode="sse", conns=big,
                    topics=1, rate=0, hold=2 if quick else 3))
    ntop = 200 if quick else 2000
    fan.append(dict(name="topics-%d" % ntop, kind="topics", mode="sse", conns=ntop,
                    topics=ntop, rate=ntop, duration=3 if quick else 8))
    return fan


def run_one(a, sc, server, tmp, nofile):
    """One scenario against one server, with a fresh Redis; returns the loadgen object."""
    rproc, rport = start_redis(tmp)
    sproc = None
    try:
        if server.startswith("herald"):
            threads = int(re.match(r"herald-t(\d+)", server).group(1))
            sproc, port, spid = start_herald(a.herald, tmp, rport, threads)
            names = ["--server", "herald"]
            pub = ["--pub", "redis", "--pub-target", "127.0.0.1:%d" % rport]
            if server.endswith("-http"):
                # POST /publish/<topic>, one request in flight per connection.
                pub = ["--pub", "http", "--pub-key", "benchkey", "--pub-conns", "16"]
            watch = ["--watch", "edge=%d" % spid]
        else:
            sproc, port, spid = start_nchan(tmp, rport, nofile)
            names = ["--server", "nchan"]
            pub = ["--pub", "http", "--pub-conns", "16", "--pub-pipeline", "64"]
            watch = ["--watch", "nginx=%d" % spid]
        watch += ["--watch", "redis=%d" % rproc.pid]
        args = names + ["--target", "127.0.0.1:%d" % port, "--mode", sc["mode"],
                        "--conns", sc["conns"], "--topics", sc["topics"],
                        "--topic-prefix", "b" + sc["name"].replace("-", ""),
                        "--src-addrs", max(1, min(64, sc["conns"] // 500)),
                        "--redis", "127.0.0.1:%d" % rport, "--label",
                        "%s %s" % (sc["name"], server), "--quiet"] + watch
        if sc["kind"] == "idle":
            args += ["--rate", 0, "--duration", sc["hold"], "--settle", 2]
        elif sc["kind"] == "topics":
            args += pub + ["--rate", sc["rate"], "--warmup", 2, "--duration", sc["duration"],
                           "--drain", 20]
        else:
            args += pub + ["--rate", sc["rate"], "--warmup", 1 if a.quick else 2, "--duration", sc["fixed"],
                           "--settle", 0.5 if a.quick else 1, "--window", 50, "--ramp", sc["ramp"],
                           "--steps", sc["steps"], "--step-duration", sc["step"],
                           "--drain", 10 if a.quick else 30]
        perf = None
        if a.perf and server == "herald-t1" and sc["kind"] == "fanout" and sc["conns"] >= 1000 \
                and sc["mode"] == "sse":
            # Start perf after connecting and warming up: it samples the ramp.
            perf = (sc, spid)
        if perf:
            ready = os.path.join(tmp, "measuring")
            if os.path.exists(ready):
                os.unlink(ready)
            lgjson = os.path.join(tmp, "lg.json")
            p = spawn([a.loadgen] + [str(x) for x in args] +
                      ["--json", lgjson, "--ready-file", ready], stdout=subprocess.DEVNULL)
            # Profile the ramp, after the fixed-rate step: perf's sampling with call chains
            # costs the edge CPU and would show in that step's latency.
            wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 300,
                       "loadgen to start measuring")
            time.sleep(sc["fixed"])
            data = os.path.join(a.out, "perf-edge.data")
            pp = spawn(["perf", "record", "-e", "cpu-clock", "-g", "-p", str(spid), "-o", data],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rc = p.wait(900)
            _procs.remove(p)
            os.killpg(pp.pid, signal.SIGINT)
            pp.wait(60)
            _procs.remove(pp)
            if rc != 0:
                raise RuntimeError("loadgen exited with %d" % rc)
            with open(lgjson) as f:
                d = json.load(f)
            perf_report(data, os.path.join(a.out, "perf-edge.txt"))
            d["perf"] = "perf-edge.txt"
        else:
            d = loadgen(a.loadgen, args, 900)
        d["server_name"] = server
        d["scenario"] = sc["name"]
        d["kind"] = sc["kind"]
        d["publish_via"] = ("raw PUBLISH" if "--pub-target" in pub else "HTTP POST") \
            if sc["kind"] != "idle" else "-"
        log("%s %s: %s" % (sc["name"], server, summary(d)))
        return d
    finally:
        if sproc:
            stop(sproc)
        stop(rproc)


def summary(d):
    return ("ready %d, %.0f deliveries/s, p50 %.2f p99 %.2f ms, gaps %d dups %d ooo %d tail %d, "
            "closed %d, err %r" % (d["ready"], d["deliveries_per_s"], d["latency_ms"]["p50"],
                                   d["latency_ms"]["p99"], d["gaps"], d["duplicates"],
                                   d["out_of_order"], d["tail_missing"], d["closed_by_server"],
                                   d["first_error"]))


def run_ingest(a, tmp):
    n = 50000 if a.quick else 200000
    ntopics = 100
    payload = "p" * 200
    res = {"messages": n, "topics": ntopics, "payload": 200, "pipeline": 16}
    # The edge's pattern subscription receives the whole burst at once; Redis' default pubsub
    # output-buffer limit (32 MB) would cut it off mid-burst. This measures ingest throughput,
    # so the limit is lifted for this scenario only.
    rproc, rport = start_redis(tmp, ["--client-output-buffer-limit", "pubsub 0 0 0"])
    hproc = None
    try:
        def bench(channel):
            r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(rport), "-n",
                                str(n), "-P", "16", "-c", "1", "-r", str(ntopics), "-q",
                                "PUBLISH", channel, payload],
                               capture_output=True, text=True, timeout=600)
            m = re.findall(r"([0-9.]+) requests per second", r.stdout.replace("\r", "\n"))
            if not m:
                raise RuntimeError("redis-benchmark: %s %s" % (r.stdout[-300:], r.stderr[-300:]))
            return float(m[-1])
        # Plain PUBLISH: nobody subscribed.
        res["redis_benchmark_publish_per_s"] = bench("plain.__rand_int__")
        rc = Redis(rport)
        rproc_cpu0 = proc_cpu(rproc.pid)
        hproc, hport, hpid = start_herald(a.herald, tmp, rport, 1)
        wait_until(lambda: rc.cmd("EXISTS", "herald:ingest:lease") == 1, 20, "ingest lease")
        keys = ["herald:{bench.ing.%012d}:log" % i for i in range(ntopics)]

        def stored():
            tot = 0
            for r in rc.pipeline([("XINFO", "STREAM", k) for k in keys]):
                if isinstance(r, list):
                    tot += int(r[r.index("entries-added") + 1])
            return tot
        e0, r0 = proc_cpu(hpid), proc_cpu(rproc.pid)
        t0 = time.monotonic()
        res["with_herald_publish_per_s"] = bench("bench.ing.__rand_int__")
        t_pub = time.monotonic() - t0
        last, last_t = -1, time.monotonic()
        while True:
            s = stored()
            now = time.monotonic()
            if s >= n:
                break
            if s != last:
                last, last_t = s, now
            elif now - last_t > 5:
                break
            time.sleep(0.05)
        t_all = time.monotonic() - t0
        res["stored"] = s
        res["publish_s"] = round(t_pub, 3)
        res["stored_s"] = round(t_all, 3)
        res["ingest_per_s"] = round(s / t_all, 1) if t_all > 0 else 0
        res["edge_cpu_s"] = round(proc_cpu(hpid) - e0, 3)
        res["redis_cpu_s"] = round(proc_cpu(rproc.pid) - r0, 3)
        res["ratio"] = round(res["ingest_per_s"] / res["redis_benchmark_publish_per_s"], 3)
        del rproc_cpu0
        rc.close()
        log("ingest: %s" % res)
        return res
    finally:
        if hproc:
            stop(hproc)
        stop(rproc)


def proc_cpu(pid):
    s = open("/proc/%d/stat" % pid).read()
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


# ---------- derived figures and tables ----------

def server_cpu(d, step=None):
    """CPU seconds of the server side (edge or nginx worker, plus redis)."""
    if step is not None:
        return sum(v for v in step["cpu"].values() if v > 0)
    return sum(p["cpu_s"] for p in d["procs"].values() if p["cpu_s"] > 0)


def derive(d):
    x = {}
    if d["kind"] == "fanout" and d["steps"]:
        s0 = d["steps"][0]
        b = d["steps"][d["best_step"]]
        x["fixed_rate"] = s0["rate_target"]
        x["fixed_pub_rate"] = s0["publish_per_s"]
        x["fixed_p50"] = s0["p50"]
        x["fixed_p99"] = s0["p99"]
        x["fixed_deliv_s"] = s0["deliveries_per_s"]
        c0 = server_cpu(d, s0)
        x["fixed_cpu_per_1k"] = 1000.0 * c0 / s0["deliveries"] if s0["deliveries"] else 0
        x["sat_rate"] = b["publish_per_s"]
        x["sat_deliv_s"] = b["deliveries_per_s"]
        cb = server_cpu(d, b)
        x["sat_server_cpu_frac"] = cb / b["t_s"] if b["t_s"] else 0
        x["sat_per_core_s"] = b["deliveries"] / cb if cb > 0 else 0
        x["sat_self_cpu_frac"] = b["self_cpu_s"] / b["t_s"] if b["t_s"] else 0
        x["sat_p99"] = b["p99"]
    main = "edge" if "edge" in d["procs"] else "nginx"
    p = d["procs"][main]
    x["rss_before_kb"] = p["rss_before_kb"]
    x["rss_connected_kb"] = p["rss_connected_kb"]
    x["rss_max_kb"] = p["rss_max_kb"]
    if d["ready"]:
        x["rss_per_conn_kb"] = (p["rss_connected_kb"] - p["rss_before_kb"]) / d["ready"]
    th = sorted((t["cpu_s"] for t in p["threads"]), reverse=True)
    tot = sum(th)
    x["busiest_thread_share"] = th[0] / tot if tot > 0 else 0
    x["second_thread_share"] = th[1] / tot if tot > 0 and len(th) > 1 else 0
    x["checks_ok"] = (d["gaps"] == 0 and d["duplicates"] == 0 and d["out_of_order"] == 0 and
                      d["tail_missing"] == 0 and d["malformed"] == 0 and
                      d["ready"] == d["conns"] and d["never_received"] == 0)
    return x


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("{:,.%df}" % nd).format(v)
    if isinstance(v, int):
        return "{:,}".format(v)
    return str(v)


def tables(results, ingest, servers):
    out = []
    by = {(d["scenario"], d["server_name"]): d for d in results}
    scen = []
    for d in results:
        if d["scenario"] not in scen:
            scen.append(d["scenario"])
    out.append("| scenario | server | publish | conns ready | fixed rate (ev/s) | p50 / p99 ms "
               "| saturation: ev/s, deliveries/s | server CPU (cores) | deliveries / core-s "
               "| x nchan | gen CPU | checks |")
    out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for s in scen:
        for srv in servers:
            d = by.get((s, srv))
            if not d or d["kind"] != "fanout":
                continue
            x = d["derived"]
            n = by.get((s, "nchan"))
            ratio = "-"
            if n and srv != "nchan" and n["derived"].get("sat_per_core_s"):
                ratio = "%.2f" % (x["sat_per_core_s"] / n["derived"]["sat_per_core_s"])
            out.append("| %s | %s | %s | %s | %s | %s / %s | %s, %s | %s | %s | %s | %s | %s |" % (
                s, srv, d["publish_via"], fmt(d["ready"]), fixed_text(x),
                fmt(x["fixed_p50"], 2), fmt(x["fixed_p99"], 2), fmt(x["sat_rate"], 0),
                fmt(x["sat_deliv_s"], 0), fmt(x["sat_server_cpu_frac"], 2),
                fmt(x["sat_per_core_s"], 0), ratio, "%.0f%%" % (100 * x["sat_self_cpu_frac"]),
                check_text(d)))
    out.append("")
    out.append("| scenario | server | conns ready | server RSS before / with conns (MiB) "
               "| RSS per conn (KiB) | Redis pubsub channels | CPU at fixed rate (cores) "
               "| checks |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for s in scen:
        for srv in servers:
            d = by.get((s, srv))
            if not d or d["kind"] not in ("idle", "topics"):
                continue
            x = d["derived"]
            cpu = "-"
            if d["kind"] == "topics" and d["measured_s"] > 0:
                cpu = "%.2f (%s ev/s)" % (server_cpu(d) / d["measured_s"], fmt(d["rate"], 0))
            out.append("| %s | %s | %s | %.1f / %.1f | %.2f | %s | %s | %s |" % (
                s, srv, fmt(d["ready"]), x["rss_before_kb"] / 1024, x["rss_connected_kb"] / 1024,
                x.get("rss_per_conn_kb", 0), fmt(d["pubsub_channels"]), cpu, check_text(d)))
    if ingest:
        out.append("")
        out.append("| raw PUBLISH ingest (one leader, `--threads 1`) | value |")
        out.append("| --- | ---: |")
        out.append("| redis-benchmark PUBLISH, nobody subscribed (`-n %d -P 16 -r %d`) | %s /s |"
                   % (ingest["messages"], ingest["topics"],
                      fmt(ingest["redis_benchmark_publish_per_s"], 0)))
        out.append("| the same publishes with the edge ingesting them | %s /s |"
                   % fmt(ingest["with_herald_publish_per_s"], 0))
        out.append("| entries stored (XINFO STREAM entries-added over %d topics) | %s of %s |"
                   % (ingest["topics"], fmt(ingest["stored"]), fmt(ingest["messages"])))
        out.append("| stored per second (first publish to last entry stored) | %s /s |"
                   % fmt(ingest["ingest_per_s"], 0))
        out.append("| edge CPU / Redis CPU over the ingest (s) | %.2f / %.2f |"
                   % (ingest["edge_cpu_s"], ingest["redis_cpu_s"]))
    return "\n".join(out)


def fixed_text(x):
    """The fixed rate, and what the publisher achieved when the window held it back."""
    if x["fixed_pub_rate"] < 0.95 * x["fixed_rate"]:
        return "%s (**%s achieved**)" % (fmt(x["fixed_rate"], 0), fmt(x["fixed_pub_rate"], 1))
    return fmt(x["fixed_rate"], 0)


def check_text(d):
    bad = []
    for k, name in (("gaps", "gaps"), ("duplicates", "dups"), ("out_of_order", "reordered"),
                    ("tail_missing", "missing at end"), ("malformed", "malformed")):
        if d[k]:
            bad.append("%s %s" % (fmt(d[k]), name))
    if d.get("pub_errors"):
        bad.append("%s publishes failed" % fmt(d["pub_errors"]))
    if bad and d.get("steps"):
        s0 = d["steps"][0]
        bad.append("at the fixed rate: %d gaps, %d dups, %d reordered" % (
            s0["gaps"], s0["duplicates"], s0["out_of_order"]))
    if d["ready"] != d["conns"]:
        bad.append("%d not connected" % (d["conns"] - d["ready"]))
    if d["closed_by_server"]:
        bad.append("%d closed by server" % d["closed_by_server"])
    if d.get("never_received"):
        bad.append("%d got nothing" % d["never_received"])
    return "0 gaps, 0 dups: ok" if not bad else "**" + ", ".join(bad) + "**"


def targets(results, ingest, quick):
    by = {(d["scenario"], d["server_name"]): d for d in results}
    rows = []

    def mark(ok):
        return "met" if ok else "**not met**"
    fan = [d for d in results if d["kind"] == "fanout" and d["server_name"] == "nchan"]
    for n in fan:
        for srv in ("herald-t1", "herald-t2"):
            h = by.get((n["scenario"], srv))
            if not h or not n["derived"].get("sat_per_core_s"):
                continue
            r = h["derived"]["sat_per_core_s"] / n["derived"]["sat_per_core_s"]
            rows.append(("deliveries per core-second >= 3x nchan, %s, %s" % (n["scenario"], srv),
                         "%.2fx (%s vs %s)" % (r, fmt(h["derived"]["sat_per_core_s"], 0),
                                               fmt(n["derived"]["sat_per_core_s"], 0)),
                         mark(r >= 3)))
    for d in results:
        if d["kind"] != "fanout" or not d["server_name"].startswith("herald"):
            continue
        lim = 10.0 if d["rate"] >= 25 else 40.0
        rows.append(("p99 <= %d ms at %s x %d/s, %s" % (lim, fmt(d["conns"]), d["rate"],
                                                       d["scenario"] + " " + d["server_name"]),
                     "%.2f ms" % d["derived"]["fixed_p99"], mark(d["derived"]["fixed_p99"] <= lim)))
    for d in results:
        if d["kind"] == "idle" and d["server_name"].startswith("herald"):
            v = d["derived"].get("rss_per_conn_kb", 0)
            rows.append(("<= 4 KiB RSS per idle SSE connection at %s, %s" % (
                fmt(d["conns"]), d["server_name"]), "%.2f KiB" % v, mark(v <= 4.0)))
    t1s = [d for d in results if d["server_name"] == "herald-t1" and d["kind"] == "fanout"]
    for d1 in t1s:
        d2 = by.get((d1["scenario"], "herald-t2"))
        if not d2:
            continue
        x1, x2 = d1["derived"], d2["derived"]
        ok = x2["second_thread_share"] >= 0.25 and x2["busiest_thread_share"] <= 0.65
        rows.append(("--threads 2 spreads the work, %s" % d1["scenario"],
                     "busiest thread %.0f%% / second %.0f%% of edge CPU (t1: %.0f%% / %.0f%%); "
                     "saturation %s vs %s deliveries/s" % (
                         100 * x2["busiest_thread_share"], 100 * x2["second_thread_share"],
                         100 * x1["busiest_thread_share"], 100 * x1["second_thread_share"],
                         fmt(x2["sat_deliv_s"], 0), fmt(x1["sat_deliv_s"], 0)), mark(ok)))
    if ingest:
        rows.append(("raw PUBLISH ingest >= 50% of redis-benchmark PUBLISH",
                     "%.0f%% (%s vs %s /s), %s of %s stored" % (
                         100 * ingest["ratio"], fmt(ingest["ingest_per_s"], 0),
                         fmt(ingest["redis_benchmark_publish_per_s"], 0), fmt(ingest["stored"]),
                         fmt(ingest["messages"])),
                     mark(ingest["ratio"] >= 0.5 and ingest["stored"] == ingest["messages"])))
    allok = all(d["derived"]["checks_ok"] for d in results)
    rows.append(("0 gaps, 0 duplicates, 0 reordered, nothing missing at the end, every scenario",
                 "%d of %d runs clean" % (sum(d["derived"]["checks_ok"] for d in results),
                                          len(results)), mark(allok)))
    out = ["| target | measured | |", "| --- | --- | --- |"]
    out += ["| %s | %s | %s |" % r for r in rows]
    return "\n".join(out)


def herald_version():
    """The commit the edge was built from, and whether its sources differ from it."""
    try:
        h = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "edge",
                                "common", "CMakeLists.txt"], timeout=20).returncode != 0
        return h + (" with local changes to the edge" if dirty else "")
    except Exception:
        return "?"


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def out(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception:
            return "?"
    def pkg(p):
        return out(["dpkg-query", "-W", "-f=${Version}", p])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "loadavg": open("/proc/loadavg").read().strip(),
        "herald": herald_version(),
        "redis": out(["redis-server", "--version"]),
        "nginx": out(["nginx", "-v"]),
        "nchan": pkg("libnginx-mod-nchan"),
        "libwebsockets": pkg("libwebsockets17"),
        "libev": pkg("libev4"),
        "libevent": pkg("libevent-2.1-7"),
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
    }


README_BEGIN = "<!-- bench-results -->"
README_END = "<!-- /bench-results -->"


def update_readme(text):
    path = os.path.join(HERE, "README.md")
    s = open(path).read()
    block = README_BEGIN + "\n" + text + "\n" + README_END
    if README_BEGIN in s:
        a = s.index(README_BEGIN)
        b = s.index(README_END) + len(README_END)
        s = s[:a] + block + s[b:]
    else:
        anchor = "## permessage-deflate"
        i = s.index(anchor) if anchor in s else len(s)
        s = s[:i] + "## Herald and nchan side by side\n\n" + block + "\n\n" + s[i:]
    open(path, "w").write(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--herald", required=True, help="herald binary (release build)")
    ap.add_argument("--loadgen", required=True, help="loadgen binary")
    ap.add_argument("--out", required=True, help="directory for results.json, results.md")
    ap.add_argument("--quick", action="store_true", help="small N, short steps (~2 minutes)")
    ap.add_argument("--perf", action="store_true",
                    help="perf record -g the edge during the SSE saturation ramp (after the "
                         "fixed-rate step, whose latency it would inflate)")
    ap.add_argument("--only", default="", help="comma-separated scenario names (and 'ingest')")
    ap.add_argument("--servers", default="herald-t1,herald-t2,nchan,herald-t1-http",
                    help="herald-tN (raw PUBLISH), herald-tN-http (HTTP publish; first SSE "
                    "scenario only), nchan")
    ap.add_argument("--readme", action="store_true", help="rewrite the README results section")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    servers = [s for s in a.servers.split(",") if s]
    only = set(x for x in a.only.split(",") if x)
    tmp = tempfile.mkdtemp(prefix="herald-bench-")
    t_start = time.monotonic()
    mach = machine()
    results = []
    for sc in scenario_list(a.quick):
        if only and sc["name"] not in only:
            continue
        for srv in servers:
            # Herald published over HTTP, like nchan: the first SSE scenario only.
            if srv.endswith("-http") and sc["name"] != scenario_list(a.quick)[0]["name"]:
                continue
            try:
                d = run_one(a, sc, srv, tmp, nofile)
            except Exception as e:  # one failed run must not lose the others
                log("%s %s failed: %s" % (sc["name"], srv, e))
                continue
            d["derived"] = derive(d)
            results.append(d)
    ingest = None
    if (not only or "ingest" in only) and "herald-t1" in servers:
        try:
            ingest = run_ingest(a, tmp)
        except Exception as e:
            log("ingest failed: %s" % e)
    wall = time.monotonic() - t_start
    mach["loadavg_end"] = open("/proc/loadavg").read().strip()
    cmd = "tests/bench/run.sh" + (" --quick" if a.quick else "") + (" --perf" if a.perf else "")
    doc = {"machine": mach, "quick": a.quick, "wall_s": round(wall, 1), "command": cmd,
           "runs": results, "ingest": ingest}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    text = []
    text.append("Latest run: `%s` (%s, %.0f s). Machine: %s CPUs (`nproc`), %s, Linux %s; "
                "load average before / after: `%s` / `%s`." % (
                    cmd, mach["date"], wall, mach["nproc"], mach["cpu"], mach["kernel"],
                    mach["loadavg"], mach["loadavg_end"]))
    text.append("")
    text.append("Versions: herald `%s` (release build), %s, %s, nchan %s (Debian "
                "`libnginx-mod-nchan`), libwebsockets %s, libev %s, libevent %s (generator)." % (
                    mach["herald"], mach["redis"], mach["nginx"], mach["nchan"],
                    mach["libwebsockets"], mach["libev"], mach["libevent"]))
    text.append("")
    text.append("### Targets\n")
    text.append(targets(results, ingest, a.quick))
    text.append("\n### Every run\n")
    text.append(tables(results, ingest, servers))
    perf_txt = os.path.join(a.out, "perf-edge.txt")
    if a.perf and os.path.exists(perf_txt):
        syms = [l.rstrip() for l in open(perf_txt) if re.match(r"\s+[0-9.]+%", l)][:20]
        prof = [d for d in results if d.get("perf")]
        text.append("\n### Edge profile\n")
        text.append("`perf record -e cpu-clock -g` of the edge (%s) during the saturation ramp "
                    "of %s; `perf report --stdio --no-children -g none`, top symbols (the whole "
                    "report: `%s/perf-edge.txt`, data `perf-edge.data`):\n" % (
                        prof[0]["server_name"] if prof else "herald-t1",
                        prof[0]["scenario"] if prof else "the SSE scenario",
                        os.path.relpath(a.out, ROOT)))
        text.append("```\n" + "\n".join(syms) + "\n```")
    body = "\n".join(text)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(body + "\n")
    print(body)
    if a.readme:
        update_readme(body)
    log("wrote %s" % os.path.join(a.out, "results.json"))
    cleanup()
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
