#!/usr/bin/env bash
# Call-rate benchmark (issue 4): SIPp UAC -> sipbox -> SIPp UAS (INVITE, 180, 200, ACK, 1 s
# call, BYE) at increasing rates, without and with digest (407) on the A leg. For each rate:
# calls ok/failed, retransmissions (UAC side), p99 INVITE->200 (SIPp rtd, from -trace_rtt),
# server CPU per call. Stops a mode at the first rate with >= 0.1% failures, any
# retransmission or p99 >= 100 ms, and prints the highest clean rate.
#
#   bench/calls.sh [RATES="100 200 300 400 500 600 800"] [SECONDS_PER_RATE=10] [MODES="ip digest"]
#                  [SERVERS="sipbox sippy"]   # same run, one after the other
#                  [LAX_MS=500]               # also report the highest rate with p99 < LAX_MS
#                  [SIPPY_RATES="25 50 75 100 150 200"]
#
# SERVERS=sippy runs the Sippy B2BUA (PyPI `sippy`, not a project dependency) in the same
# set-up, IP mode only (no digest), static route to the same SIPp UAS, from the venv
# $SIPPY_VENV (default /tmp/sippy-venv: `python3 -m venv /tmp/sippy-venv &&
# /tmp/sippy-venv/bin/pip install sippy`). Each server is pinned to CPU 0, the SIPp UAS and
# UAC to the other CPUs when taskset exists.
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"100 200 300 400 500 600 800"}
SECS=${SECONDS_PER_RATE:-10}
MODES=${MODES:-"ip digest"}
SERVERS=${SERVERS:-sipbox}
LAX_MS=${LAX_MS:-500}
SIPPY_VENV=${SIPPY_VENV:-/tmp/sippy-venv}
HOST=${HOST:-127.0.0.$((RANDOM % 100 + 20))}
UAC_IP=127.0.0.$((RANDOM % 50 + 130))       # IP-authorized caller
UAC_DIGEST=127.0.0.$((RANDOM % 50 + 190))   # same user from elsewhere: 407 + digest
UAS_IP=127.0.0.$((RANDOM % 10 + 245))
PORT=${PORT:-5097}
UAS_PORT=5098
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/sipbox-bench-calls.XXXXXX)
SERVER_PID=""; UAS_PID=""
trap 'kill "$SERVER_PID" "$UAS_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
PIN_SERVER=(); PIN_UAS=(); PIN_UAC=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 3 ]; then
  PIN_SERVER=(taskset -c 0); PIN_UAS=(taskset -c 1); PIN_UAC=(taskset -c 2)
elif command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0); PIN_UAS=(taskset -c 1); PIN_UAC=(taskset -c 1)
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
from sipbox.pbx.users import password_fields
from sipbox.storage import NewUser, open_store
state, realm, uac, uas = sys.argv[1:]
async def main():
    Path(state).mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{state}/sipbox.db")
    await store.migrate()
    await store.create_users([
        NewUser(number="1001", ip_auth=(f"{uac}/32",), **password_fields("1001", realm, "benchpw")),
        NewUser(number="1002", ip_auth=(f"{uas.split(':')[0]}/32",), static_contact=uas),
    ])
    await store.close()
asyncio.run(main())
PY

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

start_server() {  # $1: sipbox | sippy
  if [ "$1" = sippy ]; then
    "${PIN_SERVER[@]}" "$SIPPY_VENV/bin/b2bua" --foreground=on --sip_address="$HOST" \
      --sip_port="$PORT" --static_route="$UAS_IP:$UAS_PORT" --auth_enable=off --acct_enable=off --logfile="$WORK/sippy.log" \
      >"$WORK/sippy.out" 2>&1 &
    SERVER_PID=$!
    sleep 2
    kill -0 "$SERVER_PID" || { cat "$WORK/sippy.out"; exit 1; }
    return
  fi
  "${PIN_SERVER[@]}" "$PY" -m sipbox serve --config "$WORK/sipbox.toml" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q " ready" "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
  grep -q " ready" "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }
}
"${PIN_UAS[@]}" sipp -sf tests/integration/sipp/uas_answer.xml -i "$UAS_IP" -p "$UAS_PORT" \
  -nostdin -bg >/dev/null 2>&1 &
sleep 0.5
UAS_PID=$(pgrep -n -f "sipp -sf tests/integration/sipp/uas_answer.xml -i $UAS_IP" || true)

p99() {  # 99th percentile of the rtd column (ms) of a SIPp -trace_rtt file
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
print(f"{values[min(len(values) - 1, int(len(values) * 0.99))]:.1f}" if values else "nan")
PY
}

for server in $SERVERS; do
start_server "$server"
MODES_NOW=$MODES; RATES_NOW=$RATES
[ "$server" = sippy ] && MODES_NOW=ip && RATES_NOW=${SIPPY_RATES:-"25 50 75 100 150 200"}
for mode in $MODES_NOW; do
  if [ "$mode" = digest ]; then SCEN=uac_call_auth.xml; SRC=$UAC_DIGEST; AUTH=(-au 1001 -ap benchpw)
  else SCEN=uac_call.xml; SRC=$UAC_IP; AUTH=(); fi
  echo "== $server, mode: $mode (A leg $([ "$mode" = digest ] && echo 'INVITE/407/ACK/INVITE' || echo 'IP-authorized'))"
  printf "%6s %7s %7s %8s %9s %12s\n" rate ok failed retrans p99_ms cpu_us/call
  best=0; best_cpu=""; lax=0
  for rate in $RATES_NOW; do
    calls=$((rate * SECS))
    before=$(cpu "$SERVER_PID")
    (cd "$WORK" && "${PIN_UAC[@]}" sipp "$HOST:$PORT" -sf "$OLDPWD/tests/integration/sipp/$SCEN" -s 1002 -i "$SRC" -p 0 \
      "${AUTH[@]}" -d 1000 -m "$calls" -r "$rate" -l $((rate * 3)) -timeout 120s -nostdin \
      -trace_stat -stf "$WORK/stat-$mode-$rate.csv" -trace_rtt -rtt_freq 1 \
      -trace_err -error_file "$WORK/err-$mode-$rate.log" >/dev/null 2>&1 || true)
    sleep 1.2
    after=$(cpu "$SERVER_PID")
    last=$(tail -n 1 "$WORK/stat-$mode-$rate.csv"); head=$(head -n 1 "$WORK/stat-$mode-$rate.csv")
    col() { echo "$head" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
    ok=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
    failed=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
    retrans=$(echo "$last" | cut -d';' -f"$(col Retransmissions\(C\))")
    rtt=$(ls "$WORK"/*_rtt.csv 2>/dev/null | head -1 || true)
    p=$([ -n "$rtt" ] && p99 "$rtt" || echo nan); [ -n "$rtt" ] && rm -f "$rtt"
    cpu_us=$(echo "scale=0; ($after - $before) * 1000000 / $TICK / $calls" | bc)
    printf "%6s %7s %7s %8s %9s %12s\n" "$rate" "$ok" "$failed" "$retrans" "$p" "$cpu_us"
    ok_calls=$("$PY" -c "print(int($failed * 1000 < $calls and $retrans == 0 and '$p' != 'nan'))")
    clean=$("$PY" -c "print(int($ok_calls and float('$p') < 100))")
    laxok=$("$PY" -c "print(int($ok_calls and float('$p') < $LAX_MS))")
    if [ "$laxok" = 1 ]; then lax=$rate; else break; fi
    if [ "$clean" = 1 ]; then best=$rate; best_cpu=$cpu_us; fi
  done
  echo "highest clean rate ($server, $mode): $best calls/s (server CPU ${best_cpu:-?} us per call); with p99 < $LAX_MS ms: $lax calls/s"
done
kill "$SERVER_PID" 2>/dev/null || true  # Sippy's "safe stop" may never end: KILL after 5 s
for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
sleep 1
done
echo "work dir: $WORK"
