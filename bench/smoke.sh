#!/usr/bin/env bash
# CI smoke of hato-bench (2 seconds, not a measurement): starts hato on a free
# port, runs one short scenario per QoS, and fails if anything is lost; then
# the same against hato-floor (when given), so compare.sh's floor keeps working.
#   smoke.sh HATO HATO-BENCH [HATO-FLOOR]
set -euo pipefail
hato=$1 bench=$2 floor=${3:-} backend=${BACKEND:-epoll}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$hato" --backend "$backend" --port 0 --data "$dir/data" 2>"$dir/log" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9]\+\).*/\1/p' "$dir/log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "hato did not start"; cat "$dir/log"; exit 1; }
"$bench" --port "$port" --scenario pairs --clients 4 --qos 0 --duration 1 --warmup 0.2 | tail -1
"$bench" --port "$port" --scenario fanout --clients 8 --qos 1 --duration 1 --warmup 0.2 | tail -1

[ -n "$floor" ] || exit 0
kill "$pid"; wait "$pid" 2>/dev/null || true
"$floor" --port 0 2>"$dir/floor.log" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.* on 127\.0\.0\.1:\([0-9]\+\).*/\1/p' "$dir/floor.log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/floor.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "hato-floor did not start"; cat "$dir/floor.log"; exit 1; }
"$bench" --port "$port" --scenario pairs --clients 4 --qos 1 --rate 2000 --duration 1 --warmup 0.2 | tail -1
