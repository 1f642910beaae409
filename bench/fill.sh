#!/usr/bin/env bash
# bench/fill.sh: memory and disk footprint of Bastion holding many contentInstances.
#
# Usage: bench/fill.sh [COUNT] [CON_BYTES]     (defaults: 1000000 instances of 100 bytes)
#
# Starts the release build of `bastion serve` on a fresh data directory (loopback port
# 18095), prepares AE/container/ACP with bench/setup.sh (container without an instance
# limit in practice: mni = COUNT * 2), creates COUNT contentInstances with wrk and
# bench/fill.lua (32 connections), then reports: the container's cni/cbs, the server's RSS
# (VmRSS) and peak RSS (VmHWM), the data directory's size on disk, and the same RSS after a
# restart on that data directory (the tree and instance index reloaded from SQLite) with
# the time the restart took until the server answered.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-1000000}
CON=${2:-100}
PORT=18095
BASE=http://127.0.0.1:$PORT
DIR=$(mktemp -d /tmp/bastion-fill.XXXXXX)
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p bastion
BIN=target/release/bastion

start() {
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" --log warn &
  PID=$!
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null -H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RI: p' -H 'X-M2M-RVI: 3' $BASE/cse-in && return 0
    sleep 0.1
  done
  echo "server did not answer" >&2; exit 1
}
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %d MiB  ", $1, $2/1024}' /proc/$PID/status; echo; }
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

start
bench/setup.sh $BASE cse-in $((COUNT * 2)) >/dev/null
echo "RSS after setup: $(rss)"
cni() {
  curl -s -H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RI: c' -H 'X-M2M-RVI: 3' "$BASE/cse-in/bench/cnt?atrl=cni" |
    sed -n 's/.*"cni":\([0-9]*\).*/\1/p'
}
t0=$(date +%s)
# wrk's thread:stop() does not end the run, so poll the container and interrupt wrk.
taskset -c 1 wrk -t1 -c32 -d3600s -s bench/fill.lua $BASE/cse-in/bench/cnt -- Creader "$COUNT" "$CON" >"$DIR/wrk.out" &
WRK=$!
while kill -0 $WRK 2>/dev/null && [ "$(cni)" -lt "$COUNT" ]; do sleep 1; done
kill -INT $WRK 2>/dev/null || true
wait $WRK || true
grep -E 'FILL|Requests/sec' "$DIR/wrk.out" || true
echo "fill took $(( $(date +%s) - t0 )) s"
curl -s -H 'X-M2M-Origin: CAdmin' -H 'X-M2M-RI: c' -H 'X-M2M-RVI: 3' "$BASE/cse-in/bench/cnt?atrl=cni+cbs"; echo
echo "RSS after fill: $(rss)"
echo "on disk: $(du -sh "$DIR/data" | cut -f1) ($(du -sb "$DIR/data" | cut -f1) bytes)"
kill $PID; wait $PID || true
t0=$(date +%s.%N)
start
echo "restart until answering: $(echo "$(date +%s.%N) - $t0" | bc) s"
echo "RSS after restart: $(rss)"
