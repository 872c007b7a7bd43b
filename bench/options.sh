#!/usr/bin/env bash
# SIPp OPTIONS load over UDP against sipbox, beside the minimal uvloop responder (the floor),
# in the same run. For each rate: completed calls, failures, retransmissions, and the server's
# CPU per request (utime+stime from /proc before/after divided by requests).
#
# Usage: bench/options.sh [RATES...]      (default: 2000 5000 10000 15000)
# Each step sends rate*DURATION requests (DURATION=5 s by default). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RATES=("${@:-2000 5000 10000 15000}")
read -r -a RATES <<< "${RATES[*]}"
DURATION=${DURATION:-5}
HOST=127.0.0.$((RANDOM % 200 + 20))
WORK=$(mktemp -d)
trap 'kill $SIPBOX_PID $FLOOR_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/sipbox.toml" <<CONF
[server]
state_dir = "$WORK/var"
log_level = "warning"
[sip]
listen = ["udp:$HOST:5070"]
domain = "$HOST"
[api]
listen = "$HOST:18080"
[guard]
# The load generator is white-listed; the guard stays on so its cost is in the figures.
whitelist = ["127.0.0.0/8"]
CONF
# Pin the server to core 0 and SIPp to core 1 so they do not fight for one core.
taskset -c 0 $PY -m sipbox serve --config "$WORK/sipbox.toml" 2>"$WORK/sipbox.log" &
SIPBOX_PID=$!
taskset -c 0 $PY bench/minimal_responder.py "$HOST" 5071 &
FLOOR_PID=$!
sleep 3

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

run() { # name pid port rate
    local name=$1 pid=$2 port=$3 rate=$4 total=$(( $4 * DURATION ))
    local before after
    before=$(cpu "$pid")
    taskset -c 1 sipp -sf bench/options_uac.xml -t u1 -i 127.0.0.1 -p 0 \
        -r "$rate" -m "$total" -l $((rate * 2)) -timeout $((DURATION * 4)) -nostdin \
        -trace_stat -stf "$WORK/$name-$rate.csv" "$HOST:$port" >/dev/null 2>&1 || true
    after=$(cpu "$pid")
    local line header
    line=$(tail -n 1 "$WORK/$name-$rate.csv")
    header=$(head -n 1 "$WORK/$name-$rate.csv")
    col() { echo "$header" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
    local ok fail retrans
    ok=$(echo "$line" | cut -d';' -f"$(col 'SuccessfulCall(C)')")
    fail=$(echo "$line" | cut -d';' -f"$(col 'FailedCall(C)')")
    retrans=$(echo "$line" | cut -d';' -f"$(col 'Retransmissions(C)')")
    local us
    us=$(awk -v a="$before" -v b="$after" -v t="$TICK" -v n="$total" \
        'BEGIN { printf "%.1f", (b - a) / t / n * 1e6 }')
    printf "%-8s %7d/s  ok=%-7s failed=%-5s retrans=%-5s cpu/request=%s us\n" \
        "$name" "$rate" "$ok" "$fail" "$retrans" "$us"
}

for rate in "${RATES[@]}"; do
    run sipbox "$SIPBOX_PID" 5070 "$rate"
    run floor "$FLOOR_PID" 5071 "$rate"
done
