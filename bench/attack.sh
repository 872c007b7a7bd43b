#!/usr/bin/env bash
# Attack benchmark (issue 6): a *banned* source floods the server with UDP at fixed rates (the
# paced generator bench/udpflood.py: SIPp stalls when nothing answers) while a phone on another
# address keeps registering at a steady pace. For each rate: the phone's success rate and
# latency (beside the no-flood run), and the server's CPU time per dropped datagram
# ((CPU during the run - CPU of the no-flood run) / datagrams sent). Target: < 5 us/datagram.
#
#   bench/attack.sh [RATES="0 10000 30000 60000"] [DURATION=5] [LEGIT_RATE=20]
#
# The guard is on with its defaults (nothing white-listed). sipbox is pinned to CPU 0, the
# generators to CPU 1, when taskset exists (2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"0 10000 30000 60000"}
SECONDS_PER_RUN=${DURATION:-5}
LEGIT_RATE=${LEGIT_RATE:-20}
HOST=${HOST:-127.0.0.$((RANDOM % 200 + 20))}
PORT=${PORT:-5097}
ATTACKER=${ATTACKER:-127.0.0.251}
PHONE=${PHONE:-127.0.0.252}
PY=${PY:-.venv/bin/python}
WORK=$(mktemp -d /tmp/sipbox-bench-attack.XXXXXX)
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
PIN_SERVER=(); PIN_GEN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0); PIN_GEN=(taskset -c 1)
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
TOML

"$PY" - "$WORK/var" "$HOST" <<'PYEOF'
import asyncio, sys
from pathlib import Path
from sipbox.pbx.users import password_fields
from sipbox.storage import NewUser, open_store
async def main() -> None:
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{sys.argv[1]}/sipbox.db")
    await store.migrate()
    await store.create_user(NewUser(number="1001", **password_fields("1001", sys.argv[2], "bench-pw")))
    await store.close()
asyncio.run(main())
PYEOF

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

"${PIN_SERVER[@]}" "$PY" -m sipbox serve --config "$WORK/sipbox.toml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q " ready" "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q " ready" "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }

# Get the attacker banned the way a scanner is: one request with svmap's User-Agent.
"$PY" - "$ATTACKER" "$HOST" "$PORT" <<'PYEOF'
import socket, sys
src, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0))
s.sendto((f"OPTIONS sip:{host} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:9;branch=z9hG4bKscan\r\n"
          f"From: \"sipvicious\"<sip:100@{src}>;tag=1\r\nTo: <sip:{host}>\r\nCall-ID: scan\r\n"
          "CSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n").encode(),
         (host, port))
PYEOF
sleep 0.5
grep -q "action=ban source=$ATTACKER reason=scanner" "$WORK/server.log" || { echo "attacker not banned"; cat "$WORK/server.log"; exit 1; }

printf "%8s %9s %10s %8s %8s %8s %8s %12s\n" rate sent regs ok_pct p50_ms p99_ms max_ms cpu_us/drop
base_cpu_per_s=""
for rate in $RATES; do
  before=$(cpu "$SERVER_PID")
  t0=$(date +%s.%N)
  if [ "$rate" -gt 0 ]; then
    "${PIN_GEN[@]}" "$PY" bench/udpflood.py --source "$ATTACKER" --target "$HOST:$PORT" \
      --rate "$rate" --seconds "$SECONDS_PER_RUN" >"$WORK/flood-$rate.json" &
    FLOOD=$!
  fi
  legit=$("${PIN_GEN[@]}" "$PY" bench/attack_legit.py --source "$PHONE" --target "$HOST:$PORT" \
    --user 1001 --password bench-pw --rate "$LEGIT_RATE" --seconds "$SECONDS_PER_RUN")
  sent=0
  if [ "$rate" -gt 0 ]; then wait "$FLOOD"; sent=$("$PY" -c "import json,sys;print(json.load(open(sys.argv[1]))['sent'])" "$WORK/flood-$rate.json"); fi
  t1=$(date +%s.%N)
  after=$(cpu "$SERVER_PID")
  "$PY" - "$rate" "$sent" "$before" "$after" "$TICK" "$t0" "$t1" "$legit" "${base_cpu_per_s:-}" >"$WORK/row" <<'PYEOF'
import json, sys
rate, sent, before, after, tick, t0, t1 = (float(x) for x in sys.argv[1:8])
legit = json.loads(sys.argv[8]); base = sys.argv[9]
cpu = (after - before) / tick; wall = t1 - t0
if rate == 0:
    print(f"BASE {cpu / wall}")
    per = "-"
else:
    extra = cpu - (float(base) * wall if base else 0.0)
    per = f"{1e6 * extra / sent:.2f}" if sent else "-"
print(f"{int(rate):8d} {int(sent):9d} {legit['registrations']:10d} {legit['ok_pct']:8} "
      f"{legit['p50_ms']!s:>8} {legit['p99_ms']!s:>8} {legit['max_ms']!s:>8} {per:>12}")
PYEOF
  if grep -q "^BASE" "$WORK/row"; then base_cpu_per_s=$(grep "^BASE" "$WORK/row" | cut -d' ' -f2); fi
  grep -v "^BASE" "$WORK/row"
done
echo "server log and raw results: $WORK"
