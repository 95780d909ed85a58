#!/usr/bin/env bash
# Herald and nchan side by side on loopback: fan-out over SSE and WebSocket (2k and 10k
# subscribers, fixed rate and saturation), idle connections, many topics, raw PUBLISH ingest.
#
#   tests/bench/run.sh [--quick] [--perf] [--only NAMES] [--servers LIST] [--no-readme]
#
#   --quick        small N and short steps: a smoke run of about three minutes
#   --perf         perf record -g the edge (--threads 1) during the SSE saturation ramp;
#                  the report summary is written next to the JSON (perf-edge.txt)
#   --only NAMES   comma-separated scenario names (sse-2k,sse-10k,ws-2k,ws-10k,idle-10k,
#                  topics-2000,ingest; quick mode: sse-200,sse-1k,...)
#   --servers LIST herald-t1,herald-t2,nchan,herald-t1-http (default: all four; -http: Herald
#                  published by HTTP POST like nchan, first SSE scenario only)
#   --no-readme    leave tests/bench/README.md alone (default: rewrite its results section)
#
# Installs what it needs (deploy/deps.sh bench: nginx-light, libnginx-mod-nchan, redis-tools,
# linux-perf), builds herald (Release) and tests/bench/loadgen in build/bench, runs each
# scenario against each server with a fresh redis-server on a free port, and writes
# build/bench/results.json and build/bench/results.md. Not part of tests/run.sh.
# Every process it starts is ended at the end, on error and on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${HERALD_BENCH_BUILD:-$ROOT/build/bench}
args=()
readme=--readme
while [ $# -gt 0 ]; do
    case "$1" in
    --quick | --perf) args+=("$1") ;;
    --only | --servers) args+=("$1" "$2"); shift ;;
    --no-readme) readme= ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
    esac
    shift
done

bash "$ROOT/deploy/deps.sh" bench

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DHERALD_BENCH=ON -DHERALD_TESTS=OFF \
    >/dev/null
cmake --build "$BUILD" -j2 --target herald loadgen >/dev/null
# The generator's own checks must find a known gap, duplicate and reordering first.
python3 "$ROOT/tests/bench/selftest_loadgen.py" "$BUILD/tests/bench/loadgen"

kept=()
for a in ${args[@]+"${args[@]}"}; do
    if [ "$a" = --perf ] && ! perf record -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
        echo "run.sh: perf record does not work here (perf stat -e instructions true tells);" \
            "running without --perf" >&2
        continue
    fi
    kept+=("$a")
done
args=(${kept[@]+"${kept[@]}"})

# The generator and both servers each hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"

child=
cleanup() {
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

python3 "$ROOT/tests/bench/bench.py" --herald "$BUILD/herald" \
    --loadgen "$BUILD/tests/bench/loadgen" --out "$BUILD" $readme ${args[@]+"${args[@]}"} &
child=$!
wait "$child"
