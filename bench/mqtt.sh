#!/usr/bin/env bash
# bench/mqtt.sh: W1 and W2 over the MQTT binding (TS-0010, issue 16) through the broker on
# 127.0.0.1:1883, beside a bare MQTT request/response echo through the same broker, the
# ceiling: the echo reads only the rqi and answers a fixed ~300-byte response.
#
# Usage:
#   bench/mqtt.sh [--runs 3] [--seconds 10] [--warmup 2] [--concurrency 32]
#                 [--workloads w2,w1] [--targets bastion,echo] [--broker 127.0.0.1:1883]
#                 [--mni 1000] [--no-build]
#
# Builds release `bastion` and `mqtt-bench` (crates/bastion-bench) unless --no-build.
# bastion: `bastion serve --listen 127.0.0.1:18095 --mqtt mqtt://BROKER` on a fresh data
#   directory, CSE-ID /id-bench (so that no other CSE on the shared broker sees its
#   topics), prepared by bench/setup.sh over HTTP (AE Cbench, container cnt with mni,
#   ACP granting Creader RETRIEVE+CREATE, one contentInstance; every RSC checked). Then
#   per workload a warm-up and --runs runs of
#     mqtt-bench load --cse id-bench --origin Creader --workload wN --to TO
#   W1: RETRIEVE cse-in/bench/cnt/la; W2: CREATE a contentInstance (100-byte con) in
#   cse-in/bench/cnt (full at mni, so every create also evicts the oldest).
# echo: `mqtt-bench echo --cse bare-echo`, the same load generator against it.
# Pinning: the server (bastion or echo) on CPU 0, the load generator on CPU 1 (taskset);
# Mosquitto is the machine's service and runs where the scheduler puts it, for both.
#
# Output: bench/out/mqtt-<timestamp>/: machine.txt, console.log, results.tsv (every run),
# summary.txt (medians per target and workload, and bastion over echo), the server logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=3
SECONDS_PER_RUN=10
WARMUP=2
CONCURRENCY=32
WORKLOADS=w2,w1
TARGETS=bastion,echo
BROKER=127.0.0.1:1883
MNI=1000
BUILD=1
PORT=18095

while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --broker) BROKER=$2; shift 2 ;;
    --mni) MNI=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cargo build --release --locked -p bastion --bin bastion -p bastion-bench --bin mqtt-bench)
fi
BASTION=$TARGET/release/bastion
BENCH=$TARGET/release/mqtt-bench
[[ -x $BASTION && -x $BENCH ]] || { echo "no release bastion / mqtt-bench under $TARGET/release" >&2; exit 2; }
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
IFS=, read -r -a WORKLOAD_LIST <<<"$WORKLOADS"

OUT="$ROOT/bench/out/mqtt-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.log") 2>&1
WORK=$(mktemp -d /tmp/bastion-mqtt-bench.XXXXXX)
SERVER_PID=
stop_server() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=
}
trap 'stop_server; rm -rf "$WORK"' EXIT

{
  echo "date:    $(date -Is)"
  echo "nproc:   $(nproc)"
  echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel:  $(uname -r)"
  echo "broker:  $BROKER ($({ mosquitto -h 2>/dev/null || true; } | head -1))"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc running: $(pgrep -c -x rustc || true) processes"
  echo "bastion: $BASTION ($(stat -c %y "$BASTION"))"
  echo "settings: runs=$RUNS seconds=$SECONDS_PER_RUN warmup=$WARMUP concurrency=$CONCURRENCY workloads=$WORKLOADS mni=$MNI"
} | tee "$OUT/machine.txt"


start_bastion() {
  local data=$WORK/bastion-data
  rm -rf "$data"; mkdir -p "$data"
  taskset -c 0 "$BASTION" serve --listen "127.0.0.1:$PORT" --data-dir "$data" \
    --cse-id /id-bench --mqtt "mqtt://$BROKER" >"$OUT/bastion.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$PORT"
  for _ in $(seq 1 100); do
    grep -q "serving MQTT requests" "$OUT/bastion.log" && break
    sleep 0.1
  done
  grep -q "serving MQTT requests" "$OUT/bastion.log" || { echo "bastion never served MQTT" >&2; exit 1; }
  "$ROOT/bench/setup.sh" "http://127.0.0.1:$PORT" cse-in "$MNI" >"$OUT/setup.log"
}

start_echo() {
  taskset -c 0 "$BENCH" echo --broker "$BROKER" --cse bare-echo >"$OUT/echo.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    grep -q "echoing" "$OUT/echo.log" && break
    sleep 0.1
  done
}

# $1 target, $2 workload, $3 seconds, $4 warm-up seconds: prints the BENCH line.
measure() {
  local cse=id-bench to=cse-in/bench/cnt/la
  [[ $1 == echo ]] && cse=bare-echo
  [[ $2 == w2 ]] && to=cse-in/bench/cnt
  taskset -c 1 "$BENCH" load --broker "$BROKER" --cse "$cse" --origin Creader \
    --workload "$2" --to "$to" --concurrency "$CONCURRENCY" --seconds "$3" --warmup "$4"
}

printf 'target\tworkload\trun\trate\tp50_us\tp99_us\terrors\tfirst_error\n' >"$OUT/results.tsv"
for target in "${TARGET_LIST[@]}"; do
  case $target in
    bastion) start_bastion ;;
    echo) start_echo ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  for workload in "${WORKLOAD_LIST[@]}"; do
    measure "$target" "$workload" "$WARMUP" 0 >/dev/null
    for run in $(seq 1 "$RUNS"); do
      line=$(measure "$target" "$workload" "$SECONDS_PER_RUN" 1)
      echo "$target $workload run$run: $line"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$workload" "$run" \
        "$(field rate "$line")" "$(field p50_us "$line")" "$(field p99_us "$line")" \
        "$(field errors "$line")" "$(field first_error "$line")" >>"$OUT/results.tsv"
    done
  done
  stop_server
done

python3 - "$OUT/results.tsv" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
for (t, w) in sorted({(r["target"], r["workload"]) for r in rows}):
    runs = [r for r in rows if r["target"] == t and r["workload"] == w]
    rate = statistics.median(float(r["rate"]) for r in runs)
    p50 = statistics.median(float(r["p50_us"]) for r in runs) / 1000
    p99 = statistics.median(float(r["p99_us"]) for r in runs) / 1000
    errors = sum(int(r["errors"]) for r in runs)
    med[(t, w)] = rate
    print(f"{t:8} {w}: median {rate:,.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, errors {errors}")
for w in sorted({w for (_, w) in med}):
    if ("bastion", w) in med and ("echo", w) in med:
        print(f"{w}: bastion / echo = {med[('bastion', w)] / med[('echo', w)]:.2f}")
PY
