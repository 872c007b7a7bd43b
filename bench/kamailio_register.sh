#!/usr/bin/env bash
# Kamailio beside sipbox (issue 3): the same SIPp digest registrations (REGISTER -> 401 ->
# REGISTER -> 200, tests/integration/sipp/register_auth.xml) against Debian's Kamailio with
# registrar + auth_db on a SQLite subscriber table (db_sqlite, package kamailio-sqlite-modules)
# and the location table in memory (usrloc db_mode 0), one worker, pinned to CPU 0 like sipbox.
# CPU per registration sums utime+stime of every Kamailio process.
#
#   USERS=10000 RATES="2500 4000 6000" bench/kamailio_register.sh
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-10000}
RATES=${RATES:-"2500 4000 6000 8000"}
HOST=${HOST:-127.0.0.$((RANDOM % 200 + 20))}
PORT=${PORT:-5199}
MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules
SCHEMA=/usr/share/kamailio/db_sqlite
[ -e "$MODULES/db_sqlite.so" ] || { echo "db_sqlite missing: apt-get install kamailio-sqlite-modules"; exit 1; }
WORK=$(mktemp -d /tmp/sipbox-bench-kamailio.XXXXXX)
trap 'kill $(cat "$WORK/kamailio.pid" 2>/dev/null) 2>/dev/null || true' EXIT
PIN_SERVER=(); PIN_SIPP=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c 0); PIN_SIPP=(taskset -c 1)
fi

{ cat "$SCHEMA/standard-create.sql" "$SCHEMA/auth_db-create.sql"
  echo "BEGIN;"
  for i in $(seq 0 $((USERS - 1))); do
    n=$((100000 + i))
    echo "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('$n', '$HOST', 'pw$n', '$(printf '%s' "$n:$HOST:pw$n" | md5sum | cut -d' ' -f1)', '');"
  done
  echo "COMMIT;"; } | sqlite3 "$WORK/kamailio.db"
{ echo "SEQUENTIAL"
  for i in $(seq 0 $((USERS - 1))); do n=$((100000 + i)); echo "$n;pw$n;[authentication username=$n password=pw$n]"; done
} > "$WORK/users.csv"

cat >"$WORK/kamailio.cfg" <<CFG
#!KAMAILIO
debug=1
log_stderror=yes
children=1
listen=udp:$HOST:$PORT
mpath="$MODULES/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_sqlite.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("usrloc", "db_mode", 0)
modparam("auth_db", "db_url", "sqlite://$WORK/kamailio.db")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "password_column", "ha1")
modparam("auth_db", "load_credentials", "")
request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (is_method("REGISTER")) {
    if (!auth_check("\$fd", "subscriber", "1")) { auth_challenge("\$fd", "1"); exit; }
    if (!save("location")) { sl_reply_error(); }
    exit;
  }
  sl_send_reply("404", "Not Here");
}
CFG

"${PIN_SERVER[@]}" kamailio -f "$WORK/kamailio.cfg" -P "$WORK/kamailio.pid" -m 256 -M 16 \
  -u "$(id -un)" -g "$(id -gn)" >"$WORK/kamailio.log" 2>&1
for _ in $(seq 50); do [ -s "$WORK/kamailio.pid" ] && break; sleep 0.1; done
sleep 1
MAIN=$(cat "$WORK/kamailio.pid")
cpu_all() { # utime+stime of the main process and its children, in ticks
  local total=0 p
  for p in $MAIN $(pgrep -P "$MAIN"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
TICK=$(getconf CLK_TCK)
best=0; best_cpu=""
printf "%8s %8s %8s %8s %10s %12s\n" rate ok failed retrans elapsed_s cpu_us/reg
for rate in $RATES; do
  before=$(cpu_all); start=$(date +%s.%N)
  "${PIN_SIPP[@]}" sipp "$HOST:$PORT" -sf tests/integration/sipp/register_auth.xml \
    -inf "$WORK/users.csv" -set expires 3600 -i 127.0.0.1 -p 0 -m "$USERS" -r "$rate" \
    -l "$rate" -timeout 120s -nostdin -trace_stat -stf "$WORK/stat-$rate.csv" >/dev/null 2>&1 || true
  end=$(date +%s.%N); after=$(cpu_all)
  last=$(tail -n 1 "$WORK/stat-$rate.csv"); head=$(head -n 1 "$WORK/stat-$rate.csv")
  col() { echo "$head" | tr ';' '\n' | grep -n "^$1\$" | cut -d: -f1; }
  ok=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
  failed=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
  retrans=$(echo "$last" | cut -d';' -f"$(col Retransmissions\(C\))")
  cpu_us=$(echo "scale=1; ($after - $before) * 1000000 / $TICK / $USERS" | bc)
  printf "%8s %8s %8s %8s %10.2f %12s\n" "$rate" "$ok" "$failed" "$retrans" "$(echo "$end - $start" | bc)" "$cpu_us"
  if [ "$failed" = 0 ] && [ "$retrans" = 0 ] && [ "$ok" = "$USERS" ]; then best=$rate; best_cpu=$cpu_us; else break; fi
done
echo "kamailio highest clean rate: $best registrations/s (CPU ${best_cpu:-?} us per registration)"
echo "work dir: $WORK"
