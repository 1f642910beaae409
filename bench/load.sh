#!/usr/bin/env bash
# bench/load.sh: HTTP load benchmark of oneM2M CSEs (Bastion, ACME) against a bare axum ceiling.
#
# Usage:
#   bench/load.sh [--targets bastion,acme-mem,acme-file,bare] [--runs 3] [--duration 10]
#                 [--workloads w2,w1,w3] [--connections 32] [--timeout 5s] [--mni 1000]
#                 [--warmup 2] [--cse-name cse-in] [--nice 0] [--no-install]
#   e.g. bench/load.sh --targets acme-mem,acme-file,bare --runs 3 --duration 10
#
# Targets (each started fresh, on loopback only, pinned to CPU 0 with `taskset -c 0`):
#   bastion         target/release/bastion serve --listen 127.0.0.1:18091 --data-dir DIR
#                   (built with `cargo build --release -p bastion`; skipped with a message if
#                   the build fails or the server does not answer). CSE name: --cse-name.
#   acme-mem        ACME (pip package acmecse), in-memory storage (--db-type memory)
#   acme-file       ACME, TinyDB file storage (--db-type tinydb --db-reset)
#   acme-mem-wsgi   (optional, not in the default list) acme-mem / acme-file served by
#   acme-file-wsgi  waitress (--http-wsgi, keeps connections alive) instead of ACME's default
#                   Flask/werkzeug server, which answers "Connection: close" to every request
#   bare            crates/bastion-bench bare-axum: 200 + fixed ~300-byte JSON to anything
#
# --bastion-bin PATH measures that bastion binary instead of building target/release/bastion
# (e.g. a release build of an earlier commit, to compare two builds in one run).
#
# Per target: start, wait until it answers, run bench/setup.sh (AE Cbench, container cnt
# with mni=--mni, ACP granting Creader RETRIEVE+CREATE linked via the container's acpi, one
# contentInstance; every step's RSC checked; if the CSE answers 4106 to the unregistered
# Creader, setup registers Creader as an AE), then run each workload once for --warmup
# seconds (not recorded) and --runs times for --duration seconds with
#   taskset -c 1 wrk -t1 -c32 -d<duration>s --latency -s bench/onem2m.lua URL -- ORIGIN KIND
# Workloads (run in the order given; default w2 first so that W1 reads `la` from a container
# that is full and evicting, i.e. the steady state):
#   w1  GET  /<cse>/bench/cnt/la   as Creader
#   w2  POST /<cse>/bench/cnt      as Creader, application/json;ty=4, {"m2m:cin":{"con":<100 B>}}
#       (the container holds at most --mni instances: once full, every CREATE evicts the oldest)
#   w3  GET  /<cse>                as CAdmin
#   w1c, w2c  W1 and W2 in CBOR (Accept and Content-Type application/cbor); bastion only
# `bare` gets the same requests (it answers anything) and needs no setup.
#
# Output: bench/out/<timestamp>/ holds machine.txt, console.log, per target the server log
# and every raw wrk output (<target>/<workload>-run<N>.txt), results.tsv (one line per run)
# and summary.txt: median req/s, p50, p99, errors per target and workload, and ratios to
# bare. Exit status: 0 if every selected target was measured or skipped (bastion not
# buildable / not answering), 1 if a target failed (setup error, server died).
#
# --nice N (e.g. -10, needs root) runs server and wrk at that niceness, to shield the
# measurement a little from other work on the machine (e.g. concurrent cargo builds).
# Results are only comparable when the machine is otherwise idle: the load average is
# printed before and after each target, check it.
#
# Installs what is missing: wrk (apt-get), acmecse==$ACME_VERSION (pip), curl/taskset.
# Every server started here is stopped on exit (also on Ctrl-C).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
BENCH="$ROOT/bench"

TARGETS=bastion,acme-mem,acme-file,bare
WORKLOADS=w2,w1,w3
RUNS=3
DURATION=10
WARMUP=2
NICE=0
CONNS=32
THREADS=1
TIMEOUT=5s
MNI=1000
CON_BYTES=100
BODY_BYTES=300
BASTION_CSE_NAME=${BASTION_CSE_NAME:-cse-in}
ACME_VERSION=${ACME_VERSION:-2026.5.3}
INSTALL=1
SERVER_CPU=0
WRK_CPU=1
READER=Creader
ADMIN=CAdmin


while [[ $# -gt 0 ]]; do
  case $1 in
    --targets) TARGETS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --mni) MNI=$2; shift 2 ;;
    --cse-name) BASTION_CSE_NAME=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --bastion-bin) BASTION_BIN_GIVEN=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
IFS=, read -r -a WORKLOAD_LIST <<<"$WORKLOADS"
for t in "${TARGET_LIST[@]}"; do
  case $t in bastion|acme-mem|acme-file|acme-mem-wsgi|acme-file-wsgi|bare) ;;
    *) echo "unknown target: $t" >&2; exit 2 ;; esac
done
for w in "${WORKLOAD_LIST[@]}"; do
  case $w in w1|w2|w3|w1c|w2c) ;; *) echo "unknown workload: $w" >&2; exit 2 ;; esac
done

OUT="$BENCH/out/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/console.log") 2>&1
printf 'target\tworkload\trun\trps\tp50_us\tp99_us\terrors\trequests\tfirst_error\n' >"$OUT/results.tsv"
: >"$OUT/status.tsv"
FAILED=0
# PIN_SERVER / PIN_WRK: command prefixes (CPU pinning, optional niceness); each execs the next.
PIN_SERVER=(taskset -c "$SERVER_CPU" nice -n "$NICE")
PIN_WRK=(taskset -c "$WRK_CPU" nice -n "$NICE")

# ---------------------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() {
  if [[ $INSTALL == 0 ]]; then echo "missing $* and --no-install given" >&2; exit 1; fi
  if [[ $APT_UPDATED == 0 ]]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || { echo "installing wrk"; apt_install wrk; }
command -v curl >/dev/null || apt_install curl
command -v taskset >/dev/null || apt_install util-linux
command -v python3 >/dev/null || apt_install python3
PY=$(python3 -c 'import sys; print(sys.executable)')
if [[ ",$TARGETS," == *",acme-"* ]]; then
  if ! "$PY" -c 'import acmecse' 2>/dev/null; then
    [[ $INSTALL == 1 ]] || { echo "acmecse missing and --no-install given" >&2; exit 1; }
    echo "installing acmecse==$ACME_VERSION"
    "$PY" -m pip install -q "acmecse==$ACME_VERSION"
  fi
fi

# ---------------------------------------------------------------------------- machine
{
  echo "date:     $(date -Is)"
  echo "nproc:    $(nproc)"
  echo "kernel:   $(uname -r)"
  echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
  echo "wrk:      $(wrk -v 2>&1 | head -1)"
  [[ ",$TARGETS," == *",acme-"* ]] && echo "acmecse:  $("$PY" -m pip show acmecse 2>/dev/null | awk '/^Version/{print $2}') on $("$PY" -V 2>&1)"
  echo "settings: targets=$TARGETS workloads=$WORKLOADS runs=$RUNS duration=${DURATION}s warmup=${WARMUP}s" \
       "wrk -t$THREADS -c$CONNS --timeout $TIMEOUT, server cpu $SERVER_CPU, wrk cpu $WRK_CPU, nice $NICE, mni=$MNI"
  echo "--- lscpu | head -20"
  lscpu | head -20
} | tee "$OUT/machine.txt"

# ---------------------------------------------------------------------------- builds
# Built up front so that no compilation competes with a measurement.
BARE_BIN="$ROOT/target/release/bare-axum"
BASTION_BIN=${BASTION_BIN_GIVEN:-"$ROOT/target/release/bastion"}
BASTION_BUILD_OK=0
BARE_BUILD_OK=0
if [[ ",$TARGETS," == *",bare,"* ]]; then
  echo "building bare-axum (release)"
  if (cd "$ROOT" && cargo build --release -q -p bastion-bench --bin bare-axum) >"$OUT/build-bare.log" 2>&1; then
    BARE_BUILD_OK=1
  else
    echo "!! bare-axum build failed, see $OUT/build-bare.log"
  fi
fi
if [[ ",$TARGETS," == *",bastion,"* && -n ${BASTION_BIN_GIVEN:-} ]]; then
  [[ -x $BASTION_BIN ]] && BASTION_BUILD_OK=1 || echo "!! $BASTION_BIN is not an executable"
elif [[ ",$TARGETS," == *",bastion,"* ]]; then
  echo "building bastion (release)"
  if (cd "$ROOT" && cargo build --release -q -p bastion) >"$OUT/build-bastion.log" 2>&1 && [[ -x $BASTION_BIN ]]; then
    BASTION_BUILD_OK=1
  else
    echo "!! bastion build failed, see $OUT/build-bastion.log"
  fi
fi

# ---------------------------------------------------------------------------- servers
SERVER_PID=""
stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -TERM "$SERVER_PID" 2>/dev/null || true; sleep 1
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# http_code URL ORIGIN: HTTP status of a GET, 000 if nothing answers.
http_code() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' -H "X-M2M-Origin: $2" -H 'X-M2M-RI: probe' \
    -H 'X-M2M-RVI: 3' -H 'Accept: application/json' "$1" || true
}

# wait_up URL SECONDS: until GET URL as admin answers 200 (ACME answers 404 for its
# CSEBase while it is still importing its start-up resources), or the server died.
wait_up() {
  local deadline=$((SECONDS + $2)) code=000
  while ((SECONDS < deadline)); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    code=$(http_code "$1" "$ADMIN")
    [[ $code == 200 ]] && return 0
    sleep 0.5
  done
  echo "   (last answer to GET $1: HTTP $code)"
  return 1
}

write_acme_ini() { # DIR PORT DBTYPE
  cat >"$1/acme.ini" <<EOF
; Generated by bench/load.sh. Stand-alone IN-CSE on loopback, admin CAdmin.
; [cse.registration] allowedAEOriginators keeps ACME's default (C*,S*,...), which already
; admits the bench originators Cbench and Creader.
[basic.config]
cseType=IN
cseID=id-in
cseName=cse-in
adminID=$ADMIN
networkInterface=127.0.0.1
cseHost=127.0.0.1
httpPort=$2
databaseType=$3
; "debug" (the onboarding default) logs every request and would measure the logger.
logLevel=warn
consoleType=simple

[textui]
startWithTUI=false
EOF
}

# target_port TARGET -> sets PORT and CSE (the CSEBase resource name)
target_port() {
  CSE=cse-in
  case $1 in
    bare) PORT=18090 ;;
    bastion) PORT=18091; CSE=$BASTION_CSE_NAME ;;
    acme-mem) PORT=18092 ;;
    acme-file) PORT=18093 ;;
    acme-mem-wsgi) PORT=18094 ;;
    acme-file-wsgi) PORT=18095 ;;
  esac
}

# start_target TARGET DIR -> sets SERVER_PID; returns 1 if it cannot be started
start_target() {
  local t=$1 dir=$2
  case $t in
    bare)
      [[ $BARE_BUILD_OK == 1 ]] || return 1
      "${PIN_SERVER[@]}" "$BARE_BIN" --listen "127.0.0.1:$PORT" --body-bytes "$BODY_BYTES" \
        >"$dir/server.log" 2>&1 &
      SERVER_PID=$! ;;
    bastion)
      [[ $BASTION_BUILD_OK == 1 ]] || return 1
      mkdir -p "$dir/data"
      "${PIN_SERVER[@]}" "$BASTION_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$dir/data" \
        >"$dir/server.log" 2>&1 &
      SERVER_PID=$! ;;
    acme-*)
      local db=memory wsgi=()
      [[ $t == acme-file* ]] && db=tinydb
      [[ $t == *-wsgi ]] && wsgi=(--http-wsgi)
      write_acme_ini "$dir" "$PORT" "$db"
      (cd "$dir" && exec "${PIN_SERVER[@]}" "$PY" -m acmecse --config acme.ini \
        --base-directory "$dir" --headless --db-type "$db" --db-reset --http-port "$PORT" \
        --no-mqtt --no-coap --no-ws "${wsgi[@]}" >"$dir/server.log" 2>&1) &
      SERVER_PID=$! ;;
  esac
}

# ---------------------------------------------------------------------------- workloads
# run_wrk TARGET DIR WORKLOAD RUN [SECONDS]: RUN "warmup" is run but not recorded
run_wrk() {
  local t=$1 dir=$2 w=$3 r=$4 path origin kind
  case $w in
    w1) path="/$CSE/bench/cnt/la"; origin=$READER; kind="get" ;;
    w2) path="/$CSE/bench/cnt"; origin=$READER; kind="cin" ;;
    w3) path="/$CSE"; origin=$ADMIN; kind="get" ;;
    w1c) path="/$CSE/bench/cnt/la"; origin=$READER; kind="getcbor" ;;
    w2c) path="/$CSE/bench/cnt"; origin=$READER; kind="cincbor" ;;
  esac
  local raw="$dir/$w-run$r.txt" secs=${5:-$DURATION}
  [[ $r == warmup ]] && raw="$dir/$w-warmup.txt"
  "${PIN_WRK[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout "$TIMEOUT" --latency \
    -s "$BENCH/onem2m.lua" "http://127.0.0.1:$PORT$path" -- "$origin" "$kind" "$CON_BYTES" >"$raw" 2>&1 || true
  local line; line=$(grep '^BENCH ' "$raw" | tail -1 || true)
  if [[ -z $line ]]; then
    echo "!! $t $w run $r: no result from wrk, see $raw"; return 1
  fi
  [[ $r == warmup ]] && return 0
  # key=value fields; first_error is last and may contain spaces.
  local first=${line#*first_error=}
  declare -A f=()
  for kv in ${line%% first_error=*}; do [[ $kv == *=* ]] && f[${kv%%=*}]=${kv#*=}; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$w" "$r" "${f[rps]}" "${f[p50_us]}" \
    "${f[p99_us]}" "${f[errors]}" "${f[requests]}" "${first//$'\t'/ }" >>"$OUT/results.tsv"
  awk -v t="$t" -v w="$w" -v r="$r" -v rps="${f[rps]}" -v p50="${f[p50_us]}" -v p99="${f[p99_us]}" \
    -v e="${f[errors]}" -v n="${f[requests]}" 'BEGIN { printf "  %-14s %s run %s: %10.1f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %s/%s\n", t, w, r, rps, p50 / 1000, p99 / 1000, e, n }'

}

status() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$OUT/status.tsv"; echo "== $1: $2 $3"; }

for t in "${TARGET_LIST[@]}"; do
  dir="$OUT/$t"; mkdir -p "$dir"
  echo
  echo "== $t (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  target_port "$t"
  if [[ $(http_code "http://127.0.0.1:$PORT/" "$ADMIN") != 000 ]]; then
    status "$t" FAILED "port $PORT is already in use by something else"; FAILED=1; continue
  fi
  if ! start_target "$t" "$dir"; then
    case $t in
      bastion) status "$t" SKIPPED "bastion did not build (cargo build --release -p bastion), see $OUT/build-bastion.log" ;;
      *) status "$t" FAILED "could not start (build failed?)"; FAILED=1 ;;
    esac
    continue
  fi
  if ! wait_up "http://127.0.0.1:$PORT/$CSE" 60; then
    if [[ $t == bastion ]]; then
      status "$t" SKIPPED "bastion did not answer on 127.0.0.1:$PORT within 60 s, see $dir/server.log"
    else
      status "$t" FAILED "no answer on 127.0.0.1:$PORT within 60 s, see $dir/server.log"; FAILED=1
    fi
    stop_server; continue
  fi
  if [[ $t != bare ]]; then
    if ! ADMIN=$ADMIN READER=$READER "$BENCH/setup.sh" "http://127.0.0.1:$PORT" "$CSE" "$MNI" 2>&1 | tee "$dir/setup.log"; then
      status "$t" FAILED "setup failed, see $dir/setup.log"; FAILED=1; stop_server; continue
    fi
  fi
  ok=1
  for w in "${WORKLOAD_LIST[@]}"; do
    ((WARMUP > 0)) && { run_wrk "$t" "$dir" "$w" warmup "$WARMUP" || true; }
    for r in $(seq 1 "$RUNS"); do
      run_wrk "$t" "$dir" "$w" "$r" || ok=0
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        status "$t" FAILED "server died during $w run $r, see $dir/server.log"; FAILED=1; ok=0; break 2
      fi
      sleep 1
    done
  done
  [[ $ok == 1 ]] && status "$t" MEASURED "on 127.0.0.1:$PORT, load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  stop_server
done

echo
echo "=================================================================== summary ($OUT)"
"$PY" "$BENCH/summarize.py" "$OUT"
exit "$FAILED"
