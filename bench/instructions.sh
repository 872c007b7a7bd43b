#!/usr/bin/env bash
# Instructions per message, counted by valgrind's callgrind: repeatable whatever else the
# machine is doing, so small before/after differences show (the SIPp benches' noise hides them).
# Each figure is (run with 3N messages - run with N messages) / 2N, so start-up cancels out.
#
#   bench/instructions.sh core       # Endpoint.receive of a stateless OPTIONS (receive_probe.py)
#   bench/instructions.sh server     # the whole in-process server path (inproc.py: OPTIONS)
#   SIPBOX_PURE_PYTHON=1 bench/instructions.sh core    # the same, pure-Python core
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WHAT=${1:-core}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
count() { # messages -> instructions of the whole run
  local args
  case $WHAT in
    core) args=(bench/receive_probe.py "$1") ;;
    server) args=(bench/inproc.py --users 10 --options "$1") ;;
    *) echo "usage: $0 core|server"; exit 2 ;;
  esac
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" "${args[@]}" 2>&1 \
    | awk '/Collected/ {print $4}'
}
case $WHAT in core) N=1000 ;; *) N=2000 ;; esac
a=$(count "$N"); b=$(count $((3 * N)))
native=$("$PY" -c 'import sipbox.sip as s; print("compiled" if s.NATIVE else "pure Python")')
echo "$WHAT ($native): $(( (b - a) / (2 * N) )) instructions per OPTIONS"
