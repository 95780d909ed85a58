#!/usr/bin/env bash
# Chaos run (not part of tests/run.sh): Redis + 3 edges on loopback, a publisher at 100/s FCALL
# + 100/s raw PUBLISH, SSE clients that always resume with their last id, and random edge
# SIGKILLs/SIGTERMs, Redis restarts (with data) and client stalls. Prints
# published / stored / delivered / gaps signalled / silent losses / duplicates, and exits
# non-zero on any silent loss, duplicate or reorder.
#
# Usage: tests/chaos/run.sh [--asan] [chaos.py options: --duration 60 --clients 40 --rate 100
#                           --seed N -v]
#   --asan   use the sanitizer build (build/asan) instead of build/release
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=build/release
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--asan" ]; then
    shift
    DIR=build/asan
    CMAKE_ARGS=(-DHERALD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
case "${1:-}" in -h | --help)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

bash "$ROOT/deploy/deps.sh"
if [ -z "${HERALD_BIN:-}" ]; then
    cmake -S "$ROOT" -B "$ROOT/$DIR" "${CMAKE_ARGS[@]}" >/dev/null
    cmake --build "$ROOT/$DIR" -j "$(nproc 2>/dev/null || echo 2)" --target herald >/dev/null
    export HERALD_BIN="$ROOT/$DIR/herald"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec timeout 300 python3 "$ROOT/tests/chaos/chaos.py" "$@"
