#!/usr/bin/env bash
# CI smoke of hato-bench (2 seconds, not a measurement): starts hato on a free
# port, runs one short scenario per QoS, and fails if anything is lost; then
# the same against hato-floor (when given), so compare.sh's floor keeps working;
# checks that --pace clock keeps the rate asked for, and that large
# payloads (100 kB) arrive, none lost, in order (their bytes are not checked).
#   smoke.sh HATO HATO-BENCH [HATO-FLOOR]      (BACKEND=io_uring|epoll, default epoll)
set -euo pipefail
hato=$1 bench=$2 floor=${3:-} backend=${BACKEND:-epoll}
dir=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

# start NAME PORT-SED COMMAND...: runs COMMAND (stderr to $dir/NAME.log) and
# sets pid and port, read from the log with the sed expression.
start() {
  local name=$1 expr=$2
  shift 2
  "$@" 2>"$dir/$name.log" &
  pid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n "$expr" "$dir/$name.log" | head -1)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$dir/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "$name did not start"; cat "$dir/$name.log"; exit 1
}

start hato 's/.*listening on [^ ]*:\([0-9]\+\).*/\1/p' "$hato" --backend "$backend" --port 0 --data "$dir/data"
"$bench" --port "$port" --scenario pairs --clients 4 --qos 0 --duration 1 --warmup 0.2 | tail -1
"$bench" --port "$port" --scenario fanout --clients 8 --qos 1 --duration 1 --warmup 0.2 | tail -1
# Large payloads: sent as a copied head and a shared tail, skipped on receipt.
"$bench" --port "$port" --scenario pairs --clients 2 --qos 1 --size 100000 --window 4 --duration 1 --warmup 0.2 | tail -1
"$bench" --port "$port" --scenario pairs --clients 2 --qos 0 --size 100000 --window 4 --duration 1 --warmup 0.2 | tail -1
# Paced by the generator's 1 ms clock: the rate asked for is the rate sent.
out=$("$bench" --port "$port" --scenario pairs --clients 4 --qos 1 --rate 2000 --pace clock --duration 1 --warmup 0.2 | tail -1)
echo "$out"
rate=$(sed -n 's/.* rate=\([0-9]*\) .*/\1/p' <<<"$out")
[ "${rate:-0}" -ge 1900 ] && [ "$rate" -le 2100 ] || { echo "--pace clock: rate $rate, not 2000"; exit 1; }

[ -n "$floor" ] || exit 0
kill "$pid"; wait "$pid" 2>/dev/null || true
start hato-floor 's/.* on 127\.0\.0\.1:\([0-9]\+\).*/\1/p' "$floor" --port 0
"$bench" --port "$port" --scenario pairs --clients 4 --qos 1 --rate 2000 --duration 1 --warmup 0.2 | tail -1
