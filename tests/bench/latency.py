#!/usr/bin/env python3
"""Fan-out latency at a fixed rate, several servers side by side, runs interleaved.

Each run starts a fresh redis-server and one server on free loopback ports, runs loadgen at the
fixed rate (no ramp) and prints p50/p99, the server's CPU per delivery and the generator's own
CPU share. Servers:

    NAME=PATH[:ARGS]   a herald binary (ARGS: extra flags, comma-separated, e.g. --threads,2)
    nchan              nginx + nchan with Redis storage, published over HTTP (as in bench.py)
    floor              tests/bench/floorsrv: SUBSCRIBE to the channel loadgen publishes to and
                       send(2) each message to every client at once (no ingest, no queue): the
                       latency the generator, Redis and the kernel leave on this machine

    tests/bench/latency.py --loadgen build-bench/tests/bench/loadgen \\
        --floorsrv build-bench/tests/bench/floorsrv \\
        --server before=/tmp/herald-before --server after=build-bench/herald --server floor \\
        --conns 2000 --rate 25 --duration 10 --repeat 2

--pin places every run the same way: the server and its Redis on CPU 0, the load generators
on CPU 1 (taskset). Unpinned, the scheduler puts the server beside the generator in some runs
and not in others, and on this 2-core VM a server's deliveries per core-second moved by up to
1.6x between two rounds of the same binary (a wake-up across cores costs an interrupt). The
last table gives each server's median over the rounds and its ratio to the floor's median.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (process handling, Redis and herald start-up)


def start_floor(path, tmp, rport, channel, mode="sse"):
    port = bench.free_port()
    p = bench.spawn([path, "--listen", str(port), "--redis", str(rport), "--channel", channel,
                     "--mode", mode],
                    stdout=bench.subprocess.DEVNULL,
                    stderr=open(os.path.join(tmp, "floor-%d.log" % port), "wb"))

    def up():
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    bench.wait_until(up, 10, "floorsrv")
    return p, port


def profiled(a, args, pid, tmp, name):
    """loadgen with `perf record -g` on the server over the measured phase."""
    import signal
    ready = os.path.join(tmp, "measuring")
    out = os.path.join(tmp, "lg.json")
    if os.path.exists(ready):
        os.unlink(ready)
    p = bench.spawn([a.loadgen] + [str(x) for x in args] + ["--json", out, "--ready-file", ready],
                    stdout=bench.subprocess.DEVNULL)
    bench.wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 300, "measuring")
    data = os.path.join(a.perf_dir, "perf-%s.data" % name)
    pp = bench.spawn(["perf", "record", "-e", "cpu-clock", "-g", "-p", str(pid), "-o", data],
                     stdout=bench.subprocess.DEVNULL, stderr=bench.subprocess.DEVNULL)
    rc = p.wait(600)
    os.killpg(pp.pid, signal.SIGINT)
    pp.wait(60)
    bench.stop(p)
    bench.stop(pp)
    if rc != 0:
        raise RuntimeError("loadgen exited with %d" % rc)
    bench.perf_report(data, os.path.join(a.perf_dir, "perf-%s.txt" % name))
    bench.log("profile: %s" % os.path.join(a.perf_dir, "perf-%s.txt" % name))
    with open(out) as f:
        return json.load(f)


def run(a, name, spec, tmp):
    rproc, rport = bench.start_redis(tmp)
    sproc = None
    try:
        prefix = "lat"
        names = ["--server", "herald"]
        pub = ["--pub", "redis", "--pub-target", "127.0.0.1:%d" % rport]
        spid = None
        if spec == "floor":
            sproc, port = start_floor(a.floorsrv, tmp, rport, prefix + ".0", a.mode)
        elif spec == "nchan":
            import resource
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            sproc, port, spid = bench.start_nchan(tmp, rport, nofile)
            names = ["--server", "nchan"]  # published over HTTP, like bench.py does
            pub = ["--pub", "http", "--pub-conns", "16", "--pub-pipeline", "64"]
        else:
            path, _, extra = spec.partition(":")
            extra = [x for x in extra.split(",") if x]
            threads = 1
            if "--threads" in extra:
                i = extra.index("--threads")
                threads = int(extra[i + 1])
                del extra[i:i + 2]
            sproc, port, _ = bench.start_herald(path, tmp, rport, threads, extra)
        spid = spid or sproc.pid
        if a.pin:  # the server (every thread) and Redis on CPU 0; loadgen inherits CPU 1
            for pid in {spid, sproc.pid, rproc.pid}:
                subprocess.run(["taskset", "-a", "-p", "-c", "0", str(pid)], check=True,
                               stdout=subprocess.DEVNULL)
        args = names + ["--target", "127.0.0.1:%d" % port, "--mode", a.mode, "--conns", a.conns,
                        "--topic-prefix", prefix, "--src-addrs", max(1, min(64, a.conns // 500)),
                        "--rate", a.rate, "--warmup", a.warmup, "--duration", a.duration, "--drain", 20,
                        "--quiet", "--watch", "srv=%d" % spid,
                        "--watch", "redis=%d" % rproc.pid] + pub
        ext = []
        if a.generators > 1:
            # Subscribers only, each on its own share of the connections, measuring from
            # about when the publishing generator below starts measuring.
            per = a.conns // a.generators
            args[args.index("--conns") + 1] = a.conns - per * (a.generators - 1)
            for k in range(1, a.generators):
                out = os.path.join(tmp, "ext-%d.json" % k)
                argv = [a.loadgen] + names + [
                    "--target", "127.0.0.1:%d" % port, "--mode", a.mode, "--conns", per,
                    "--topic-prefix", prefix, "--src-addrs", max(1, min(64, per // 500)),
                    "--pub", "none", "--external", "--rate", a.rate, "--settle", 5,
                    "--duration", a.duration, "--quiet", "--json", out]
                ext.append((bench.spawn([str(x) for x in argv],
                                        stdout=bench.subprocess.DEVNULL), out))
        if a.perf == name:
            d = profiled(a, args, spid, tmp, name)
        else:
            d = bench.loadgen(a.loadgen, args, 600)
        d["ext"] = []
        for p, out in ext:
            if p.wait(600) != 0:
                raise RuntimeError("subscriber-only loadgen exited with %d" % p.returncode)
            bench.stop(p)
            with open(out) as f:
                d["ext"].append(json.load(f))
    finally:
        if sproc:
            bench.stop(sproc)
        bench.stop(rproc)
    procs = d.get("procs", {})
    deliv = max(1, d["deliveries"])
    cpu = procs.get("srv", {}).get("cpu_s", 0.0)
    rcpu = procs.get("redis", {}).get("cpu_s", 0.0)
    threads = [t for t in procs.get("srv", {}).get("threads", []) if t["cpu_s"] >= 0.05]
    if len(threads) > 1:
        bench.log("%s: server threads' CPU s: %s" % (name, ", ".join(
            "%s %.2f" % (t["name"], t["cpu_s"]) for t in threads)))
    gens = [d] + d["ext"]
    bench.log("%s: per generator p50/p99/n: %s" % (name, ", ".join(
        "%.1f/%.1f/%d" % (g["latency_ms"]["p50"], g["latency_ms"]["p99"], g["latency_ms"]["n"])
        for g in gens)))
    lat = [g["latency_ms"] for g in gens]
    # Several generators: each saw the same events on its share of the subscribers; the mean
    # of their p50s and the worst of their p90/p99/max (an approximation of the merged
    # distribution, upward for the tail).
    row = {"name": name + ("/%dgen" % len(gens) if len(gens) > 1 else ""),
           "p50": sum(x["p50"] for x in lat) / len(lat),
           "p90": max(x.get("p90", 0) for x in lat), "p99": max(x["p99"] for x in lat),
           "max": max(x.get("max", 0) for x in lat),
           "deliv_s": d["deliveries_per_s"] * a.conns / max(1, d["ready"]),
           "srv_us": cpu * 1e6 / (deliv * a.conns / max(1, d["ready"])),
           "srv_cpu": cpu, "redis_cpu": rcpu,
           # what a core buys: deliveries over the server's and Redis' CPU seconds together
           "per_core_s": (deliv * a.conns / max(1, d["ready"])) / max(1e-9, cpu + rcpu),
           "gen_frac": sum(g.get("self_cpu_frac", 0) for g in gens),
           "bad": sum(g["gaps"] + g["duplicates"] + g["out_of_order"] + g["tail_missing"]
                      for g in gens),
           "closed": sum(g["closed_by_server"] for g in gens),
           "load": open("/proc/loadavg").read().split()[0]}
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--floorsrv", default="")
    ap.add_argument("--server", action="append", required=True,
                    help="NAME=PATH[:ARGS] or floor (repeatable)")
    ap.add_argument("--mode", default="sse", choices=["sse", "ws"])
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=25)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2,
                    help="seconds published before measuring (the first events of a new topic "
                         "arrive as a backlog: more at high rates); publishing starts only once "
                         "the edge's raw-ingest leader holds its lease (bench.start_herald)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--generators", type=int, default=1,
                    help="spread the subscribers over K loadgen processes (one publishes)")
    ap.add_argument("--perf", default="", metavar="NAME",
                    help="perf record -g server NAME over each measured phase")
    ap.add_argument("--perf-dir", default="build/bench", help="where perf-NAME.data/.txt go")
    ap.add_argument("--pin", action="store_true",
                    help="server and Redis on CPU 0, load generators on CPU 1 (see above)")
    a = ap.parse_args()
    if a.pin:
        if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
            ap.error("--pin needs CPUs 0 and 1")
        os.sched_setaffinity(0, {1})  # this script and what it spawns; servers moved to 0
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    servers = []
    for s in a.server:
        if s == "floor":
            if not a.floorsrv:
                ap.error("floor needs --floorsrv")
            servers.append(("floor", "floor"))
        elif s == "nchan":
            servers.append(("nchan", "nchan"))
        else:
            name, _, spec = s.partition("=")
            servers.append((name, spec))
    tmp = tempfile.mkdtemp(prefix="herald-lat-")
    if a.perf:
        os.makedirs(a.perf_dir, exist_ok=True)
    rows = []
    for r in range(a.repeat):
        for name, spec in servers:
            try:
                row = run(a, name, spec, tmp)
            except Exception as e:
                bench.log("%s failed: %s" % (name, e))
                continue
            rows.append(row)
            bench.log("%s: p50 %.2f p99 %.2f ms, %.2f us server CPU/delivery, gen %.2f, bad %d"
                      % (name, row["p50"], row["p99"], row["srv_us"], row["gen_frac"],
                         row["bad"]))
    print("%s x %d conns x %g/s, %d s measured, %s" % (a.mode, a.conns, a.rate, a.duration,
                                                        time.strftime("%H:%M UTC", time.gmtime())))
    print("| server | p50 ms | p90 ms | p99 ms | max ms | deliveries/s | server us/delivery "
          "| server CPU s | redis CPU s | deliveries per core-s (server + redis) | gen CPU frac "
          "| seq errors | closed | load1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in rows:
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %d | %d "
              "| %s |" % (x["name"], x["p50"], x["p90"], x["p99"], x["max"], x["deliv_s"],
                          x["srv_us"], x["srv_cpu"], x["redis_cpu"], x["per_core_s"],
                          x["gen_frac"], x["bad"], x["closed"], x["load"]))
    med = {}
    for name, _ in servers:
        got = [x["per_core_s"] for x in rows if x["name"].split("/")[0] == name]
        if got:
            med[name] = statistics.median(got)
    print()
    print("| server | rounds | median deliveries per core-s | vs floor |%s" %
          (" pinned |" if a.pin else ""))
    print("|---|---|---|---|%s" % ("---|" if a.pin else ""))
    for name, v in med.items():
        n = sum(1 for x in rows if x["name"].split("/")[0] == name)
        vs = "%.2f" % (v / med["floor"]) if "floor" in med else "-"
        print("| %s | %d | %.0f | %s |%s" % (name, n, v, vs, " yes |" if a.pin else ""))
    bench.cleanup()


if __name__ == "__main__":
    main()
