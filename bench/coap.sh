#!/usr/bin/env bash
# bench/coap.sh: W1 over the CoAP binding (TS-0008, issue 16), over plain UDP and over
# DTLS-PSK, each beside a bare CoAP echo on the same transport, the ceiling: the echo
# reads only the message ID, token and rqi and answers a fixed ~300-byte 2.05.
#
# Usage:
#   bench/coap.sh [--runs 3] [--seconds 10] [--warmup 2] [--concurrency 8]
#                 [--targets bastion,echo] [--transports udp,dtls] [--mni 1000] [--no-build]
#
# Builds release `bastion` and `coap-bench` (crates/bastion-bench) unless --no-build.
# bastion: `bastion serve --listen 127.0.0.1:18096 --coap-listen 127.0.0.1:15683
#   --coaps-listen 127.0.0.1:15684` with a TLS-PSK listener ([tls], 127.0.0.1:18446) on a
#   fresh data directory, prepared by bench/setup.sh over HTTP (AE Cbench, container cnt
#   with mni, ACP granting Creader RETRIEVE+CREATE, Creader registered, one
#   contentInstance; every RSC checked). Per transport a warm-up and --runs runs of
#     coap-bench load --server ADDR --origin Creader --to cse-in/bench/cnt/la
#   (with --psk-identity/--psk-hex over DTLS: one association per task). Before the DTLS
#   runs (after the UDP ones, since a bound identity is refused over plain UDP) a PSK
#   credential bound to Creader is added with `bastion credentials add` (the server reads
#   it within a second).
# echo: `coap-bench echo` on 127.0.0.1:15693 (UDP) or 15694 (DTLS, the same DtlsServer
#   as Bastion's, the PSK bound to Creader), the same load generator against it.
# Pinning: the server (bastion or echo) on CPU 0, the load generator on CPU 1 (taskset).
#
# Output: bench/out/coap-<timestamp>/: machine.txt, console.log, results.tsv (every run),
# summary.txt (medians per target and transport, and bastion over echo), the server logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RUNS=3
SECONDS_PER_RUN=10
WARMUP=2
CONCURRENCY=8
TARGETS=bastion,echo
TRANSPORTS=udp,dtls
MNI=1000
BUILD=1
PORT=18096
TLS_PORT=18446
KPSA=coapbench@bastion.example
PSK_HEX=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
STORE_KEY=5a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0

while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --transports) TRANSPORTS=$2; shift 2 ;;
    --mni) MNI=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cargo build --release --locked -p bastion --bin bastion -p bastion-bench --bin coap-bench)
fi
BASTION=$TARGET/release/bastion
BENCH=$TARGET/release/coap-bench
[[ -x $BASTION && -x $BENCH ]] || { echo "no release bastion / coap-bench under $TARGET/release" >&2; exit 2; }
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
IFS=, read -r -a TRANSPORT_LIST <<<"$TRANSPORTS"

OUT="$ROOT/bench/out/coap-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.log") 2>&1
WORK=$(mktemp -d /tmp/bastion-coap-bench.XXXXXX)
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
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc running: $(pgrep -c -x rustc || true) processes"
  echo "bastion: $BASTION ($(stat -c %y "$BASTION"))"
  echo "settings: runs=$RUNS seconds=$SECONDS_PER_RUN warmup=$WARMUP concurrency=$CONCURRENCY transports=$TRANSPORTS mni=$MNI"
} | tee "$OUT/machine.txt"

wait_log() {
  for _ in $(seq 1 100); do
    grep -q "$2" "$1" && return 0
    sleep 0.1
  done
  echo "never logged: $2 ($1)" >&2
  return 1
}

start_bastion() {
  local data=$WORK/bastion-data
  rm -rf "$data"; mkdir -p "$data"
  (umask 077; printf '%s\n' "$STORE_KEY" >"$WORK/store.key"; printf '%s\n' "$PSK_HEX" >"$WORK/bench.psk")
  cat >"$WORK/bastion.toml" <<TOML
[tls]
listen = "127.0.0.1:$TLS_PORT"
frameworks = ["psk"]
credentials-key-file = "$WORK/store.key"
[coap]
listen = "127.0.0.1:15683"
tls-listen = "127.0.0.1:15684"
TOML
  taskset -c 0 "$BASTION" serve --config "$WORK/bastion.toml" --listen "127.0.0.1:$PORT" \
    --data-dir "$data" >"$OUT/bastion.log" 2>&1 &
  SERVER_PID=$!
  wait_log "$OUT/bastion.log" "serving CoAP requests over DTLS"
  "$ROOT/bench/setup.sh" "http://127.0.0.1:$PORT" cse-in "$MNI" >"$OUT/setup.log"
}

# Binds a PSK credential to Creader, after setup.sh registered Creader over plain HTTP and
# after the plain-UDP runs: a bound identity is refused (4106) outside its association.
bind_reader() {
  "$BASTION" credentials add --data-dir "$WORK/bastion-data" --key-file "$WORK/store.key" \
    --id "$KPSA" --psk-file "$WORK/bench.psk" --originator Creader >>"$OUT/setup.log"
  sleep 2
}

start_echo() {
  local psk=()
  if [[ $1 == dtls ]]; then psk=(--psk-identity "$KPSA" --psk-hex "$PSK_HEX"); fi
  local port=15693
  [[ $1 == dtls ]] && port=15694
  taskset -c 0 "$BENCH" echo --listen "127.0.0.1:$port" "${psk[@]}" >"$OUT/echo-$1.log" 2>&1 &
  SERVER_PID=$!
  wait_log "$OUT/echo-$1.log" "echoing"
}

# $1 target, $2 transport, $3 seconds, $4 warm-up seconds: prints the BENCH line.
measure() {
  local port psk=()
  case $1/$2 in
    bastion/udp) port=15683 ;;
    bastion/dtls) port=15684 ;;
    echo/udp) port=15693 ;;
    echo/dtls) port=15694 ;;
  esac
  if [[ $2 == dtls ]]; then psk=(--psk-identity "$KPSA" --psk-hex "$PSK_HEX"); fi
  taskset -c 1 "$BENCH" load --server "127.0.0.1:$port" --origin Creader \
    --to cse-in/bench/cnt/la "${psk[@]}" --concurrency "$CONCURRENCY" --seconds "$3" --warmup "$4"
}

printf 'target\ttransport\trun\trate\tp50_us\tp99_us\terrors\tfirst_error\n' >"$OUT/results.tsv"
run_runs() {
  measure "$1" "$2" "$WARMUP" 0 >/dev/null
  for run in $(seq 1 "$RUNS"); do
    line=$(measure "$1" "$2" "$SECONDS_PER_RUN" 1)
    echo "$1 $2 run$run: $line"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$run" \
      "$(field rate "$line")" "$(field p50_us "$line")" "$(field p99_us "$line")" \
      "$(field errors "$line")" "$(field first_error "$line")" >>"$OUT/results.tsv"
  done
}
for target in "${TARGET_LIST[@]}"; do
  case $target in
    bastion)
      start_bastion
      for transport in "${TRANSPORT_LIST[@]}"; do
        [[ $transport == dtls ]] && bind_reader
        run_runs bastion "$transport"
      done
      stop_server ;;
    echo)
      for transport in "${TRANSPORT_LIST[@]}"; do
        start_echo "$transport"
        run_runs echo "$transport"
        stop_server
      done ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
done

python3 - "$OUT/results.tsv" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
for (t, w) in sorted({(r["target"], r["transport"]) for r in rows}):
    runs = [r for r in rows if r["target"] == t and r["transport"] == w]
    rate = statistics.median(float(r["rate"]) for r in runs)
    p50 = statistics.median(float(r["p50_us"]) for r in runs) / 1000
    p99 = statistics.median(float(r["p99_us"]) for r in runs) / 1000
    errors = sum(int(r["errors"]) for r in runs)
    med[(t, w)] = rate
    print(f"{t:8} W1 over {w:4}: median {rate:,.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms, errors {errors}")
for w in sorted({w for (_, w) in med}):
    if ("bastion", w) in med and ("echo", w) in med:
        print(f"W1 over {w}: bastion / echo = {med[('bastion', w)] / med[('echo', w)]:.2f}")
PY
