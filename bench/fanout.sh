#!/usr/bin/env bash
# bench/fanout.sh: group fan-out latency (issue 5). Sequential `GET <group>/fopt/la` on a
# group of --members containers (each holding one instance), against `GET cnt/la` of one
# member as the baseline, both as the containers' owner.
#
# Usage: bench/fanout.sh [--runs 3] [--requests 200] [--members 100]
#
# Starts target/release/bastion on 127.0.0.1:18297 (plain HTTP, audit off) pinned to CPU 0,
# curl pinned to CPU 1, one request at a time, keep-alive off (curl per request; its
# `time_total` excludes process start). Prints p50/p99 in ms per run and the medians of
# the runs. Output in bench/out/fanout-<timestamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
REQUESTS=200
MEMBERS=100
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --members) MEMBERS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -p bastion)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/bastion
OUT=$ROOT/bench/out/fanout-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/data"
PID=
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

printf '[audit]\nenabled = false\n' >"$OUT/cse.toml"
taskset -c 0 "$BIN" serve --config "$OUT/cse.toml" --listen 127.0.0.1:18297 \
  --data-dir "$OUT/data" --log warn 2>"$OUT/cse.log" &
PID=$!
CSE=http://127.0.0.1:18297
for _ in $(seq 50); do curl -s -o /dev/null "$CSE/" && break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null || { echo "the CSE did not start:" >&2; cat "$OUT/cse.log" >&2; exit 1; }

RI=0
req() { # method path ty body
  RI=$((RI + 1))
  local args=(-s -X "$1" "$CSE$2" -H 'X-M2M-RVI: 3' -H 'Accept: application/json'
    -H 'X-M2M-Origin: Cbench' -H "X-M2M-RI: s$RI")
  if [ -n "${3:-}" ]; then args+=(-H "Content-Type: application/json;ty=$3" -d "$4"); fi
  curl "${args[@]}"
}

req POST /cse-in 2 '{"m2m:ae":{"rn":"bench","api":"Nbench","rr":false,"srv":["3"]}}' >/dev/null
MID=()
for i in $(seq 1 "$MEMBERS"); do
  req POST /cse-in/bench 3 "{\"m2m:cnt\":{\"rn\":\"c$i\"}}" >/dev/null
  req POST "/cse-in/bench/c$i" 4 '{"m2m:cin":{"con":"21.5"}}' >/dev/null
  MID+=("\"cse-in/bench/c$i\"")
done
LIST=$(IFS=,; echo "${MID[*]}")
req POST /cse-in/bench 9 "{\"m2m:grp\":{\"rn\":\"g\",\"mnm\":$MEMBERS,\"mid\":[$LIST]}}" >/dev/null
CHECK=$(req GET /cse-in/bench/g/fopt/la | python3 -c 'import json,sys; r=json.load(sys.stdin)["m2m:agr"]["m2m:rsp"]; print(len(r), sum(e["rsc"]==2000 for e in r))')
echo "fan-out check (entries, 2000s): $CHECK" | tee "$OUT/summary.txt"

measure() { # name path run
  local file="$OUT/$1-$3.txt"
  for i in $(seq 1 "$REQUESTS"); do
    taskset -c 1 curl -s -o /dev/null -w '%{time_total}\n' "$CSE$2" -H 'X-M2M-RVI: 3' \
      -H 'Accept: application/json' -H 'X-M2M-Origin: Cbench' -H "X-M2M-RI: m$i"
  done >"$file"
  python3 - "$file" <<'PY'
import sys
xs = sorted(float(l) * 1000 for l in open(sys.argv[1]) if l.strip())
pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
print(f"{pick(0.5):.2f} {pick(0.99):.2f}")
PY
}

for name in fanout single; do
  path=/cse-in/bench/g/fopt/la
  [ "$name" = single ] && path=/cse-in/bench/c1/la
  measure "$name" "$path" warm >/dev/null
  for run in $(seq 1 "$RUNS"); do
    echo "$name run $run p50/p99 ms: $(measure "$name" "$path" "$run")"
  done
done | tee -a "$OUT/summary.txt"
python3 - "$OUT/summary.txt" <<'PY' | tee -a "$OUT/summary.txt"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if " run " in line:
        name = line.split()[0]
        p50, p99 = map(float, line.rsplit(":", 1)[1].split())
        runs.setdefault(name, []).append((p50, p99))
for name, xs in runs.items():
    print(f"{name}: median p50 {statistics.median(x[0] for x in xs):.2f} ms, "
          f"median p99 {statistics.median(x[1] for x in xs):.2f} ms")
PY
