#!/usr/bin/env bash
# bench/tree-scale.sh: does the cost of a request grow with the tree (issue 13)?
#
# Usage: bench/tree-scale.sh [PHASE...]      PHASE: creates discovery memory (default: all)
#
# Environment (defaults):
#   BIN      the server binary; unset: builds and uses target/release/bastion
#   PORT     18613 (loopback)
#   RUNS     3: create-rate windows per sibling count (median reported)
#   WINDOW   2: seconds per create-rate window
#   LEVELS   "10 1000 10000 50000": sibling counts for the create rate
#   CNT      100000: containers for the memory phase, spread over CNT_PARENTS AEs
#   CNT_PARENTS 100
#   AES      100000: AEs for the memory phase
#
# Everything goes over HTTP (TS-0009) to `bastion serve` on a fresh data directory, with wrk
# and bench/tree.lua (one thread, 16 connections) pinned to CPU 1, the server to CPU 0.
#   creates:   for each LEVEL, RUNS fresh AEs each filled with LEVEL containers; then wrk
#              creates containers under each for WINDOW s: the create rate (req/s) of a
#              parent that starts the window with LEVEL children.
#   discovery: below the AE with the largest LEVEL: `?fu=1&lim=100` and `&lim=100&ofst=1000`
#              and `&ty=3&lim=100`, each 9 times with curl as the admin; median total time.
#   memory:    on a fresh data directory, CNT containers, then (another directory) AES
#              AEs; VmRSS before filling, after, and after a restart on the same directory
#              (plus VmHWM, and the time the restart took until the server answered).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
PORT=${PORT:-18613}
BASE=http://127.0.0.1:$PORT
RUNS=${RUNS:-3}
WINDOW=${WINDOW:-2}
LEVELS=${LEVELS:-10 1000 10000 50000}
CNT=${CNT:-100000}
CNT_PARENTS=${CNT_PARENTS:-100}
AES=${AES:-100000}
PHASES=${*:-creates discovery memory}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [[ -z ${BIN:-} ]]; then
  nice -n 5 cargo build --release -q -p bastion
  BIN=target/release/bastion
fi
TMP=$(mktemp -d /tmp/bastion-scale.XXXXXX)
PID=
trap '[[ -n $PID ]] && kill $PID 2>/dev/null; rm -rf "$TMP"' EXIT

start() { # start DATA_DIR
  taskset -c 0 "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$1" --log warn &
  PID=$!
  for _ in $(seq 1 3000); do
    curl -sf -o /dev/null -H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RI: p' -H 'X-M2M-RVI: 3' $BASE/cse-in && return 0
    sleep 0.1
  done
  echo "server did not answer" >&2; exit 1
}
stop() { kill $PID; wait $PID || true; PID=; }
rss() { awk '/^VmRSS/ {printf "%d", $2/1024}' /proc/$PID/status; }
hwm() { awk '/^VmHWM/ {printf "%d", $2/1024}' /proc/$PID/status; }

register() { # register NAME: an AE named NAME with originator C<NAME>
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-M2M-Origin: C$1" -H 'X-M2M-RI: r' \
    -H 'X-M2M-RVI: 3' -H 'Content-Type: application/json;ty=2' \
    --data-binary "{\"m2m:ae\":{\"rn\":\"$1\",\"api\":\"Nscale\",\"rr\":false,\"srv\":[\"3\"]}}" "$BASE/cse-in")
  [[ $code == 201 ]] || { echo "registering $1: HTTP $code" >&2; exit 1; }
}

grow() { # grow URL KIND ORIGIN COUNT: COUNT creates with wrk, ended once all answered
  (($4 > 0)) || return 0
  rm -f "$TMP/done"
  taskset -c 1 wrk -t1 -c16 -d3600s --timeout 30s -s bench/tree.lua "$1" -- "$2" "$3" "$4" "$TMP/done" >"$TMP/wrk.out" &
  local wrk=$!
  while kill -0 $wrk 2>/dev/null && [[ ! -e $TMP/done ]]; do sleep 0.2; done
  kill -INT $wrk 2>/dev/null || true
  wait $wrk || true
  if ! grep -q 'errors=0$' "$TMP/wrk.out"; then grep TREE "$TMP/wrk.out" >&2; echo "grow $1 failed" >&2; exit 1; fi
}

rate() { # rate URL ORIGIN: container creates per second over WINDOW s
  taskset -c 1 wrk -t1 -c16 -d"${WINDOW}s" -s bench/tree.lua "$1" -- cnt "$2" | awk '/^Requests\/sec/ {print $2}'
}

echo "binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1)); $(nproc) CPUs; $(date -u +%FT%TZ)"

if [[ $PHASES == *creates* || $PHASES == *discovery* ]]; then
  start "$TMP/scale"
  top=0
  for level in $LEVELS; do
    rates=()
    for run in $(seq 1 "$RUNS"); do
      register "l$level-$run"
      grow "$BASE/cse-in/l$level-$run" cnt "Cl$level-$run" "$level"
      rates+=("$(rate "$BASE/cse-in/l$level-$run" "Cl$level-$run")")
    done
    echo "create <container> under a parent with $level children: ${rates[*]} req/s; median $(printf '%s\n' "${rates[@]}" | median)"
    top=$level
  done
  if [[ $PHASES == *discovery* ]]; then
    for query in "fu=1&lim=100" "fu=1&lim=100&ofst=1000" "fu=1&ty=3&lim=100"; do
      times=()
      for _ in $(seq 1 9); do
        times+=("$(curl -s -o "$TMP/disc" -w '%{time_total}' -H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RI: d' \
          -H 'X-M2M-RVI: 3' "$BASE/cse-in/l$top-1?$query")")
      done
      found=$(grep -o 'cse-in/' "$TMP/disc" | wc -l)
      echo "discovery ?$query below l$top-1 ($found found): median $(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1*1000}') ms"
    done
  fi
  stop
fi

if [[ $PHASES == *memory* ]]; then
  start "$TMP/cnt"
  empty=$(rss)
  per=$((CNT / CNT_PARENTS))
  for p in $(seq 1 "$CNT_PARENTS"); do
    register "m$p"
    grow "$BASE/cse-in/m$p" cnt "Cm$p" "$per"
  done
  running=$(rss)
  echo "$((per * CNT_PARENTS)) containers under $CNT_PARENTS AEs: RSS empty $empty MiB, filled $running MiB (peak $(hwm) MiB): $(( (running - empty) * 1048576 / (per * CNT_PARENTS) )) bytes per container"
  stop
  t0=$(date +%s.%N)
  start "$TMP/cnt"
  echo "  after restart: RSS $(rss) MiB (peak $(hwm) MiB), answering after $(echo "$(date +%s.%N) - $t0" | bc) s; on disk $(du -sh "$TMP/cnt" | cut -f1)"
  stop
  rm -rf "$TMP/cnt"
  start "$TMP/ae"
  empty=$(rss)
  grow "$BASE/cse-in" ae Cs "$AES"
  running=$(rss)
  echo "$AES AEs: RSS empty $empty MiB, filled $running MiB (peak $(hwm) MiB): $(( (running - empty) * 1048576 / AES )) bytes per AE"
  stop
  t0=$(date +%s.%N)
  start "$TMP/ae"
  echo "  after restart: RSS $(rss) MiB (peak $(hwm) MiB), answering after $(echo "$(date +%s.%N) - $t0" | bc) s; on disk $(du -sh "$TMP/ae" | cut -f1)"
  stop
fi
