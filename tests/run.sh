#!/usr/bin/env bash
# Builds and runs the whole test suite (unit + integration) in two trees:
#   build/asan     Debug, -DHERALD_SANITIZE=ON (AddressSanitizer + UBSan, leak detection on)
#   build/release  RelWithDebInfo
# Usage: tests/run.sh [--quick]     --quick: the release tree only
# Exits non-zero if either run fails. Works from any directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "run.sh: unknown argument '$arg' (use --quick or --help)" >&2
        exit 2
        ;;
    esac
done

bash "$ROOT/deploy/deps.sh" lb browser compose ops
# tests/browser: playwright-core from the committed lock file (node_modules is not committed).
if command -v npm >/dev/null; then
    if [ ! "$ROOT/tests/browser/node_modules/.package-lock.json" -nt "$ROOT/tests/browser/package-lock.json" ]; then
        (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund)
    fi
fi

JOBS=$(nproc 2>/dev/null || echo 2)

build() { # dir cmake-args...
    local dir=$1
    shift
    echo "== configure and build $dir"
    cmake -S "$ROOT" -B "$ROOT/$dir" "$@" >/dev/null
    cmake --build "$ROOT/$dir" -j "$JOBS"
}

asan_rc=0
asan_summary="asan: skipped (--quick)"
if [ "$QUICK" -eq 0 ]; then
    build build/asan -DHERALD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    echo "== ctest build/asan"
    log=$(mktemp)
    set +e
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$ROOT/build/asan" --output-on-failure -j2 2>&1 | tee "$log"
    asan_rc=${PIPESTATUS[0]}
    set -e
    line=$(grep -E 'tests passed|tests failed' "$log" | tail -n 1 || true)
    rm -f "$log"
    asan_summary="asan: ${line:-no ctest summary} (exit $asan_rc)"
fi

# Fuzz: every libFuzzer harness for 12 s over its committed corpus (new inputs go to a temp
# dir; a crash or a violated property fails the run and leaves the input in build/fuzz).
fuzz_rc=0
fuzz_summary="fuzz: skipped (--quick)"
if [ "$QUICK" -eq 0 ]; then
    HERALD_EXTRA_DEPS="clang libfuzzer-14-dev" bash "$ROOT/deploy/deps.sh"
    echo "== configure and build build/fuzz"
    cmake -S "$ROOT" -B "$ROOT/build/fuzz" -DHERALD_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
    cmake --build "$ROOT/build/fuzz" --target fuzz -j "$JOBS"
    fuzz_summary="fuzz:"
    for corpus in "$ROOT"/tests/fuzz/corpus/*/; do
        name=$(basename "$corpus")
        work=$(mktemp -d)
        echo "== fuzz_$name (12 s)"
        if "$ROOT/build/fuzz/tests/fuzz/fuzz_$name" -max_total_time=12 -print_final_stats=0 \
            -artifact_prefix="$ROOT/build/fuzz/crash-$name-" "$work" "$corpus" 2>&1 | tail -n 3; then
            fuzz_summary+=" $name ok"
        else
            fuzz_summary+=" $name FAILED"
            fuzz_rc=1
        fi
        rm -rf "$work"
    done
fi

build build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== ctest build/release"
log=$(mktemp)
set +e
ctest --test-dir "$ROOT/build/release" --output-on-failure -j2 2>&1 | tee "$log"
release_rc=${PIPESTATUS[0]}
set -e

# Last: the sanitizer run in one line, then ctest's own summary of the release run.
echo
echo "== $asan_summary"
echo "== $fuzz_summary"
echo "== release:"
awk '/tests passed|tests failed/ { on = 1 } on' "$log"
rm -f "$log"

if [ "$asan_rc" -ne 0 ] || [ "$fuzz_rc" -ne 0 ] || [ "$release_rc" -ne 0 ]; then
    exit 1
fi
