#!/usr/bin/env bash
# bench/enrol.sh: enrolments per second against `bastion mef` (issue 15), beside bare
# TLS-PSK handshakes per second on the same listener with the same keys, the expected
# ceiling: one enrolment is one such handshake plus the exchange and a durable record.
#
# Usage:
#   bench/enrol.sh [--enrolees 8] [--runs 5] [--seconds 10] [--warmup 1]
#                  [--key-stores none,file,pkcs11] [--data-on disk,shm] [--pin pinned|unpinned]
#                  [--no-build]
#
# Builds release `bastion` and `enrol-bench` (crates/bastion-bench) unless --no-build,
# provisions --enrolees KpmIDs (random Kpms, one enrolee profile each) in a fresh MEF
# credential store, then for every key store x data location and every run starts a
# fresh `bastion mef` (empty enrolment store) on 127.0.0.1:18444 and measures, one after
# the other with the same enrolees:
#   handshake  enrol-bench --mode handshake: TLS-PSK handshake with a Kpm, close
#   enrol      enrol-bench --mode enrol: handshake, Ke export, indications (2000), final
#              (2001 once the record is durable: sealed file rewritten, fsync'd, renamed)
# Key stores ([mef] key-store): none (Ke sealed in the record), file (the encrypted file
# store, itself rewritten and fsync'd per enrolment), pkcs11 (a SoftHSM2 token created
# for this run under the work directory, emptied before every run; skipped when
# softhsm2-util is missing).
# Data location (--data-on): disk (a directory under /tmp on the root filesystem) or shm
# (/dev/shm, where fsync costs nothing): the difference is what durability costs.
# Pinning: `pinned` runs the MEF on CPU 0 and the client on CPU 1 (taskset).
#
# Output: bench/out/enrol-<timestamp>/: machine.txt, results.tsv (every run: rate, p50,
# p99, errors, MEF CPU time per operation, records in the store, its size), summary.txt
# (medians, and enrolments/s over handshakes/s), mef logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ENROLEES=8
RUNS=5
SECONDS_PER_RUN=10
WARMUP=1
KEY_STORES=none,file
DATA_ON=disk
PIN=pinned
BUILD=1
PORT=18444
FQDN=mef.bench.example

while [[ $# -gt 0 ]]; do
  case $1 in
    --enrolees) ENROLEES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --key-stores) KEY_STORES=$2; shift 2 ;;
    --data-on) DATA_ON=$2; shift 2 ;;
    --pin) PIN=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cargo build --release --locked -p bastion --bin bastion -p bastion-bench --bin enrol-bench)
fi
BASTION=$TARGET/release/bastion
BENCH=$TARGET/release/enrol-bench
[[ -x $BASTION && -x $BENCH ]] || { echo "no release bastion / enrol-bench under $TARGET/release" >&2; exit 2; }
IFS=, read -r -a STORE_LIST <<<"$KEY_STORES"
IFS=, read -r -a DATA_LIST <<<"$DATA_ON"

OUT="$ROOT/bench/out/enrol-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.log") 2>&1
WORK=$(mktemp -d /tmp/bastion-enrol-bench.XXXXXX)
SHM=$(mktemp -d /dev/shm/bastion-enrol-bench.XXXXXX)
MEF_PID=
cleanup() {
  if [[ -n $MEF_PID ]]; then kill "$MEF_PID" 2>/dev/null || true; wait "$MEF_PID" 2>/dev/null || true; fi
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT

{
  echo "date:    $(date -Is)"
  echo "nproc:   $(nproc)"
  echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "kernel:  $(uname -r)"
  echo "disk:    $(df -T /tmp | awk 'NR==2 {print $1, $2}')"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc running: $(pgrep -c -x rustc || true) processes"
  echo "bastion: $BASTION ($(stat -c %y "$BASTION"))"
  echo "settings: enrolees=$ENROLEES runs=$RUNS seconds=$SECONDS_PER_RUN warmup=$WARMUP key-stores=$KEY_STORES data-on=$DATA_ON pin=$PIN"
} | tee "$OUT/machine.txt"

# ------------------------------------------------------------------ enrolees, configuration
export BASTION_CREDENTIALS_KEY
BASTION_CREDENTIALS_KEY=$(openssl rand -hex 32)
TEMPLATE=$WORK/template
mkdir -p "$TEMPLATE"
: >"$WORK/enrolees.txt"
{
  cat <<EOF
[mef]
fqdn = "$FQDN"
listen = "127.0.0.1:$PORT"
data-dir = "@DATA@"
@KEYSTORE@

[[mef.target]]
name = "cse"
id = "/id-in"
uri = "https://127.0.0.1:8443/cse-in"
suid = 22
EOF
  for i in $(seq 1 "$ENROLEES"); do
    kpm=$(openssl rand -hex 32)
    id="dev$i@factory.bench.example"
    echo "$id $kpm" >>"$WORK/enrolees.txt"
    BASTION_PSK_HEX=$kpm "$BASTION" credentials add --store "$TEMPLATE/credentials.store" --id "$id" >/dev/null
    printf '\n[[mef.enrolee]]\nkpm-id = "%s"\nenrolee-id = "Cbench%d"\ntargets = ["cse"]\nlifetime-seconds = 86400\n' "$id" "$i"
  done
} >"$WORK/mef.toml.in"

# A SoftHSM2 token of this run only (never the test token).
PKCS11_MODULE=
if printf '%s\n' "${STORE_LIST[@]}" | grep -qx pkcs11; then
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do [[ -f $m ]] && PKCS11_MODULE=$m && break; done
  if command -v softhsm2-util >/dev/null && [[ -n $PKCS11_MODULE ]]; then
    mkdir -p "$WORK/softhsm/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/softhsm/tokens" >"$WORK/softhsm/softhsm2.conf"
    export SOFTHSM2_CONF=$WORK/softhsm/softhsm2.conf BASTION_PKCS11_PIN=bench-pin
  else
    echo "pkcs11: softhsm2 not installed (scripts/softhsm-env installs it); skipped"
    STORE_LIST=("${STORE_LIST[@]/pkcs11}")
  fi
fi


# $1 key store, $2 data location, $3 run: a fresh MEF on an empty enrolment store.
start_mef() {
  local base=$WORK
  [[ $2 == shm ]] && base=$SHM
  DATA=$base/mef-$1-$3
  rm -rf "$DATA"; mkdir -p "$DATA"; chmod 700 "$DATA"
  cp "$TEMPLATE/credentials.store" "$DATA/"
  local ks=""
  case $1 in
    file) ks="key-store = \"file:$DATA/keys.store\""
          "$BASTION" keystore init --store "file:$DATA/keys.store" >/dev/null ;;
    pkcs11) ks="key-store = \"pkcs11:$PKCS11_MODULE?token=mef-bench\""
            # An empty token per run, as the enrolment store is: SoftHSM2's cost grows
            # with the objects a token holds.
            softhsm2-util --delete-token --token mef-bench >/dev/null 2>&1 || true
            softhsm2-util --init-token --free --label mef-bench --so-pin bench-so-pin --pin bench-pin >/dev/null ;;
  esac
  sed -e "s|@DATA@|$DATA|" -e "s|@KEYSTORE@|$ks|" "$WORK/mef.toml.in" >"$WORK/mef.toml"
  local prefix=()
  [[ $PIN == pinned ]] && prefix=(taskset -c 0)
  "${prefix[@]}" "$BASTION" mef --config "$WORK/mef.toml" --log warn >>"$OUT/mef-$1-$2.log" 2>&1 &
  MEF_PID=$!
  wait_port "$PORT"
}
stop_mef() { kill "$MEF_PID"; wait "$MEF_PID" 2>/dev/null || true; MEF_PID=; }

CLK_TCK=$(getconf CLK_TCK)
printf 'key_store\tdata_on\tmode\trun\trate\tok\terrors\tp50_us\tp99_us\tmef_cpu_us_per_op\trecords\tstore_bytes\tbusy\tfirst_error\n' >"$OUT/results.tsv"

# $1 key store, $2 data location, $3 mode, $4 run
measure() {
  local client=() before after line busy=0
  [[ $PIN == pinned ]] && client=(taskset -c 1)
  pgrep -x rustc >/dev/null && busy=1
  before=$(cpu_ticks "$MEF_PID")
  line=$("${client[@]}" "$BENCH" --connect "127.0.0.1:$PORT" --enrolees "$WORK/enrolees.txt" \
    --fqdn "$FQDN" --mode "$3" --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" | grep '^BENCH ')
  after=$(cpu_ticks "$MEF_PID")
  local rate records=- bytes=-
  rate=$(sed -E 's/.* rate=([0-9.]+).*/\1/' <<<"$line")
  if [[ $3 == enrol ]]; then
    records=$("$BASTION" mef list --config "$WORK/mef.toml" | grep -vc '^revoked-enrolee' || true)
    bytes=$(stat -c %s "$DATA/enrolments.sealed")
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$rate" \
    "$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")" \
    "$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")" \
    "$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")" \
    "$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")" \
    "$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v r="$rate" -v s="$SECONDS_PER_RUN" -v w="$WARMUP" \
        'BEGIN { n = r * (s + w); if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "-" }')" \
    "$records" "$bytes" "$busy" \
    "$(sed -E 's/.* first_error=(.*)/\1/' <<<"$line")" | tee -a "$OUT/results.tsv"
}

for ks in "${STORE_LIST[@]}"; do
  [[ -z $ks ]] && continue
  for where in "${DATA_LIST[@]}"; do
    echo "=== key store $ks, data on $where"
    for run in $(seq 1 "$RUNS"); do
      start_mef "$ks" "$where" "$run"
      measure "$ks" "$where" handshake "$run"
      measure "$ks" "$where" enrol "$run"
      stop_mef
      rm -rf "$DATA"
    done
  done
done

python3 - "$OUT/results.tsv" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for r in rows:
    groups.setdefault((r["key_store"], r["data_on"], r["mode"]), []).append(r)
def med(rs, k):
    v = [float(r[k]) for r in rs if r[k] not in ("", "-")]
    return statistics.median(v) if v else float("nan")
print("key-store data  mode       median/s  runs                                p50us   p99us  mef-cpu-us/op  records  errors busy")
for (ks, where, mode), rs in groups.items():
    runs = " / ".join(f"{float(r['rate']):.0f}" for r in rs)
    print(f"{ks:9} {where:5} {mode:9} {med(rs,'rate'):9.0f}  {runs:35} {med(rs,'p50_us'):6.0f} {med(rs,'p99_us'):7.0f} "
          f"{med(rs,'mef_cpu_us_per_op'):13.0f}  {med(rs,'records'):7.0f} {sum(int(r['errors']) for r in rs):6} {sum(int(r['busy']) for r in rs):4}")
print()
for (ks, where, mode), rs in groups.items():
    if mode == "enrol" and (ks, where, "handshake") in groups:
        h = med(groups[(ks, where, "handshake")], "rate")
        print(f"{ks:9} {where:5} enrolments/s over handshakes/s: {med(rs, 'rate') / h:.2f}")
PY
echo "results: $OUT"
