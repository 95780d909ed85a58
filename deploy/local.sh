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
"ready http://127.0.0.1:P" once HAProxy sees every edge healthy and an edge leads the raw
PUBLISH ingest (so that a `redis-cli PUBLISH` from then on is stored and delivered).

Publishing: the edges get a publish key (POST /publish/<topic>, used by the demo page):
HERALD_PUBLISH_KEY if set, else a random one; it is printed at start ("publish key: ...").
Run directory: build/local/ (HERALD_LOCAL_DIR=<dir> for another one): logs, Redis data,
the HAProxy admin socket, edge-<n>.pid, redis.pid, haproxy.pid.

Options:
  --edges N        number of edges (default 3, at most 10)
  --port P         port of the load balancer; the edges take the ports after it (default 8080)
  --redis-port R   port of redis-server (default 6379)
  --threads T      service threads per edge (default: the edge's own default)
  -h, --help       this text

Ctrl-C or SIGTERM stops HAProxy, then the edges (SIGTERM, they drain), then Redis, and exits 0.
An edge that dies on its own is restarted (like compose's "restart: unless-stopped"), after
1 s, then 2, 4 .. 30 s if it keeps dying (the delay starts again at 1 s once it ran 30 s);
each exit and restart is logged on stderr. If Redis or HAProxy dies, the rest is stopped and
the script exits 1.
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
RUN=${HERALD_LOCAL_DIR:-$BUILD/local}

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

# The publish key of every edge (from the environment, not argv: ps shows argv to every user).
if [ -z "${HERALD_PUBLISH_KEY:-}" ]; then
    HERALD_PUBLISH_KEY=$(openssl rand -hex 16) || die "openssl rand failed"
fi
export HERALD_PUBLISH_KEY
echo "publish key: $HERALD_PUBLISH_KEY"

# Each child gets its own process group (job control), so a Ctrl-C reaches only this script,
# which then stops the edges before Redis.
set -m

declare -A NAMES=()
EDGE_PIDS=()
REDIS_PID=
LB_PID=
SLEEP_PID= # the back-off sleep before a restart, so that a signal ends it at once
TICK_PID=  # the one-second wake-up of the watch loop
declare -a EDGE_ARGS=()   # per edge index: its argv, one string (word-split on restart)
declare -a EDGE_START=()  # per edge index: SECONDS when it was (re)started
declare -a EDGE_DELAY=()  # per edge index: the next restart delay (s)

stop_pid() { # pid name: wait up to 15 s for a process already sent SIGTERM, then SIGKILL
    local pid=$1 name=${2:-pid $1} i
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
    if [ -n "$TICK_PID" ]; then
        kill -TERM "$TICK_PID" 2>/dev/null || true
        TICK_PID=
    fi
    if [ -n "$SLEEP_PID" ]; then
        kill -TERM "$SLEEP_PID" 2>/dev/null || true
        wait "$SLEEP_PID" 2>/dev/null || true
        SLEEP_PID=
    fi
    if [ -n "$LB_PID" ]; then
        kill -TERM "$LB_PID" 2>/dev/null || true
        stop_pid "$LB_PID" haproxy
        LB_PID=
    fi
    for pid in "${EDGE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${EDGE_PIDS[@]}"; do stop_pid "$pid" "${NAMES[$pid]:-}"; done
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
    --dir "$RUN/redis" --logfile "$RUN/redis/redis.log" --daemonize no </dev/null \
    >>"$RUN/redis/redis.log" 2>&1 &
REDIS_PID=$!
echo "$REDIS_PID" >"$RUN/redis.pid"
NAMES[$REDIS_PID]=redis-server

deadline=$((SECONDS + 20))
until [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
    kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited; see $RUN/redis/redis.log"
    [ "$SECONDS" -lt "$deadline" ] || die "redis-server did not answer PING within 20 s"
    sleep 0.1
done

start_edge() { # index: (re)starts edge index+1; its log is appended to, never truncated
    local i=$1 n=$(($1 + 1)) pid
    # shellcheck disable=SC2086 # the arguments are ports and numbers, no spaces
    "$HERALD" ${EDGE_ARGS[$i]} </dev/null >>"$RUN/edge-$n.log" 2>&1 &
    pid=$!
    EDGE_PIDS[$i]=$pid
    EDGE_START[$i]=$SECONDS
    NAMES[$pid]="edge-$n (port $((PORT + n)), log $RUN/edge-$n.log)"
    echo "$pid" >"$RUN/edge-$n.pid"
}

edge_index() { # pid -> index of the edge it is, or nothing
    local i
    for i in "${!EDGE_PIDS[@]}"; do
        [ "${EDGE_PIDS[$i]}" = "$1" ] && echo "$i" && return 0
    done
    return 1
}

for i in $(seq 0 $((EDGES - 1))); do
    EDGE_ARGS[$i]="--listen 127.0.0.1:$((PORT + 1 + i)) --redis redis://127.0.0.1:$REDIS_PORT"
    EDGE_ARGS[$i]+=" --node-id edge-$((i + 1))"
    [ -z "$THREADS" ] || EDGE_ARGS[$i]+=" --threads $THREADS"
    EDGE_DELAY[$i]=1
    : >"$RUN/edge-$((i + 1)).log"
    start_edge "$i"
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
echo "$LB_PID" >"$RUN/haproxy.pid"
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
# A raw PUBLISH is stored once an edge leads the ingest: edges that start together elect the
# first leader about a lease period after they are ready, and what is published before that
# is not stored (README "Raw ingest"). "ready" means a PUBLISH works.
deadline=$((SECONDS + 30))
until for i in $(seq 0 $((EDGES - 1))); do
    curl -s -m 2 "http://127.0.0.1:$((PORT + 1 + i))/metrics" | grep -qx 'herald_ingest_leader 1' && break
done; do
    [ "$SECONDS" -lt "$deadline" ] || die "no edge leads the raw-PUBLISH ingest within 30 s"
    sleep 0.2
done
echo "ready http://127.0.0.1:$PORT"
echo "publish with: redis-cli -p $REDIS_PORT PUBLISH news hello"
echo "         or: curl -H 'Authorization: Bearer $HERALD_PUBLISH_KEY' -d hello http://127.0.0.1:$PORT/publish/news"
echo "watch with: curl -N http://127.0.0.1:$PORT/events/news"
echo "demo page: http://127.0.0.1:$PORT/?redis_port=$REDIS_PORT#key=$HERALD_PUBLISH_KEY"

# Wait for a child to end on its own: an edge is restarted after a back-off, Redis or HAProxy
# ending is a failure.
while :; do
    dead=
    rc=0
    # A child that ended while the script was not inside `wait -n` has been reaped by bash
    # already and is no job any more: `wait -n` would never return for it ("no such job"; an
    # edge killed just as the script printed "ready" was never restarted). So every turn looks
    # first, and `wait -n` also wakes once a second (TICK_PID) for the next look.
    for pid in "$REDIS_PID" "$LB_PID" "${EDGE_PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            dead=$pid
            wait "$pid" 2>/dev/null || rc=$?
            break
        fi
    done
    if [ -z "$dead" ]; then
        sleep 1 >/dev/null 2>&1 & # not holding the output pipe of whoever runs this script
        TICK_PID=$!
        wait -n -p dead "$REDIS_PID" "$LB_PID" "${EDGE_PIDS[@]}" "$TICK_PID" || rc=$?
        tick=$TICK_PID
        TICK_PID=
        if [ -z "$dead" ] || [ "$dead" = "$tick" ]; then
            continue
        fi
        kill "$tick" 2>/dev/null || true
    fi
    if ! i=$(edge_index "$dead"); then
        echo "local: ${NAMES[$dead]} exited unexpectedly (status $rc); stopping the rest" >&2
        exit 1
    fi
    # An edge that ran 30 s or more starts the back-off again from 1 s.
    [ $((SECONDS - EDGE_START[i])) -lt 30 ] || EDGE_DELAY[$i]=1
    delay=${EDGE_DELAY[$i]}
    echo "local: ${NAMES[$dead]} exited unexpectedly (status $rc); restarting it in ${delay} s" >&2
    unset "NAMES[$dead]" # (stop_all, on a signal during the back-off, copes with no name)
    EDGE_DELAY[$i]=$((delay * 2 > 30 ? 30 : delay * 2))
    sleep "$delay" &
    SLEEP_PID=$!
    wait "$SLEEP_PID" || true
    SLEEP_PID=
    start_edge "$i"
    echo "local: restarted ${NAMES[${EDGE_PIDS[$i]}]} (pid ${EDGE_PIDS[$i]})" >&2
done
