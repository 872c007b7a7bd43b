#!/usr/bin/env bash
# Install the SIP tools the interop tests drive: SIPp (Debian package sip-tester), sipsak,
# baresip, sipvicious and Kamailio (with its SQLite driver, kamailio-sqlite-modules, for
# bench/kamailio_register.sh). Also Chromium, which the web admin tests
# (tests/web) drive headless through Playwright. Shared by `make test` and .ci/run.
#
# Why a script: the same Debian packages must be installed on a developer's machine and in CI,
# and installing them must never leave a Kamailio or baresip daemon holding port 5060, which
# would make every SIP test of ours fail with "address in use".
#
# Usage: scripts/install-interop-tools.sh [--force] [--no-update]
#   (default)    install only when `sipp` or `chromium` is missing; needs root, otherwise
#                explains and exits 0
#   --force      install (or upgrade) even when sipp is present; fails when not root
#   --no-update  skip `apt-get update` (the caller just ran it)
set -euo pipefail

PACKAGES=(sip-tester sipsak baresip sipvicious kamailio kamailio-sqlite-modules chromium)
DAEMONS=(kamailio baresip)

force=0
update=1
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --no-update) update=0 ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install-interop-tools: unknown option $arg" >&2; exit 2 ;;
    esac
done

if [[ $force -eq 0 ]] && command -v sipp >/dev/null 2>&1 \
    && command -v chromium >/dev/null 2>&1; then
    echo "interop tools: sipp and chromium found, nothing to install"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    msg="interop tools: not root, cannot install ${PACKAGES[*]}."
    msg+=" Tests that need them will be SKIPPED."
    msg+=" Install with: sudo scripts/install-interop-tools.sh"
    echo "$msg" >&2
    [[ $force -eq 1 ]] && exit 1
    exit 0
fi

# The daemons running before we start belong to someone else: remember them so that only the
# ones the package scripts start are stopped afterwards.
declare -A before=()
for daemon in "${DAEMONS[@]}"; do
    for pid in $(pgrep -x "$daemon" || true); do before[$pid]=1; done
done

# Debian's convention for "do not start services from maintainer scripts" (invoke-rc.d asks
# policy-rc.d; exit status 101 = action forbidden). Only add it when none exists already.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
cleanup() { [[ $own_policy -eq 1 ]] && rm -f "$policy"; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if [[ $update -eq 1 ]]; then
    apt-get update -q
fi
apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

# Belt and braces: make sure no packaged daemon keeps port 5060.
for daemon in "${DAEMONS[@]}"; do
    systemctl disable --now "$daemon" 2>/dev/null || true
    # The packaged service writes this pid file; that daemon is never one of our tests'.
    pidfile=/run/$daemon/$daemon.pid
    if [[ -r $pidfile ]] && pid=$(<"$pidfile") && [[ $pid =~ ^[0-9]+$ ]] \
        && [[ $(ps -o comm= -p "$pid" 2>/dev/null) == "$daemon" ]]; then
        echo "interop tools: stopping the packaged $daemon service (pid $pid)"
        kill "$pid" 2>/dev/null || true
    fi
    for pid in $(pgrep -x "$daemon" || true); do
        if [[ -z ${before[$pid]:-} ]]; then
            echo "interop tools: stopping $daemon (pid $pid) started by its package"
            kill "$pid" 2>/dev/null || true
        fi
    done
done

echo "interop tools: installed ${PACKAGES[*]}"
