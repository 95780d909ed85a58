#!/usr/bin/env bash
# Runs HAProxy on deploy/haproxy.cfg (the project's one HAProxy config) for local edges.
#
#   deploy/lb.sh run   --port P --edge HOST:PORT [--edge HOST:PORT ...] [--stats-socket PATH]
#                      [--tls-port T --tls-cert PEM]
#       exec haproxy in the foreground, listening on 127.0.0.1:P (--bind ADDR:PORT for another
#       address), balancing over the given edges (at most 10); with --tls-port also HTTPS with
#       HTTP/2 (ALPN h2,http/1.1) on 127.0.0.1:T, the certificate and key in one PEM file
#   deploy/lb.sh check --port P --edge HOST:PORT [...]
#       only validate the config with these settings (haproxy -c)
#   deploy/lb.sh wait  --stats-socket PATH --edges N [--timeout S]
#       poll the admin socket until N servers of backend "edges" are UP (exit 1 at the deadline)
#   deploy/lb.sh status --stats-socket PATH
#       print "<server> <status> <current sessions>" per edge
#
# The config reads HERALD_LB_BIND, HERALD_EDGE_<n>, HERALD_LB_STATS_SOCKET, HERALD_LB_TLS_*;
# this script only sets them, so compose and local processes run exactly the same file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CFG=${HERALD_LB_CONFIG:-$ROOT/deploy/haproxy.cfg}
MAX_EDGES=10

die() {
    echo "lb: $*" >&2
    exit 1
}

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# Prints the rows of "show stat" for backend "edges": name status scur.
stat_rows() { # socket
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
out = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
s.close()
lines = out.decode("utf-8", "replace").splitlines()
if not lines or not lines[0].startswith("# "):
    sys.exit("unexpected answer from the stats socket: %r" % out[:200])
cols = lines[0][2:].split(",")
for line in lines[1:]:
    row = dict(zip(cols, line.split(",")))
    if row.get("pxname") == "edges" and row.get("svname") not in ("BACKEND", "FRONTEND", None):
        print(row["svname"], row["status"], row.get("scur", "0"))
EOF
}

cmd=${1:-}
[ -n "$cmd" ] || {
    usage >&2
    exit 2
}
shift
PORT=
BIND=
SOCK=
NEDGES=
TIMEOUT=30
TLS_PORT=
TLS_CERT=
EDGES=()
while [ $# -gt 0 ]; do
    case "$1" in
    --port | --bind | --edge | --stats-socket | --edges | --timeout | --tls-port | --tls-cert)
        [ $# -ge 2 ] || die "$1 needs a value"
        case "$1" in
        --port) PORT=$2 ;;
        --bind) BIND=$2 ;;
        --edge) EDGES+=("$2") ;;
        --stats-socket) SOCK=$2 ;;
        --edges) NEDGES=$2 ;;
        --timeout) TIMEOUT=$2 ;;
        --tls-port) TLS_PORT=$2 ;;
        --tls-cert) TLS_CERT=$2 ;;
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

case "$cmd" in
run | check)
    command -v haproxy >/dev/null || die "haproxy is not installed (deploy/deps.sh lb)"
    [ -n "$BIND" ] || { [ -n "$PORT" ] && BIND=127.0.0.1:$PORT; } || die "--port or --bind is required"
    [ "${#EDGES[@]}" -ge 1 ] || die "at least one --edge is required"
    [ "${#EDGES[@]}" -le "$MAX_EDGES" ] || die "$CFG has slots for $MAX_EDGES edges"
    export HERALD_LB_BIND=$BIND
    unset HERALD_EDGE_DNS
    for i in $(seq 1 "$MAX_EDGES"); do unset "HERALD_EDGE_$i"; done
    for i in "${!EDGES[@]}"; do export "HERALD_EDGE_$((i + 1))=${EDGES[$i]}"; done
    if [ -n "$SOCK" ]; then export HERALD_LB_STATS_SOCKET=$SOCK; else unset HERALD_LB_STATS_SOCKET; fi
    if [ -n "$TLS_PORT" ]; then
        [ -n "$TLS_CERT" ] && [ -r "$TLS_CERT" ] || die "--tls-port needs a readable --tls-cert PEM"
        export HERALD_LB_TLS_BIND=127.0.0.1:$TLS_PORT HERALD_LB_TLS_CERT=$TLS_CERT
    else
        [ -z "$TLS_CERT" ] || die "--tls-cert without --tls-port"
        unset HERALD_LB_TLS_BIND HERALD_LB_TLS_CERT
    fi
    if [ "$cmd" = check ]; then
        exec haproxy -c -q -f "$CFG"
    fi
    # -W: master-worker, -db: stay in the foreground; SIGTERM/SIGINT stop it.
    exec haproxy -W -db -f "$CFG"
    ;;
wait)
    [ -n "$SOCK" ] && [ -n "$NEDGES" ] || die "wait needs --stats-socket and --edges"
    end=$((SECONDS + TIMEOUT))
    while :; do
        up=$(stat_rows "$SOCK" 2>/dev/null | awk '$2 == "UP" { n++ } END { print n + 0 }') || up=0
        [ "$up" -ge "$NEDGES" ] && exit 0
        [ "$SECONDS" -lt "$end" ] || die "only $up of $NEDGES edges UP in HAProxy after ${TIMEOUT}s"
        sleep 0.1
    done
    ;;
status)
    [ -n "$SOCK" ] || die "status needs --stats-socket"
    stat_rows "$SOCK"
    ;;
*) die "unknown command '$cmd' (run, check, wait, status)" ;;
esac
