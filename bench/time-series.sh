#!/usr/bin/env bash
# bench/time-series.sh: a <timeSeries> receiving 1,000 data points a second with
# missing-data detection (issue 17), beside the ceilings measured in the same run.
#
# Usage: bench/time-series.sh
#
# Environment (defaults):
#   BIN       the server binary; unset: builds and uses target/release/bastion
#   BARE      the ceiling; unset: builds and uses target/release/bare-axum
#   TSB       the load generator; unset: builds and uses target/release/ts-bench
#   PORT      18616 (loopback; the ceiling listens on PORT+1)
#   RUNS      3 runs per figure (the median is reported)
#   SECONDS_  10 counted seconds per run, after WARMUP_ (2) seconds
#
# `bastion serve` on a fresh data directory, pinned to CPU 0; the clients on CPU 1.
#   rate:  ts-bench at 1,000 points/s on the wall clock into /cse-in/TS (pei 1 ms, mdt
#          5 ms, mdd true, mni 10000), one point in 100 deliberately not sent. Reports
#          the rate achieved, latencies from when each point was due, and whether
#          detection found exactly the points skipped (undetected and false_missing 0).
#   max:   wrk (one thread, 32 connections, bench/onem2m.lua kind tsi) creating data
#          points as fast as the server answers into /cse-in/TSMAX (the same
#          attributes), requests per second.
#   bare:  the same wrk POST to bare-axum (its fixed answer), the ceiling of `max`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
PORT=${PORT:-18616}
BASE=http://127.0.0.1:$PORT
BARE_PORT=$((PORT + 1))
RUNS=${RUNS:-3}
SECS=${SECONDS_:-10}
WARM=${WARMUP_:-2}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [[ -z ${BIN:-} || -z ${BARE:-} || -z ${TSB:-} ]]; then
  nice -n 5 cargo build --release -q -p bastion -p bastion-bench --bin bastion --bin bare-axum --bin ts-bench
fi
BIN=${BIN:-target/release/bastion}
BARE=${BARE:-target/release/bare-axum}
TSB=${TSB:-target/release/ts-bench}
TMP=$(mktemp -d /tmp/bastion-ts.XXXXXX)
PID=
BARE_PID=
trap '[[ -n $PID ]] && kill $PID 2>/dev/null; [[ -n $BARE_PID ]] && kill $BARE_PID 2>/dev/null; rm -rf "$TMP"' EXIT

H=(-H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RVI: 3' -H 'Accept: application/json')

start_bastion() {
  rm -rf "$TMP/data"
  taskset -c 0 "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --log warn &
  PID=$!
  for _ in $(seq 1 3000); do
    curl -sf -o /dev/null "${H[@]}" -H 'X-M2M-RI: p' $BASE/cse-in && return
    sleep 0.1
  done
  echo "bastion did not start" >&2
  exit 1
}

series() { # series NAME: a timeSeries with a 1 ms period and detection on
  local code
  code=$(curl -s -o "$TMP/ts" -w '%{http_code}' "${H[@]}" -H 'X-M2M-RI: c' -X POST \
    -H 'Content-Type: application/json;ty=29' \
    --data-binary "{\"m2m:ts\":{\"rn\":\"$1\",\"pei\":1,\"mdt\":5,\"mdd\":true,\"mdn\":1000,\"mni\":10000}}" \
    "$BASE/cse-in")
  [[ $code == 201 ]] || { echo "creating timeSeries $1: HTTP $code $(cat "$TMP/ts")" >&2; exit 1; }
}

echo "binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1)); $(nproc) CPUs; $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"

rates=() p50=() p99=() undetected=0 false_missing=0 skipped=() errs=0
for run in $(seq 1 "$RUNS"); do
  start_bastion
  series TS
  line=$(taskset -c 1 "$TSB" --connect 127.0.0.1:$PORT --path /cse-in/TS --rate 1000 \
    --seconds "$SECS" --warmup "$WARM" | grep '^BENCH ')
  echo "rate run $run: $line"
  rates+=("$(field rate "$line")")
  p50+=("$(field p50_us "$line")")
  p99+=("$(field p99_us "$line")")
  skipped+=("$(field skipped "$line")")
  undetected=$((undetected + $(field undetected "$line")))
  false_missing=$((false_missing + $(field false_missing "$line")))
  errs=$((errs + $(field errors "$line")))
  kill $PID; wait $PID || true; PID=
done
printf 'rate: %s points/s at a target of 1000 (runs: %s), p50 %.2f ms, p99 %.2f ms from when due, errors %d; skipped %s, undetected %d, false missing %d\n' \
  "$(printf '%s\n' "${rates[@]}" | median)" "${rates[*]}" \
  "$(printf '%s\n' "${p50[@]}" | median | awk '{print $1/1000}')" \
  "$(printf '%s\n' "${p99[@]}" | median | awk '{print $1/1000}')" "$errs" \
  "${skipped[*]}" "$undetected" "$false_missing"

measure() { # measure NAME URL: median req/s, p50/p99 ms and errors of RUNS wrk runs
  taskset -c 1 wrk -t1 -c32 -d2s --latency -s bench/onem2m.lua "$2" -- CAdmin tsi >/dev/null
  local rps=() p50=() p99=() errs=0
  for _ in $(seq 1 "$RUNS"); do
    line=$(taskset -c 1 wrk -t1 -c32 -d"${SECS}s" --latency -s bench/onem2m.lua "$2" -- CAdmin tsi | grep '^BENCH ')
    rps+=("$(field rps "$line")")
    p50+=("$(field p50_us "$line")")
    p99+=("$(field p99_us "$line")")
    errs=$((errs + $(field errors "$line")))
  done
  printf '%s: %s req/s (runs: %s), p50 %.2f ms, p99 %.2f ms, errors %d\n' "$1" \
    "$(printf '%s\n' "${rps[@]}" | median)" "${rps[*]}" \
    "$(printf '%s\n' "${p50[@]}" | median | awk '{print $1/1000}')" \
    "$(printf '%s\n' "${p99[@]}" | median | awk '{print $1/1000}')" "$errs"
}

start_bastion
series TSMAX
measure "max (POST timeSeriesInstance, closed loop)" "$BASE/cse-in/TSMAX"
kill $PID; wait $PID || true; PID=
taskset -c 0 "$BARE" --listen 127.0.0.1:$BARE_PORT >/dev/null 2>&1 &
BARE_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:$BARE_PORT/ && break; sleep 0.1; done
measure "bare axum (same POST)" "http://127.0.0.1:$BARE_PORT/cse-in/TSMAX"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
