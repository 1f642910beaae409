#!/usr/bin/env bash
# bench/notify.sh: notifications delivered per second for one subscription on the W2
# container, while W2 (bench/load.sh: POST contentInstances as Creader) runs.
#
# Usage: bench/notify.sh [--runs 3] [--duration 10] [--connections 32] [--bastion BIN]
#
# Starts target/release/bastion (or --bastion BIN, to compare builds; CPU 0) and the counting target notify-sink (CPU 1, beside
# wrk), runs bench/setup.sh, subscribes Creader (which acpBench lets CREATE and RETRIEVE) to bench/cnt (net 3, chty 4) with the sink
# as `nu`, then per run: reads the sink's count, runs W2 with wrk for --duration seconds,
# waits until the count stops growing (at most 30 s), and reports
#   created/s   contentInstances created per second (wrk)
#   notified/s  notifications received during run + drain, over the run's duration
#   ratio       notified / created (1.0: every event delivered)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3 DURATION=10 CONNECTIONS=32 BASTION=target/release/bastion
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --bastion) BASTION=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if ! command -v wrk >/dev/null; then
  echo "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p bastion -p bastion-bench
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT
taskset -c 1 target/release/notify-sink --listen 127.0.0.1:18095 & PIDS+=($!)
taskset -c 0 "$BASTION" serve --listen 127.0.0.1:18091 --data-dir "$DATA" \
  --log warn >"$DATA.log" 2>&1 & PIDS+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18091/ && break; sleep 0.2; done
bench/setup.sh http://127.0.0.1:18091 cse-in 1000 >/dev/null
rsc=$(curl -s -D - -o /dev/null -X POST http://127.0.0.1:18091/cse-in/bench/cnt \
  -H 'X-M2M-Origin: Creader' -H 'X-M2M-RI: sub' -H 'X-M2M-RVI: 3' \
  -H 'Content-Type: application/json;ty=23' \
  --data-binary '{"m2m:sub":{"rn":"watch","nu":["http://127.0.0.1:18095/n"],"enc":{"net":[3],"chty":[4]}}}' \
  | tr -d '\r' | awk -F': *' 'tolower($1)=="x-m2m-rsc"{print $2}')
[[ $rsc == 2001 ]] || { echo "subscription failed: rsc $rsc" >&2; exit 1; }
count() { curl -s http://127.0.0.1:18095/count; }
echo -e "run\tcreated/s\tnotified/s\tratio"
for run in $(seq "$RUNS"); do
  before=$(count)
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/onem2m.lua \
    http://127.0.0.1:18091/cse-in/bench/cnt -- Creader cin)
  created=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
  last=-1; now=$(count)
  for _ in $(seq 60); do [[ $now == "$last" ]] && break; last=$now; sleep 0.5; now=$(count); done
  echo -e "$run\t$created\t$(( (now - before) / DURATION ))\t$(awk -v n="$((now - before))" -v c="$created" -v d="$DURATION" 'BEGIN{printf "%.3f", n/(c*d)}')"
done
