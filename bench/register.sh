#!/usr/bin/env bash
# Registration benchmark (issue 3): SIPp REGISTER -> 401 -> REGISTER -> 200 for N distinct users
# at increasing rates, against a fresh sipbox (SQLite store, guard on with SIPp white-listed).
# For each rate: failures, retransmissions, server CPU per registration (utime+stime from
# /proc/<pid>/stat before/after). Prints the highest rate with zero failures and zero
# retransmissions.
#
#   bench/register.sh [USERS=10000] [RATES="1000 2000 2500 3000 4000 5000"]
#
# sipbox is pinned to CPU 0 and SIPp to CPU 1 when taskset exists (2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-10000}
RATES=${RATES:-"1000 2000 2500 3000 4000 5000"}
HOST=${HOST:-127.0.0.$((RANDOM % 200 + 20))}
PORT=${PORT:-5099}
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/sipbox-bench-register.XXXXXX)
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
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
listen = "$HOST:$((PORT + 1))"
[registrar]
keepalive_interval = 0
[guard]
whitelist = ["127.0.0.0/8"]
TOML

echo "provisioning $USERS users in $WORK/var/sipbox.db ..."
"$PY" bench/provision_users.py "$WORK/var" "$HOST" "$USERS" "$WORK/users.csv"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

"${PIN_SERVER[@]}" "$PY" -m sipbox serve --config "$WORK/sipbox.toml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q " ready" "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q " ready" "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }

best=0; best_cpu=""
printf "%8s %8s %8s %8s %10s %12s\n" rate ok failed retrans elapsed_s cpu_us/reg
for rate in $RATES; do
  before=$(cpu "$SERVER_PID")
  start=$(date +%s.%N)
  "${PIN_SIPP[@]}" sipp "$HOST:$PORT" -sf tests/integration/sipp/register_auth.xml \
    -inf "$WORK/users.csv" -set expires 3600 -i 127.0.0.1 -p 0 -m "$USERS" -r "$rate" \
    -l "$rate" -timeout 120s -nostdin -trace_stat -stf "$WORK/stat-$rate.csv" \
    -trace_err -error_file "$WORK/err-$rate.log" >/dev/null 2>&1 || true
  end=$(date +%s.%N)
  after=$(cpu "$SERVER_PID")
  last=$(tail -n 1 "$WORK/stat-$rate.csv")
  head=$(head -n 1 "$WORK/stat-$rate.csv")
  col() { echo "$head" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
  ok=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
  failed=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
  retrans=$(echo "$last" | cut -d';' -f"$(col Retransmissions\(C\))")
  elapsed=$(echo "$end - $start" | bc)
  cpu_us=$(echo "scale=1; ($after - $before) * 1000000 / $TICK / $USERS" | bc)
  printf "%8s %8s %8s %8s %10.2f %12s\n" "$rate" "$ok" "$failed" "$retrans" "$elapsed" "$cpu_us"
  if [ "$failed" = 0 ] && [ "$retrans" = 0 ] && [ "$ok" = "$USERS" ]; then
    best=$rate; best_cpu=$cpu_us
  else
    break
  fi
done
echo "highest clean rate: $best registrations/s (server CPU ${best_cpu:-?} us per registration)"
echo "work dir: $WORK"
