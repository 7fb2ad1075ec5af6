#!/usr/bin/env bash
# hato's CPU per message against hato-floor's, over many short runs that
# alternate the two (floor, hato, floor, hato, ...), each broker pinned to
# core 0 and hato-bench to core 1 as in compare.sh, hato with its durable
# store on and sync = "always". On a shared VM the CPU one run costs swings
# by +-30 % from minute to minute, more than the gap being measured, so
# one run of each says little; the median of REPS paired ratios (each hato
# run against the floor run just before it) does.
#   bench/floor-ratio.sh [BUILDDIR] ["hato-bench arguments"]
#     default: build, "--scenario pairs --clients 1000 --qos 1 --rate 20000"
#     REPS (default 10), DURATION (seconds measured per run, default 3)
# Prints one line per pair and, last, the median ratio. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
args=${2:-"--scenario pairs --clients 1000 --qos 1 --rate 20000"}
hato=${HATO:-$build/src/app/hato}
bench=$build/bench/hato-bench
floor=$build/bench/hato-floor
REPS=${REPS:-10}
DURATION=${DURATION:-3}
for f in "$hato" "$bench" "$floor"; do [ -x "$f" ] || { echo "missing $f: build first"; exit 1; }; done
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

start() {  # $1 = hato | floor: sets pid and port
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 12000 ))
    if [ "$1" = floor ]; then
      taskset -c 0 "$floor" --port "$port" 2>"$work/broker.log" &
    else
      rm -rf "$work/data"
      printf '[[listener]]\naddress = "127.0.0.1"\nport = %s\n[limits]\nmax_connections = 19000\nmax_queued_messages = 100000\n[storage]\ndir = "%s/data"\nsync = "always"\n[log]\nlevel = "warn"\n' \
        "$port" "$work" > "$work/hato.toml"
      taskset -c 0 "$hato" -c "$work/hato.toml" 2>"$work/broker.log" &
    fi
    pid=$!
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
  done
  echo "$1 did not start"; cat "$work/broker.log"; exit 1
}

run() {  # $1 = hato | floor: prints the broker's us per message
  start "$1"
  # shellcheck disable=SC2086  # the arguments are words
  out=$(taskset -c 1 "$bench" --port "$port" $args --duration "$DURATION" --warmup 1 --broker-pid "$pid" 2>&1 | grep '^RESULT') || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
  [[ "$out" == *" lost=0 "* ]] || { echo "lost messages or no result: $out" >&2; exit 1; }
  sed -n 's/.* broker_us_per_msg=\([^ ]*\).*/\1/p' <<<"$out"
}

echo "floor-ratio, $(date -u '+%Y-%m-%d %H:%M'), $(nproc) cores, $args, ${DURATION}s x $REPS pairs"
ratios=()
for i in $(seq "$REPS"); do
  f=$(run floor)
  h=$(run hato)
  r=$(awk -v h="$h" -v f="$f" 'BEGIN{printf "%.3f", h/f}')
  ratios+=("$r")
  echo "pair $i: floor $f us/msg, hato $h us/msg, hato/floor $r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END{m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "median hato/floor %.3f (min %.3f, max %.3f, %d pairs)\n", m, a[1], a[NR], NR}'
