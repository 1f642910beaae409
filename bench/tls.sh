#!/usr/bin/env bash
# bench/tls.sh: TLS benchmark of Bastion's TLS listener (issue 4), next to `openssl s_server`.
#
# Usage:
#   bench/tls.sh [--bastion BIN] [--tls-bench BIN] [--runs 5] [--seconds 10] [--warmup 1]
#                [--pin pinned,unpinned] [--scenarios psk12,psk13,cert12,requests,requests-gcm12,requests-tls13]
#                [--concurrency 8] [--connections 32]
#
# Measures, in one run, with the same client (crates/bastion-bench `tls-bench`) against
# every server:
#   psk12     full TLS 1.2 handshakes/s, TLS_PSK_WITH_AES_128_CBC_SHA256
#   psk13     full TLS 1.3 handshakes/s, external PSK (psk_dhe_ke, P-256), TLS_AES_128_GCM_SHA256
#   cert12    full TLS 1.2 handshakes/s, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, P-256
#             ECDHE, server certificate from `bastion cert`, client certificate sent and
#             verified by both servers (mutual authentication, as oneM2M requires)
#   requests  GET /cse-in/bench/cnt/la as Cbench (W1 of bench/load.sh) over --connections
#             kept-alive connections: TLS 1.2 PSK (PSK-AES128-CBC-SHA256) against plain
#             HTTP, both on the same `bastion serve`
#   requests-gcm12  the same with TLS 1.2 PSK-AES128-GCM-SHA256
#   requests-tls13  the same with TLS 1.3 external PSK, TLS_AES_128_GCM_SHA256 (what a
#             default client, `bastion req` included, negotiates)
# Every handshake is a full one: the client never offers a session; Bastion has session
# caching and tickets off; s_server runs with -no_ticket and is never offered a session.
# Each handshake opens a fresh TCP connection, sends close_notify and waits for the
# server to close.
#
# Servers: `bastion serve` (plain on 127.0.0.1:18191, TLS on 127.0.0.1:18192, both
# frameworks, credentials store key in BASTION_CREDENTIALS_KEY, PSK bench@bastion.example
# bound to AE-ID Cbench) and `openssl s_server` on 127.0.0.1:18193 with the same suite,
# PSK, key and certificates (restarted per scenario; single-threaded).
# Pinning (--pin): `pinned` runs each server with `taskset -c 0` and the client with
# `taskset -c 1` (Bastion then starts one tokio worker: one core for each server, like
# s_server); `unpinned` lets the scheduler place everything (Bastion has 2 workers).
# Runs alternate Bastion / s_server (or TLS / plain), --runs times each.
#
# Before each run the script waits (up to 5 minutes) while rustc is running; a run made
# while a build was still going is marked busy=1 in results.tsv.
#
# Output: bench/out/tls-<timestamp>/: machine.txt, results.tsv (every run: rate, p50,
# p99, errors, server CPU time per operation from /proc/PID/stat, negotiated protocol),
# summary.txt (medians and ratios), server logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
BASTION=${BASTION:-/work/bench-bastion}
TLS_BENCH=${TLS_BENCH:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tls-bench}
RUNS=5
SECONDS_PER_RUN=10
WARMUP=1
PINS=pinned,unpinned
SCENARIOS=psk12,psk13,cert12,requests
CONC=8
CONNS=32
PLAIN_PORT=18191
TLS_PORT=18192
SSL_PORT=18193
KPSA_ID=bench@bastion.example
ORIGIN=Cbench

while [[ $# -gt 0 ]]; do
  case $1 in
    --bastion) BASTION=$2; shift 2 ;;
    --tls-bench) TLS_BENCH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --pin) PINS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x $BASTION ]] || { echo "no bastion binary at $BASTION (--bastion)" >&2; exit 2; }
[[ -x $TLS_BENCH ]] || { echo "no tls-bench at $TLS_BENCH: cargo build --release -p bastion-bench --bin tls-bench" >&2; exit 2; }
IFS=, read -r -a PIN_LIST <<<"$PINS"
IFS=, read -r -a SCEN_LIST <<<"$SCENARIOS"

OUT="$ROOT/bench/out/tls-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.log") 2>&1
WORK=$(mktemp -d /tmp/bastion-tls-bench.XXXXXX)
DATA="$WORK/data"
mkdir -p "$DATA"
BASTION_PID=
SSL_PID=
FEED_PID=
cleanup() {
  [[ -n $SSL_PID ]] && kill "$SSL_PID" 2>/dev/null || true
  [[ -n $FEED_PID ]] && kill "$FEED_PID" 2>/dev/null || true
  [[ -n $BASTION_PID ]] && kill "$BASTION_PID" 2>/dev/null || true
  # Only the servers: a bare `wait` would also wait for the `tee` above, which
  # waits for this shell's own output to close, and never returns.
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
  echo "openssl: $(openssl version)"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "bastion: $BASTION ($(stat -c %y "$BASTION"))"
  echo "settings: runs=$RUNS seconds=$SECONDS_PER_RUN warmup=$WARMUP pins=$PINS scenarios=$SCENARIOS concurrency=$CONC connections=$CONNS"
} | tee "$OUT/machine.txt"

# ------------------------------------------------------------------ credentials, certificates
export BASTION_CREDENTIALS_KEY
BASTION_CREDENTIALS_KEY=$(openssl rand -hex 32)
PSK_HEX=$(openssl rand -hex 16)
"$BASTION" cert ca --cn "Bench CA" --out-cert "$WORK/ca.pem" --out-key "$WORK/ca.key" >/dev/null
"$BASTION" cert issue --ca-cert "$WORK/ca.pem" --ca-key "$WORK/ca.key" \
  --id //bastion.example/id-in --dns localhost \
  --out-cert "$WORK/srv.pem" --out-key "$WORK/srv.key" >/dev/null
"$BASTION" cert issue --ca-cert "$WORK/ca.pem" --ca-key "$WORK/ca.key" \
  --id "//bastion.example/id-in/$ORIGIN" \
  --out-cert "$WORK/client.pem" --out-key "$WORK/client.key" >/dev/null
BASTION_PSK_HEX=$PSK_HEX "$BASTION" credentials add --data-dir "$DATA" --id "$KPSA_ID" \
  --originator "$ORIGIN" >/dev/null
cat >"$WORK/bastion.toml" <<EOF
[tls]
listen = "127.0.0.1:$TLS_PORT"
frameworks = ["psk", "certificate"]
certificate-file = "$WORK/srv.pem"
key-file = "$WORK/srv.key"
trust-anchor-files = ["$WORK/ca.pem"]
require-client-certificate = false
EOF


# $1: pinned|unpinned
start_bastion() {
  local prefix=()
  [[ $1 == pinned ]] && prefix=(taskset -c 0)
  "${prefix[@]}" "$BASTION" serve --config "$WORK/bastion.toml" --data-dir "$DATA" \
    --listen "127.0.0.1:$PLAIN_PORT" --log warn >>"$OUT/bastion.log" 2>&1 &
  BASTION_PID=$!
  wait_port "$PLAIN_PORT"
  wait_port "$TLS_PORT"
}
stop_bastion() { kill "$BASTION_PID"; wait "$BASTION_PID" 2>/dev/null || true; BASTION_PID=; }

# $1: pinned|unpinned, $2: scenario
start_s_server() {
  local prefix=() args=()
  [[ $1 == pinned ]] && prefix=(taskset -c 0)
  case $2 in
    psk12) args=(-psk "$PSK_HEX" -psk_identity "$KPSA_ID" -nocert -tls1_2 -cipher PSK-AES128-CBC-SHA256) ;;
    psk13) args=(-psk "$PSK_HEX" -psk_identity "$KPSA_ID" -nocert -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 -groups P-256) ;;
    cert12) args=(-cert "$WORK/srv.pem" -key "$WORK/srv.key" -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256
                  -groups P-256 -Verify 2 -CAfile "$WORK/ca.pem" -verify_return_error -verify_quiet) ;;
  esac
  # stdin: a pipe that stays open and silent (s_server stops when its stdin ends).
  exec 7< <(sleep 100000)
  FEED_PID=$!
  "${prefix[@]}" openssl s_server -accept "127.0.0.1:$SSL_PORT" -no_ticket -quiet "${args[@]}" \
    <&7 >>"$OUT/s_server.log" 2>&1 &
  SSL_PID=$!
  exec 7<&-
  wait_port "$SSL_PORT"
}
stop_s_server() {
  kill "$SSL_PID" "$FEED_PID" 2>/dev/null || true
  wait "$SSL_PID" 2>/dev/null || true
  SSL_PID= FEED_PID=
}

# Plain-HTTP setup for the request scenario: AE Cbench, container cnt, one instance.
setup_resources() {
  local base="http://127.0.0.1:$PLAIN_PORT/cse-in" h=(-s -o /dev/null -w '%{http_code}' -H 'X-M2M-RVI: 3'
    -H 'Accept: application/json' -H "X-M2M-Origin: $ORIGIN")
  local code
  code=$(curl "${h[@]}" -X POST "$base" -H 'X-M2M-RI: s1' -H 'Content-Type: application/json;ty=2' \
    -d "{\"m2m:ae\":{\"rn\":\"bench\",\"api\":\"Nbench\",\"rr\":false,\"srv\":[\"3\"]}}")
  [[ $code == 201 || $code == 409 ]] || { echo "AE create: HTTP $code" >&2; return 1; }
  code=$(curl "${h[@]}" -X POST "$base/bench" -H 'X-M2M-RI: s2' -H 'Content-Type: application/json;ty=3' \
    -d '{"m2m:cnt":{"rn":"cnt","mni":1000}}')
  [[ $code == 201 || $code == 409 ]] || { echo "container create: HTTP $code" >&2; return 1; }
  code=$(curl "${h[@]}" -X POST "$base/bench/cnt" -H 'X-M2M-RI: s3' -H 'Content-Type: application/json;ty=4' \
    -d "{\"m2m:cin\":{\"con\":\"$(printf 'x%.0s' $(seq 1 100))\"}}")
  [[ $code == 201 ]] || { echo "instance create: HTTP $code" >&2; return 1; }
}

wait_for_builds() {
  local waited=0
  while pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; do
    if (( waited == 0 )); then echo "  (waiting: cargo / rustc is running)"; fi
    if (( waited >= 300 )); then echo "  (still building after 300 s; measuring anyway)"; return 1; fi
    sleep 5; waited=$((waited + 5))
  done
  return 0
}

CLK_TCK=$(getconf CLK_TCK)

printf 'pin\tscenario\ttarget\trun\trate\tok\terrors\tp50_us\tp99_us\tserver_cpu_us_per_op\tserver_cores\tclient_cores\tother_cores\tbusy\tnegotiated\tfirst_error\n' >"$OUT/results.tsv"

# $1 pin, $2 scenario, $3 target label, $4 run, $5 server pid, rest: tls-bench arguments
measure() {
  local pin=$1 scen=$2 target=$3 run=$4 pid=$5; shift 5
  local busy client=() before after line attempt
  [[ $pin == pinned ]] && client=(taskset -c 1)
  # A run during which other processes used more than 0.25 of a core is repeated (twice
  # at most; the last attempt is kept either way and its other_cores column shows it).
  for attempt in 1 2 3; do
  busy=0
  wait_for_builds || busy=1
  local m_before m_after t0 t1
  before=$(cpu_ticks "$pid"); m_before=$(machine_busy_ticks); t0=$(date +%s.%N)
  line=$("${client[@]}" "$TLS_BENCH" "$@" --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" | grep '^BENCH ')
  after=$(cpu_ticks "$pid"); m_after=$(machine_busy_ticks); t1=$(date +%s.%N)
  local ok rate
  ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
  rate=$(sed -E 's/.* rate=([0-9.]+).*/\1/' <<<"$line")
  # CPU time of the server over warm-up + run, divided by the operations of the whole span
  # (rate x (warm-up + run) is the estimate of that count).
  local cpu_us
  cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$rate" -v s="$SECONDS_PER_RUN" -v w="$WARMUP" \
    'BEGIN { n = r * (s + w); if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }')
  # Cores in use during the run (warm-up included): the server, the client (counted
  # window only) and everything else on the machine (other users' builds and tests).
  local c_ticks srv_cores cli_cores other_cores
  c_ticks=$(sed -E 's/.* client_ticks=([0-9]+).*/\1/' <<<"$line")
  srv_cores=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", t / hz / (b - a) }')
  cli_cores=$(awk -v t="$c_ticks" -v hz="$CLK_TCK" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%.2f", t / hz / s }')
  other_cores=$(awk -v m=$((m_after - m_before)) -v t=$((after - before)) -v c="$c_ticks" -v hz="$CLK_TCK" \
    -v a="$t0" -v b="$t1" -v s="$SECONDS_PER_RUN" -v w="$WARMUP" \
    'BEGIN { o = (m - t - c * (s + w) / s) / hz / (b - a); if (o < 0) o = 0; printf "%.2f", o }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pin" "$scen" "$target" "$run" "$rate" "$ok" \
    "$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")" \
    "$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")" \
    "$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")" \
    "$cpu_us" "$srv_cores" "$cli_cores" "$other_cores" "$busy" \
    "$(sed -E 's/.* negotiated=([^ ]+).*/\1/' <<<"$line")" \
    "$(sed -E 's/.* first_error=(.*)/\1/' <<<"$line")" >"$WORK/row"
  if [[ $attempt == 3 ]] || awk -v o="$other_cores" 'BEGIN { exit !(o <= 0.25) }'; then
    tee -a "$OUT/results.tsv" <"$WORK/row"
    break
  fi
  echo "  (other processes used $other_cores cores: repeating $target run $run)"
  done
}

PSK=(--psk-identity "$KPSA_ID" --psk-hex "$PSK_HEX")
hs_args() {
  case $1 in
    psk12) echo "--tls12 --cipher PSK-AES128-CBC-SHA256" ;;
    psk13) echo "--tls13 --ciphersuites TLS_AES_128_GCM_SHA256 --groups P-256" ;;
    cert12) echo "--tls12 --cipher ECDHE-ECDSA-AES128-SHA256 --groups P-256 --ca $WORK/ca.pem --cert $WORK/client.pem --key $WORK/client.key" ;;
  esac
}

for pin in "${PIN_LIST[@]}"; do
  echo "=== $pin"
  start_bastion "$pin"
  setup_resources
  for scen in "${SCEN_LIST[@]}"; do
    echo "--- $pin $scen"
    if [[ $scen == requests* ]]; then
      case $scen in
        requests) suite=(--tls12 --cipher PSK-AES128-CBC-SHA256) ;;
        requests-gcm12) suite=(--tls12 --cipher PSK-AES128-GCM-SHA256) ;;
        requests-tls13) suite=(--tls13 --ciphersuites TLS_AES_128_GCM_SHA256 --groups P-256) ;;
        *) echo "unknown scenario $scen" >&2; exit 2 ;;
      esac
      for run in $(seq 1 "$RUNS"); do
        measure "$pin" "$scen" bastion-tls "$run" "$BASTION_PID" requests \
          --url "https://127.0.0.1:$TLS_PORT/cse-in/bench/cnt/la" --origin "$ORIGIN" \
          --connections "$CONNS" "${PSK[@]}" "${suite[@]}"
        measure "$pin" "$scen" bastion-plain "$run" "$BASTION_PID" requests \
          --url "http://127.0.0.1:$PLAIN_PORT/cse-in/bench/cnt/la" --origin "$ORIGIN" \
          --connections "$CONNS"
      done
      continue
    fi
    start_s_server "$pin" "$scen"
    extra=()
    [[ $scen == psk* ]] && extra=("${PSK[@]}")
    # shellcheck disable=SC2207
    args=($(hs_args "$scen"))
    for run in $(seq 1 "$RUNS"); do
      measure "$pin" "$scen" bastion "$run" "$BASTION_PID" handshake \
        --connect "127.0.0.1:$TLS_PORT" --concurrency "$CONC" "${args[@]}" "${extra[@]}"
      measure "$pin" "$scen" s_server "$run" "$SSL_PID" handshake \
        --connect "127.0.0.1:$SSL_PORT" --concurrency "$CONC" "${args[@]}" "${extra[@]}"
    done
    stop_s_server
  done
  stop_bastion
done

# ------------------------------------------------------------------ summary
python3 - "$OUT/results.tsv" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for r in rows:
    groups.setdefault((r["pin"], r["scenario"], r["target"]), []).append(r)
def med(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("", "-")]
    return statistics.median(v) if v else float("nan")
print("pin       scenario  target          median/s   runs                                   p50us  p99us  srv-cpu-us/op  srv/cli/other cores  errors  busy")
for (pin, scen, tgt), rs in groups.items():
    runs = " / ".join(f"{float(r['rate']):.0f}" for r in rs)
    print(f"{pin:9} {scen:9} {tgt:14} {med(rs,'rate'):10.0f}   {runs:38} {med(rs,'p50_us'):6.0f} {med(rs,'p99_us'):6.0f} "
          f"{med(rs,'server_cpu_us_per_op'):13.1f}  {med(rs,'server_cores'):.2f}/{med(rs,'client_cores'):.2f}/{med(rs,'other_cores'):.2f}       {sum(int(r['errors']) for r in rs):6}  {sum(int(r['busy']) for r in rs)}")
print()
for pin in dict.fromkeys(k[0] for k in groups):
    for scen, a, b, target in [("psk12", "bastion", "s_server", 0.80), ("psk13", "bastion", "s_server", 0.80),
                               ("cert12", "bastion", "s_server", 0.80), ("requests", "bastion-tls", "bastion-plain", 0.85),
                               ("requests-gcm12", "bastion-tls", "bastion-plain", 0.85),
                               ("requests-tls13", "bastion-tls", "bastion-plain", 0.85)]:
        if (pin, scen, a) in groups and (pin, scen, b) in groups:
            ga, gb = groups[(pin, scen, a)], groups[(pin, scen, b)]
            ratio = med(ga, "rate") / med(gb, "rate")
            cpu = med(gb, "server_cpu_us_per_op") / med(ga, "server_cpu_us_per_op")
            print(f"{pin:9} {scen:9} {a}/{b}: rate ratio {ratio:.2f} (target >= {target:.2f}: "
                  f"{'met' if ratio >= target else 'MISSED'}); CPU-cost ratio ({b} us/op / {a} us/op) {cpu:.2f}")
PY
echo "results: $OUT"
