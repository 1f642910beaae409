#!/usr/bin/env bash
# bench/dtls.sh: DTLS 1.2 PSK handshakes per second of Bastion's DTLS server (issue 16),
# next to `openssl s_server -dtls1_2` as the ceiling, with the same client.
#
# Usage:
#   bench/dtls.sh [--dtls-bench BIN] [--runs 5] [--seconds 10] [--warmup 1]
#                 [--pin pinned,unpinned] [--concurrency 1,8] [--max-wait 300]
#
# Servers: `dtls-bench serve` (crates/bastion-bench: Bastion's DtlsServer with its
# TlsServer and credential store, PSK bench@bastion.example bound to AE-ID Cbench, an
# echo application) on 127.0.0.1:18194, and `openssl s_server -dtls1_2 -nocert -psk …
# -cipher PSK-AES128-CCM8` on 127.0.0.1:18195 (single-threaded; it serves one
# association at a time, so it is measured at concurrency 1 only).
# Client: `dtls-bench handshake`: per attempt a fresh UDP socket, a full handshake with
# the cookie exchange, TLS_PSK_WITH_AES_128_CCM_8 (mandatory over DTLS, TS-0003 10.2), a
# random 16-byte PSK, close_notify. Runs alternate Bastion / s_server, --runs times each.
# Pinning (--pin): `pinned` runs each server with `taskset -c 0` and the client with
# `taskset -c 1`; `unpinned` lets the scheduler place them.
#
# Before each run the script waits (up to --max-wait seconds, default 300) while rustc is
# running; a run made while a build was still going is marked busy=1. A run during which other processes
# used more than 0.25 core is repeated up to twice.
#
# Output: bench/out/dtls-<timestamp>/: machine.txt, results.tsv, summary.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DTLS_BENCH=${DTLS_BENCH:-${CARGO_TARGET_DIR:-$ROOT/target}/release/dtls-bench}
RUNS=5
SECONDS_PER_RUN=10
WARMUP=1
PINS=pinned,unpinned
CONCS=1,8
MAX_WAIT=300
BASTION_PORT=18194
SSL_PORT=18195
KPSA_ID=bench@bastion.example

while [[ $# -gt 0 ]]; do
  case $1 in
    --dtls-bench) DTLS_BENCH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --pin) PINS=$2; shift 2 ;;
    --concurrency) CONCS=$2; shift 2 ;;
    --max-wait) MAX_WAIT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $DTLS_BENCH ]] || { echo "no dtls-bench at $DTLS_BENCH: cargo build --release -p bastion-bench --bin dtls-bench" >&2; exit 2; }
"$ROOT/scripts/openssl-cli-env" >/dev/null
IFS=, read -r -a PIN_LIST <<<"$PINS"
IFS=, read -r -a CONC_LIST <<<"$CONCS"

OUT="$ROOT/bench/out/dtls-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.log") 2>&1
WORK=$(mktemp -d /tmp/bastion-dtls-bench.XXXXXX)
BASTION_PID=
SSL_PID=
FEED_PID=
cleanup() {
  [[ -n $SSL_PID ]] && kill "$SSL_PID" 2>/dev/null || true
  [[ -n $FEED_PID ]] && kill "$FEED_PID" 2>/dev/null || true
  [[ -n $BASTION_PID ]] && kill "$BASTION_PID" 2>/dev/null || true
  local pid
  for pid in $SSL_PID $FEED_PID $BASTION_PID; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

{
  echo "date:    $(date -Is)"
  echo "nproc:   $(nproc)"
  echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel:  $(uname -r)"
  echo "openssl: $(openssl version) (s_server); Bastion and the client: vendored OpenSSL 3.6"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "dtls-bench: $DTLS_BENCH ($(stat -c %y "$DTLS_BENCH"))"
  echo "settings: runs=$RUNS seconds=$SECONDS_PER_RUN warmup=$WARMUP pins=$PINS concurrency=$CONCS"
} | tee "$OUT/machine.txt"

PSK_HEX=$(openssl rand -hex 16)
PSK=(--psk-identity "$KPSA_ID" --psk-hex "$PSK_HEX")

# $1: pinned|unpinned
start_servers() {
  local prefix=()
  [[ $1 == pinned ]] && prefix=(taskset -c 0)
  "${prefix[@]}" "$DTLS_BENCH" serve --listen "127.0.0.1:$BASTION_PORT" "${PSK[@]}" \
    >>"$OUT/bastion.log" 2>&1 &
  BASTION_PID=$!
  # stdin: a pipe that stays open and silent (s_server stops when its stdin ends).
  exec 7< <(sleep 100000)
  FEED_PID=$!
  "${prefix[@]}" openssl s_server -dtls1_2 -accept "127.0.0.1:$SSL_PORT" -nocert -quiet \
    -psk "$PSK_HEX" -psk_identity "$KPSA_ID" -cipher PSK-AES128-CCM8 <&7 >>"$OUT/s_server.log" 2>&1 &
  SSL_PID=$!
  exec 7<&-
  sleep 1
}
stop_servers() {
  kill "$BASTION_PID" "$SSL_PID" "$FEED_PID" 2>/dev/null || true
  wait "$BASTION_PID" "$SSL_PID" 2>/dev/null || true
  BASTION_PID= SSL_PID= FEED_PID=
}

wait_for_builds() {
  local waited=0
  while pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; do
    if (( waited >= MAX_WAIT )); then echo "  (a build is running after $MAX_WAIT s; measuring anyway)"; return 1; fi
    if (( waited == 0 )); then echo "  (waiting: cargo / rustc is running)"; fi
    sleep 5; waited=$((waited + 5))
  done
  return 0
}

CLK_TCK=$(getconf CLK_TCK)
printf 'pin\ttarget\tconcurrency\trun\trate\tok\terrors\tp50_us\tp99_us\tserver_cpu_us_per_op\tother_cores\tbusy\tnegotiated\tfirst_error\n' >"$OUT/results.tsv"


# $1 pin, $2 target label, $3 concurrency, $4 run, $5 server pid, $6 port
measure() {
  local pin=$1 target=$2 conc=$3 run=$4 pid=$5 port=$6
  local client=() busy before after m_before m_after t0 t1 line attempt
  [[ $pin == pinned ]] && client=(taskset -c 1)
  for attempt in 1 2 3; do
    busy=0
    wait_for_builds || busy=1
    before=$(cpu_ticks "$pid"); m_before=$(machine_busy_ticks); t0=$(date +%s.%N)
    line=$("${client[@]}" "$DTLS_BENCH" handshake --connect "127.0.0.1:$port" "${PSK[@]}" \
      --concurrency "$conc" --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" | grep '^BENCH ')
    after=$(cpu_ticks "$pid"); m_after=$(machine_busy_ticks); t1=$(date +%s.%N)
    local rate cpu_us c_ticks other
    rate=$(field rate "$line")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$rate" -v s="$SECONDS_PER_RUN" -v w="$WARMUP" \
      'BEGIN { n = r * (s + w); if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }')
    c_ticks=$(field client_ticks "$line")
    other=$(awk -v m=$((m_after - m_before)) -v t=$((after - before)) -v c="$c_ticks" -v hz="$CLK_TCK" \
      -v a="$t0" -v b="$t1" -v s="$SECONDS_PER_RUN" -v w="$WARMUP" \
      'BEGIN { o = (m - t - c * (s + w) / s) / hz / (b - a); if (o < 0) o = 0; printf "%.2f", o }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pin" "$target" "$conc" "$run" "$rate" \
      "$(field ok "$line")" "$(field errors "$line")" "$(field p50_us "$line")" "$(field p99_us "$line")" \
      "$cpu_us" "$other" "$busy" "$(field negotiated "$line")" "$(sed -E 's/.* first_error=(.*)/\1/' <<<"$line")" >"$WORK/row"
    if [[ $attempt == 3 ]] || awk -v o="$other" 'BEGIN { exit !(o <= 0.25) }'; then
      tee -a "$OUT/results.tsv" <"$WORK/row"
      break
    fi
    echo "  (other processes used $other cores: repeating $target run $run)"
  done
}

for pin in "${PIN_LIST[@]}"; do
  echo "=== $pin"
  start_servers "$pin"
  for run in $(seq 1 "$RUNS"); do
    for conc in "${CONC_LIST[@]}"; do
      measure "$pin" bastion "$conc" "$run" "$BASTION_PID" "$BASTION_PORT"
      # s_server serves one association at a time: concurrency 1 only.
      [[ $conc == 1 ]] && measure "$pin" s_server 1 "$run" "$SSL_PID" "$SSL_PORT"
    done
  done
  stop_servers
done

python3 - "$OUT/results.tsv" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for r in rows:
    groups.setdefault((r["pin"], r["target"], r["concurrency"]), []).append(r)
def med(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("", "-")]
    return statistics.median(v) if v else float("nan")
print("pin       target    conc  median/s   runs                                   p50us  p99us  srv-cpu-us/op  other  errors  busy")
for (pin, tgt, conc), rs in groups.items():
    runs = " / ".join(f"{float(r['rate']):.0f}" for r in rs)
    print(f"{pin:9} {tgt:9} {conc:>4}  {med(rs,'rate'):8.0f}   {runs:38} {med(rs,'p50_us'):6.0f} {med(rs,'p99_us'):6.0f} "
          f"{med(rs,'server_cpu_us_per_op'):13.1f}  {med(rs,'other_cores'):.2f}  {sum(int(r['errors']) for r in rs):6}  {sum(int(r['busy']) for r in rs)}")
print()
for pin in dict.fromkeys(k[0] for k in groups):
    a, b = groups.get((pin, "bastion", "1")), groups.get((pin, "s_server", "1"))
    if a and b:
        print(f"{pin:9} bastion/s_server at concurrency 1: rate ratio {med(a,'rate')/med(b,'rate'):.2f}; "
              f"CPU-cost ratio (s_server us/op / bastion us/op) {med(b,'server_cpu_us_per_op')/med(a,'server_cpu_us_per_op'):.2f}")
PY
echo "results: $OUT"
