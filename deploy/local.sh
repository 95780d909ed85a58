#!/usr/bin/env bash
# Starts a local Herald topology: one redis-server, N edges and HAProxy on loopback ports.
# The one place that starts the local topology; stop it with Ctrl-C (or SIGTERM).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/local.sh [--edges N] [--port P] [--redis-port R] [--threads T]

Installs missing Debian packages (deploy/deps.sh lb), builds Herald (Release, into build/;
HERALD_BIN=<path> uses that binary instead), then runs in the foreground:
  redis-server  on 127.0.0.1:R   (data and log in build/local/redis/)
  HAProxy       on 127.0.0.1:P   (deploy/haproxy.cfg via deploy/lb.sh; log build/local/haproxy.log)
  N edges       on 127.0.0.1:P+1 .. 127.0.0.1:P+N, node ids edge-1 .. edge-N
                (logs in build/local/edge-<n>.log, named like the node ids)
prints "edge-<n> http://127.0.0.1:<port>" per edge once its /readyz answers 200, then
"ready http://127.0.0.1:P" once HAProxy sees every edge healthy.

Options:
  --edges N        number of edges (default 3, at most 10)
  --port P         port of the load balancer; the edges take the ports after it (default 8080)
  --redis-port R   port of redis-server (default 6379)
  --threads T      service threads per edge (default: the edge's own default)
  -h, --help       this text

Ctrl-C or SIGTERM stops HAProxy, then the edges (SIGTERM, they drain), then Redis, and exits 0.
If a process dies on its own, the rest is stopped and the script exits 1.
EOF
}

die() {
    echo "local: $*" >&2
    exit 1
}

is_uint() {
    [[ "$1" =~ ^[0-9]+$ ]]
}

EDGES=3
PORT=8080
REDIS_PORT=6379
THREADS=
while [ $# -gt 0 ]; do
    case "$1" in
    --edges | --port | --redis-port | --threads)
        [ $# -ge 2 ] || die "$1 needs a value (see --help)"
        is_uint "$2" || die "$1 wants a non-negative integer, got '$2'"
        case "$1" in
        --edges) EDGES=$2 ;;
        --port) PORT=$2 ;;
        --redis-port) REDIS_PORT=$2 ;;
        --threads) THREADS=$2 ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ "$EDGES" -ge 1 ] && [ "$EDGES" -le 10 ] || die "--edges must be 1 .. 10 (deploy/haproxy.cfg has 10 slots)"
[ "$PORT" -ge 1 ] && [ $((PORT + EDGES)) -le 65535 ] || die "--port out of range"
[ "$REDIS_PORT" -ge 1 ] && [ "$REDIS_PORT" -le 65535 ] || die "--redis-port out of range"
if [ -n "$THREADS" ] && [ "$THREADS" -lt 1 ]; then die "--threads must be at least 1"; fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
RUN=$BUILD/local

bash "$ROOT/deploy/deps.sh" lb

# Refuse before building if a port is taken (bind test, as the servers would do).
port_in_use() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}
for p in "$REDIS_PORT" $(seq "$PORT" $((PORT + EDGES))); do
    if port_in_use "$p"; then
        die "port $p is already in use on 127.0.0.1; pick others with --port / --redis-port"
    fi
done
for i in $(seq 0 "$EDGES"); do
    [ $((PORT + i)) -ne "$REDIS_PORT" ] || die "--redis-port $REDIS_PORT overlaps the LB and edge ports"
done

if [ -n "${HERALD_BIN:-}" ]; then
    HERALD=$HERALD_BIN
else
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j "$(nproc)" --target herald
    HERALD=$BUILD/herald
fi
[ -x "$HERALD" ] || die "build produced no $HERALD"

mkdir -p "$RUN/redis"

# Each child gets its own process group (job control), so a Ctrl-C reaches only this script,
# which then stops the edges before Redis.
set -m

declare -A NAMES=()
EDGE_PIDS=()
REDIS_PID=
LB_PID=

stop_pid() { # pid name: wait up to 15 s for a process already sent SIGTERM, then SIGKILL
    local pid=$1 name=$2 i
    for i in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "local: $name did not stop on SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

stop_all() { # the LB, then the edges (all at once, they drain in parallel), then Redis
    trap '' INT TERM
    local pid
    if [ -n "$LB_PID" ]; then
        kill -TERM "$LB_PID" 2>/dev/null || true
        stop_pid "$LB_PID" haproxy
        LB_PID=
    fi
    for pid in "${EDGE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${EDGE_PIDS[@]}"; do stop_pid "$pid" "${NAMES[$pid]}"; done
    EDGE_PIDS=()
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        stop_pid "$REDIS_PID" redis-server
        REDIS_PID=
    fi
}

on_signal() {
    echo "local: stopping" >&2
    stop_all
    echo "local: stopped" >&2
    exit 0
}
trap on_signal INT TERM
trap 'stop_all' EXIT

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save 60 1000 --appendonly no \
    --dir "$RUN/redis" --logfile "$RUN/redis/redis.log" --daemonize no </dev/null &
REDIS_PID=$!
NAMES[$REDIS_PID]=redis-server

deadline=$((SECONDS + 20))
until [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited; see $RUN/redis/redis.log"
    [ "$SECONDS" -lt "$deadline" ] || die "redis-server did not answer PING within 20 s"
    sleep 0.1
done

for i in $(seq 0 $((EDGES - 1))); do
    args=(--listen "127.0.0.1:$((PORT + 1 + i))" --redis "redis://127.0.0.1:$REDIS_PORT"
          --node-id "edge-$((i + 1))")
    [ -z "$THREADS" ] || args+=(--threads "$THREADS")
    "$HERALD" "${args[@]}" </dev/null >"$RUN/edge-$((i + 1)).log" 2>&1 &
    EDGE_PIDS+=($!)
    NAMES[$!]="edge-$((i + 1)) (port $((PORT + 1 + i)), log $RUN/edge-$((i + 1)).log)"
done

for i in $(seq 0 $((EDGES - 1))); do
    port=$((PORT + 1 + i))
    pid=${EDGE_PIDS[$i]}
    deadline=$((SECONDS + 30))
    while :; do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
        [ "$code" = 200 ] && break
        kill -0 "$pid" 2>/dev/null || die "${NAMES[$pid]} exited during start-up:
$(tail -n 20 "$RUN/edge-$((i + 1)).log")"
        [ "$SECONDS" -lt "$deadline" ] ||
            die "${NAMES[$pid]} not ready within 30 s (last /readyz: $code)"
        sleep 0.1
    done
    echo "edge-$((i + 1)) http://127.0.0.1:$port"
done

# HAProxy on deploy/haproxy.cfg, the same file docker-compose.yml uses.
lb_args=(run --port "$PORT" --stats-socket "$RUN/haproxy.sock")
for i in $(seq 0 $((EDGES - 1))); do lb_args+=(--edge "127.0.0.1:$((PORT + 1 + i))"); done
rm -f "$RUN/haproxy.sock"
bash "$ROOT/deploy/lb.sh" "${lb_args[@]}" </dev/null >"$RUN/haproxy.log" 2>&1 &
LB_PID=$!
NAMES[$LB_PID]="haproxy (port $PORT, log $RUN/haproxy.log)"
deadline=$((SECONDS + 30))
until [ -S "$RUN/haproxy.sock" ] &&
    bash "$ROOT/deploy/lb.sh" wait --stats-socket "$RUN/haproxy.sock" --edges "$EDGES" \
        --timeout 1 2>/dev/null; do
    kill -0 "$LB_PID" 2>/dev/null || die "haproxy exited during start-up:
$(tail -n 20 "$RUN/haproxy.log")"
    [ "$SECONDS" -lt "$deadline" ] || die "HAProxy did not see all $EDGES edges UP within 30 s:
$(bash "$ROOT/deploy/lb.sh" status --stats-socket "$RUN/haproxy.sock" 2>&1)"
    sleep 0.1
done
echo "ready http://127.0.0.1:$PORT"
echo "publish with: redis-cli -p $REDIS_PORT PUBLISH news hello"
echo "watch with: curl -N http://127.0.0.1:$PORT/events/news   (demo page: http://127.0.0.1:$PORT/)"

# Wait for a child to end on its own: that is a failure.
while :; do
    dead=
    rc=0
    wait -n -p dead "$REDIS_PID" "$LB_PID" "${EDGE_PIDS[@]}" || rc=$?
    [ -n "$dead" ] || continue
    echo "local: ${NAMES[$dead]} exited unexpectedly (status $rc); stopping the rest" >&2
    exit 1
done
