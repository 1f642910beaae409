#!/usr/bin/env bash
# bench/forward.sh: forwarding overhead (issue 5). RETRIEVE of a container's `la` on an
# MN-CSE directly, versus the same request sent to the IN-CSE as `/~/id-mn/...`, which
# forwards it to the MN over plain HTTP (docs/federation.md) and relays the answer.
#
# Usage: bench/forward.sh [--runs 3] [--duration 10] [--connections 32]
#
# Starts target/release/bastion twice on loopback (IN on 127.0.0.1:18191, MN on :18192,
# plain HTTP, MN with [registrar] url = http://127.0.0.1:18191), waits for the MN's
# registration, creates AE Cbench on the MN with container cnt (one instance) and an ACP
# granting RETRIEVE to Cbench and to the IN's AE /id-in/Creader, registers Creader on the
# IN, then runs --runs times each:
#   direct   wrk ... http://127.0.0.1:18192/cse-mn/bench/cnt/la          -- Cbench get
#   via-in   wrk ... http://127.0.0.1:18191/~/id-mn/cse-mn/bench/cnt/la  -- Creader get
# Servers are pinned to CPU 0, wrk to CPU 1 (taskset). Prints the median req/s of each and
# the ratio via-in / direct. Output in bench/out/forward-<timestamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
DURATION=10
CONNS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if ! command -v wrk >/dev/null; then
  echo "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
(cd "$ROOT" && cargo build --release -p bastion)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/bastion
OUT=$ROOT/bench/out/forward-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/in" "$OUT/mn"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cat >"$OUT/mn.toml" <<TOML
[cse]
cse-id = "/id-mn"
cse-name = "cse-mn"
cse-type = "mn"
[audit]
enabled = false
[registrar]
cse-id = "/id-in"
cse-base = "cse-in"
url = "http://127.0.0.1:18191"
TOML
printf '[audit]\nenabled = false\n' >"$OUT/in.toml"

taskset -c 0 "$BIN" serve --config "$OUT/in.toml" --listen 127.0.0.1:18191 --data-dir "$OUT/in" --log warn 2>"$OUT/in.log" &
PIDS+=($!)
sleep 0.5
taskset -c 0 "$BIN" serve --config "$OUT/mn.toml" --listen 127.0.0.1:18192 --data-dir "$OUT/mn" --log info 2>"$OUT/mn.log" &
PIDS+=($!)

req() { # METHOD URL ORIGIN [TY BODY] -> prints the rsc
  local args=(-s -o /dev/null -D - -X "$1" "$2" -H 'X-M2M-RVI: 3' -H "X-M2M-RI: s$RANDOM" -H "X-M2M-Origin: $3" -H 'Accept: application/json')
  if [ $# -ge 5 ]; then args+=(-H "Content-Type: application/json;ty=$4" -d "$5"); fi
  curl "${args[@]}" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-m2m-rsc"{print $2}'
}
for _ in $(seq 100); do
  [ "$(req GET http://127.0.0.1:18192/cse-mn/id-in CAdmin)" = 2000 ] && break
  sleep 0.1
done
[ "$(req GET http://127.0.0.1:18191/cse-in/id-mn CAdmin)" = 2000 ] || { echo "MN did not register" >&2; exit 1; }
MN=http://127.0.0.1:18192
check() { [ "$1" = "$2" ] || { echo "setup: expected $2, got $1 ($3)" >&2; exit 1; }; }
check "$(req POST $MN/cse-mn Cbench 2 '{"m2m:ae":{"rn":"bench","api":"Nbench","rr":false,"srv":["3"]}}')" 2001 ae
check "$(req POST $MN/cse-mn/bench Cbench 1 '{"m2m:acp":{"rn":"acp","pv":{"acr":[{"acor":["Cbench","/id-in/Creader"],"acop":63}]},"pvs":{"acr":[{"acor":["Cbench"],"acop":63}]}}}')" 2001 acp
check "$(req POST $MN/cse-mn/bench Cbench 3 '{"m2m:cnt":{"rn":"cnt","acpi":["cse-mn/bench/acp"]}}')" 2001 cnt
check "$(req POST $MN/cse-mn/bench/cnt Cbench 4 '{"m2m:cin":{"con":"21.5"}}')" 2001 cin
check "$(req POST http://127.0.0.1:18191/cse-in Creader 2 '{"m2m:ae":{"api":"Nreader","rr":false,"srv":["3"]}}')" 2001 reader
check "$(req GET http://127.0.0.1:18191/~/id-mn/cse-mn/bench/cnt/la Creader)" 2000 via-in

{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo || true; } >"$OUT/machine.txt"
run() { # NAME URL ORIGIN
  for i in $(seq "$RUNS"); do
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$ROOT/bench/onem2m.lua" "$2" -- "$3" get \
      >"$OUT/$1-run$i.txt"
    grep '^BENCH ' "$OUT/$1-run$i.txt" | sed "s/^/$1 /"
  done
}
run direct "$MN/cse-mn/bench/cnt/la" Cbench | tee "$OUT/results.txt"
run via-in "http://127.0.0.1:18191/~/id-mn/cse-mn/bench/cnt/la" Creader | tee -a "$OUT/results.txt"
median() { grep "^$1 " "$OUT/results.txt" | sed -E 's/.* rps=([0-9.]+).*/\1/' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
D=$(median direct); V=$(median via-in)
echo "median req/s: direct $D, via IN $V, ratio via/direct $(awk -v v="$V" -v d="$D" 'BEGIN{printf "%.3f", v/d}')" | tee "$OUT/summary.txt"
