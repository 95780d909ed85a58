#!/usr/bin/env bash
# Checks that the Debian 12 packages Herald needs are installed, and installs the missing ones.
#
#   deploy/deps.sh [GROUP...]   check, install what is missing (as root) or print the command
#   . deploy/deps.sh [GROUP...] same, from another script (returns instead of exiting)
#
# Optional groups add packages to the base list (build, test and run the edge):
#   lb        haproxy                    (deploy/local.sh, the load-balancer tests)
#   browser   chromium nodejs npm        (tests/browser: headless Chromium tests)
#   compose   docker-compose             (validating docker-compose.yml)
#   ops       dpkg-dev systemd prometheus haproxy
#                                        (tests/integration/test_ops_*: cpack -G DEB with
#                                        dpkg-shlibdeps, systemd-analyze verify, promtool and a
#                                        Prometheus server, the TLS/h2 front)
#   bench     nginx-light libnginx-mod-nchan redis-tools linux-perf
#                                        (tests/bench/run.sh: nchan side by side, redis-benchmark, perf)
# HERALD_EXTRA_DEPS="pkg ..." adds packages to the list (used by scripts that need more).
# Fast when everything is present: one dpkg-query call, no network.

herald_deps_main() {
    local pkgs=(build-essential cmake pkg-config libhiredis-dev libevent-dev libwebsockets-dev
                libjansson-dev libcmocka-dev libssl-dev libwebsockets-evlib-ev redis-server redis-tools
                python3 curl openssl)
    local group
    for group in "$@"; do
        case "$group" in
        lb) pkgs+=(haproxy) ;;
        browser)
            pkgs+=(chromium)
            # A node/npm from elsewhere (e.g. a newer Node.js with its own npm) is fine too.
            command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
            command -v npm >/dev/null 2>&1 || pkgs+=(npm)
            ;;
        compose) pkgs+=(docker-compose) ;;
        ops) pkgs+=(dpkg-dev systemd prometheus haproxy) ;;
        bench) pkgs+=(nginx-light libnginx-mod-nchan redis-tools linux-perf) ;;
        *)
            echo "deps: unknown group '$group' (lb, browser, compose, ops, bench)" >&2
            return 1
            ;;
        esac
    done
    # shellcheck disable=SC2206
    [ -n "${HERALD_EXTRA_DEPS:-}" ] && pkgs+=(${HERALD_EXTRA_DEPS})

    local missing=() p status
    for p in "${pkgs[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case "$status" in
        *"install ok installed"*) ;;
        *) missing+=("$p") ;;
        esac
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    if [ "$(id -u)" -eq 0 ]; then
        echo "deps: installing ${missing[*]}" >&2
        apt-get update || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
            return 1
        return 0
    fi
    echo "deps: missing Debian packages; install them with:" >&2
    echo "sudo apt-get install -y ${missing[*]}"
    return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    herald_deps_main "$@"
else
    herald_deps_main "$@" || { echo "deps: failed" >&2; return 1 2>/dev/null || exit 1; }
fi
