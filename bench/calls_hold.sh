#!/usr/bin/env bash
# Concurrency benchmark (issue 4): N simultaneous established calls (long hold) and the
# INVITE->200 time of new calls beside them.
#   1. idle: calls at PROBE_RATE (50/s, 1 s each) for PROBE_SECONDS -> p99 INVITE->200 (idle)
#   2. HOLD (10,000) calls are set up at HOLD_RATE (200/s) by a second SIPp UAC and held 1 h
#   3. the same probe again -> p99 with the calls held; the server's RSS with them held
# Target: RSS < 1 GB, p99 held <= 1.5x p99 idle.
#
#   bench/calls_hold.sh [HOLD=10000] [HOLD_RATE=200] [PROBE_RATE=50] [PROBE_SECONDS=30]
set -euo pipefail
cd "$(dirname "$0")/.."
HOLD=${HOLD:-10000}
HOLD_RATE=${HOLD_RATE:-200}
PROBE_RATE=${PROBE_RATE:-50}
PROBE_SECS=${PROBE_SECONDS:-30}
HOST=${HOST:-127.0.0.$((RANDOM % 100 + 20))}
UAC_IP=127.0.0.$((RANDOM % 50 + 130))
UAS_IP=127.0.0.$((RANDOM % 10 + 245))
PORT=${PORT:-5093}
UAS_PORT=5094
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/sipbox-bench-hold.XXXXXX)
SERVER_PID=""; UAS_PID=""; HOLD_PID=""
trap 'kill -9 "$HOLD_PID" 2>/dev/null; kill "$SERVER_PID" "$UAS_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
PIN_SERVER=(); PIN_SIPP=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0); PIN_SIPP=(taskset -c 1)
fi

cat >"$WORK/sipbox.toml" <<TOML
[server]
state_dir = "$WORK/var"
log_level = "info"
[sip]
listen = ["udp:$HOST:$PORT"]
domain = "$HOST"
[api]
listen = "$HOST:$((PORT + 2))"
[registrar]
keepalive_interval = 0
[guard]
whitelist = ["127.0.0.0/8"]
TOML

"$PY" - "$WORK/var" "$HOST" "$UAC_IP" "$UAS_IP:$UAS_PORT" <<'PY'
import asyncio, sys
from pathlib import Path
from sipbox.storage import NewUser, open_store
state, realm, uac, uas = sys.argv[1:]
async def main():
    Path(state).mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{state}/sipbox.db")
    await store.migrate()
    await store.create_users([
        NewUser(number="1001", ip_auth=(f"{uac}/32",)),
        NewUser(number="1002", ip_auth=(f"{uas.split(':')[0]}/32",), static_contact=uas),
    ])
    await store.close()
asyncio.run(main())
PY

"${PIN_SERVER[@]}" "$PY" -m sipbox serve --config "$WORK/sipbox.toml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q " ready" "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q " ready" "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }
"${PIN_SIPP[@]}" sipp -sf tests/integration/sipp/uas_answer.xml -i "$UAS_IP" -p "$UAS_PORT" \
  -nostdin -bg >/dev/null 2>&1 &
sleep 0.5
UAS_PID=$(pgrep -n -f "sipp -sf tests/integration/sipp/uas_answer.xml -i $UAS_IP" || true)

rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status"; }
p99() {
  "$PY" - "$1" <<'PY'
import sys
values = []
for line in open(sys.argv[1]):
    parts = line.strip().split(";")
    if len(parts) >= 2 and parts[0][:1].isdigit():
        try:
            values.append(float(parts[1]))
        except ValueError:
            pass
values.sort()
q = lambda f: values[min(len(values) - 1, int(len(values) * f))]
print(f"{q(0.99):.1f} (p50 {q(0.5):.1f}, max {values[-1]:.1f}, n {len(values)})" if values else "nan")
PY
}
probe() {  # $1: label
  local dir="$WORK/probe-$1"; mkdir -p "$dir"
  (cd "$dir" && "${PIN_SIPP[@]}" sipp "$HOST:$PORT" -sf "$OLDPWD/tests/integration/sipp/uac_call.xml" -s 1002 \
    -i "$UAC_IP" -p 0 -d 1000 -m $((PROBE_RATE * PROBE_SECS)) -r "$PROBE_RATE" -timeout 120s -nostdin \
    -trace_stat -stf "$dir/stat.csv" -trace_rtt -rtt_freq 1 >/dev/null 2>&1 || true)
  local last head col
  last=$(tail -n 1 "$dir/stat.csv"); head=$(head -n 1 "$dir/stat.csv")
  col() { echo "$head" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
  echo "$1: ok $(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")" \
    "failed $(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")" \
    "retrans $(echo "$last" | cut -d';' -f"$(col Retransmissions\(C\))")" \
    "p99 INVITE->200 ms $(p99 "$(ls "$dir"/*_rtt.csv | head -1)")"
}

echo "server RSS at start: $(rss) MB"
probe idle
mkdir -p "$WORK/hold"
(cd "$WORK/hold" && "${PIN_SIPP[@]}" sipp "$HOST:$PORT" -sf "$OLDPWD/tests/integration/sipp/uac_call.xml" -s 1002 \
  -i "$UAC_IP" -p 0 -d 3600000 -m "$HOLD" -l "$HOLD" -r "$HOLD_RATE" -nostdin \
  -trace_stat -stf "$WORK/hold/stat.csv" -fd 1 >/dev/null 2>&1) &
sleep 0.5
HOLD_PID=$(pgrep -n -f "sipp .*-stf $WORK/hold/stat.csv" || echo $!)  # sipp itself, not the subshell
cpu0=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
sleep $((HOLD / HOLD_RATE + 10))
cpu1=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
live=$(curl -s "http://$HOST:$((PORT + 2))/metrics" 2>/dev/null | awk '/^sipbox_calls_active /{print $2}' || true)
echo "held: $(tail -n 1 "$WORK/hold/stat.csv" | cut -d';' -f14) calls open at the UAC (set-up CPU" \
  "$(echo "($cpu1 - $cpu0) * 1000000 / $(getconf CLK_TCK) / $HOLD" | bc) us/call); server RSS $(rss) MB"
probe held
echo "server RSS with $HOLD calls held, after the probe: $(rss) MB"
echo "work dir: $WORK"
