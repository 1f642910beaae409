#!/usr/bin/env bash
# bench/node.sh: a <node> with 15 <mgmtObj> children over HTTP (issue 17), beside the
# bare-axum ceiling measured in the same run.
#
# Usage: bench/node.sh
#
# Environment (defaults):
#   BIN       the server binary; unset: builds and uses target/release/bastion
#   BARE      the ceiling; unset: builds and uses target/release/bare-axum
#   PORT      18614 (loopback; the ceiling listens on PORT+1)
#   RUNS      3 wrk runs per workload (the median is reported)
#   DURATION  5 seconds per run, after one warm-up run of 2 s
#   TREES     20 trees created for the creation figure
#
# `bastion serve` on a fresh data directory, pinned to CPU 0; wrk (one thread, 32
# connections, bench/onem2m.lua) and curl on CPU 1. Every step is checked for its RSC.
#   tree:   TREES times, one <node> and its 15 <mgmtObj>s (the ten specializations, then
#           five more batteries) created with curl, one connection per tree (`--next`):
#           wall-clock trees per second (16 acknowledged, fsynced creates each).
#   rcn4:   GET /cse-in/N1?rcn=4 as the admin: the node with its 15 children in one
#           answer (about 3 KB of JSON), requests per second.
#   create: POST a battery <mgmtObj> under a node as the admin, requests per second.
#   bare:   the same GET of rcn4 to bare-axum (its fixed ~300-byte answer), the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
PORT=${PORT:-18614}
BASE=http://127.0.0.1:$PORT
BARE_PORT=$((PORT + 1))
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
TREES=${TREES:-20}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [[ -z ${BIN:-} || -z ${BARE:-} ]]; then
  nice -n 5 cargo build --release -q -p bastion -p bastion-bench --bin bastion --bin bare-axum
fi
BIN=${BIN:-target/release/bastion}
BARE=${BARE:-target/release/bare-axum}
TMP=$(mktemp -d /tmp/bastion-node.XXXXXX)
PID=
BARE_PID=
trap '[[ -n $PID ]] && kill $PID 2>/dev/null; [[ -n $BARE_PID ]] && kill $BARE_PID 2>/dev/null; rm -rf "$TMP"' EXIT

H=(-H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RVI: 3' -H 'Accept: application/json')

taskset -c 0 "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --log warn &
PID=$!
for _ in $(seq 1 3000); do
  curl -sf -o /dev/null "${H[@]}" -H 'X-M2M-RI: p' $BASE/cse-in && break
  sleep 0.1
done

MGOS=(
  'fwr|{"m2m:fwr":{"rn":"fw","mgd":1001,"vr":"1.0","fwn":"fw","url":"http://fw.example/1.0","ud":false}}'
  'swr|{"m2m:swr":{"rn":"sw","mgd":1002,"vr":"2.1","swn":"app","url":"http://sw.example/app"}}'
  'mem|{"m2m:mem":{"rn":"mem","mgd":1003,"mma":1024,"mmt":4096}}'
  'ani|{"m2m:ani":{"rn":"ani","mgd":1004,"ant":"802.15.4","ldv":["d1","d2"]}}'
  'andi|{"m2m:andi":{"rn":"andi","mgd":1005,"dvd":"d1","dvt":"sensor","awi":"ani","sli":60}}'
  'bat|{"m2m:bat":{"rn":"bat","mgd":1006,"btl":80,"bts":1}}'
  'dvi|{"m2m:dvi":{"rn":"dvi","mgd":1007,"dlb":"SN-1","man":"Acme","mod":"M1","dty":"gw"}}'
  'dvc|{"m2m:dvc":{"rn":"dvc","mgd":1008,"can":"cam","att":true,"cas":{"acn":"on","sus":1},"cus":true}}'
  'rbo|{"m2m:rbo":{"rn":"rbo","mgd":1009}}'
  'evl|{"m2m:evl":{"rn":"evl","mgd":1010,"lgt":1,"lgd":"boot ok","lgst":2}}'
)
for i in 1 2 3 4 5; do MGOS+=("bat|{\"m2m:bat\":{\"rn\":\"bat$i\",\"mgd\":1006,\"btl\":$((i * 10)),\"bts\":1}}"); done

tree() { # tree NAME: one node and its 15 mgmtObjs over one kept-alive connection
  local args=(-s -o /dev/null -w '%{http_code}\n' "${H[@]}" -H 'X-M2M-RI: t' -X POST
    -H 'Content-Type: application/json;ty=14' --data-binary "{\"m2m:nod\":{\"rn\":\"$1\",\"ni\":\"urn:dev:$1\"}}" "$BASE/cse-in")
  for m in "${MGOS[@]}"; do
    args+=(--next -s -o /dev/null -w '%{http_code}\n' "${H[@]}" -H 'X-M2M-RI: t' -X POST
      -H 'Content-Type: application/json;ty=13' --data-binary "${m#*|}" "$BASE/cse-in/$1")
  done
  taskset -c 1 curl "${args[@]}" >"$TMP/codes"
  if [[ $(grep -c '^201$' "$TMP/codes") != 16 ]]; then
    echo "creating tree $1 failed: $(tr '\n' ' ' <"$TMP/codes")" >&2
    exit 1
  fi
}

echo "binary: $BIN ($(stat -c %y "$BIN" | cut -d. -f1)); $(nproc) CPUs; $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"
tree N1
t0=$(date +%s.%N)
for t in $(seq 1 "$TREES"); do tree "T$t"; done
secs=$(echo "$(date +%s.%N) - $t0" | bc)
echo "tree: $TREES trees of 1 node + 15 mgmtObj in ${secs} s: $(echo "$TREES / $secs" | bc -l | xargs printf '%.1f') trees/s ($(echo "$TREES * 16 / $secs" | bc -l | xargs printf '%.0f') creates/s)"
bytes=$(curl -s "${H[@]}" -H 'X-M2M-RI: s' "$BASE/cse-in/N1?rcn=4" | tee "$TMP/rcn4" | wc -c)
kids=$(grep -o '"ri":' "$TMP/rcn4" | wc -l)
echo "rcn4 answer: $bytes bytes, $((kids - 1)) children"
curl -s -o /dev/null "${H[@]}" -H 'X-M2M-RI: n' -X POST -H 'Content-Type: application/json;ty=14' \
  --data-binary '{"m2m:nod":{"rn":"NC","ni":"urn:dev:NC"}}' "$BASE/cse-in"

measure() { # measure NAME URL KIND: median req/s, p50/p99 ms and errors of RUNS runs
  taskset -c 1 wrk -t1 -c32 -d2s --latency -s bench/onem2m.lua "$2" -- CAdmin "$3" >/dev/null
  local rps=() p50=() p99=() errs=0
  for _ in $(seq 1 "$RUNS"); do
    line=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" --latency -s bench/onem2m.lua "$2" -- CAdmin "$3" | grep '^BENCH ')
    rps+=("$(sed 's/.* rps=\([^ ]*\).*/\1/' <<<"$line")")
    p50+=("$(sed 's/.* p50_us=\([^ ]*\).*/\1/' <<<"$line")")
    p99+=("$(sed 's/.* p99_us=\([^ ]*\).*/\1/' <<<"$line")")
    errs=$((errs + $(sed 's/.* errors=\([^ ]*\).*/\1/' <<<"$line")))
  done
  printf '%s: %s req/s (runs: %s), p50 %.2f ms, p99 %.2f ms, errors %d\n' "$1" \
    "$(printf '%s\n' "${rps[@]}" | median)" "${rps[*]}" \
    "$(printf '%s\n' "${p50[@]}" | median | awk '{print $1/1000}')" \
    "$(printf '%s\n' "${p99[@]}" | median | awk '{print $1/1000}')" "$errs"
}

measure "rcn4 (GET node + 15 mgmtObj)" "$BASE/cse-in/N1?rcn=4" get
measure "create (POST battery mgmtObj)" "$BASE/cse-in/NC" bat
kill $PID; wait $PID || true; PID=
taskset -c 0 "$BARE" --listen 127.0.0.1:$BARE_PORT >/dev/null 2>&1 &
BARE_PID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:$BARE_PORT/ && break; sleep 0.1; done
measure "bare axum (same GET)" "http://127.0.0.1:$BARE_PORT/cse-in/N1?rcn=4" get
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
