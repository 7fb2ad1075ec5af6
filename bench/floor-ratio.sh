#!/usr/bin/env bash
# hato's CPU per message against hato-floor's, over many short paired runs,
# each broker pinned to core 0 and hato-bench to core 1 as in compare.sh,
# hato with its durable store on and sync = "always". On a shared VM the CPU
# one run costs swings by +-30 % from minute to minute, more than the gap
# being measured, so one run of each says little; the median of REPS paired
# ratios does. Pairs alternate their order (A B, B A, A B, ...) so that a
# drift within a pair, or a cost to whichever runs second, cancels.
#   bench/floor-ratio.sh [BUILDDIR] ["hato-bench arguments"]
#     default: build, "--scenario pairs --clients 1000 --qos 1 --rate 20000 --pace clock"
#     REPS (default 20), DURATION (seconds measured per run, default 3)
#     PAIR="A B" (default "floor hato"): what is compared, B/A. Each is floor,
#       hato ($HATO, default BUILDDIR's) or hato2 ($HATO2, another build, to
#       compare two versions of hato). PAIR="floor floor" is the A/A check:
#       its median shows the bias and its spread the noise of the method.
# Prints one line per pair and, last, the median ratio. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
args=${2:-"--scenario pairs --clients 1000 --qos 1 --rate 20000 --pace clock"}
hato=${HATO:-$build/src/app/hato}
bench=$build/bench/hato-bench
floor=$build/bench/hato-floor
REPS=${REPS:-20}
read -r side_a side_b <<<"${PAIR:-floor hato}"
hato2=${HATO2:-}
DURATION=${DURATION:-3}
for f in "$hato" "$bench" "$floor"; do [ -x "$f" ] || { echo "missing $f: build first"; exit 1; }; done
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

start() {  # $1 = floor | hato | hato2: sets pid and port
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 12000 ))
    if [ "$1" = floor ]; then
      taskset -c 0 "$floor" --port "$port" 2>"$work/broker.log" &
    else
      rm -rf "$work/data"
      printf '[[listener]]\naddress = "127.0.0.1"\nport = %s\n[limits]\nmax_connections = 19000\nmax_queued_messages = 100000\n[storage]\ndir = "%s/data"\nsync = "always"\n[log]\nlevel = "warn"\n' \
        "$port" "$work" > "$work/hato.toml"
      bin=$hato; [ "$1" = hato2 ] && bin=$hato2
      taskset -c 0 "$bin" -c "$work/hato.toml" 2>"$work/broker.log" &
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

run() {  # $1 = floor | hato | hato2: prints the broker's CPU us per message
  start "$1"
  # shellcheck disable=SC2086  # the arguments are words
  out=$(taskset -c 1 "$bench" --port "$port" $args --duration "$DURATION" --warmup 1 --broker-pid "$pid" 2>&1 | grep '^RESULT') || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
  [[ "$out" == *" lost=0 "* ]] || { echo "lost messages or no result: $out" >&2; exit 1; }
  sed -n 's/.* broker_us_per_msg=\([^ ]*\).*/\1/p' <<<"$out"
}

for side in "$side_a" "$side_b"; do
  case $side in
    floor|hato) ;;
    hato2) [ -x "$hato2" ] || { echo "PAIR names hato2: set HATO2 to another build's hato"; exit 1; } ;;
    *) echo "PAIR: $side is not floor, hato or hato2"; exit 1 ;;
  esac
done
echo "floor-ratio, $(date -u '+%Y-%m-%d %H:%M'), $(nproc) cores, $args, ${DURATION}s x $REPS pairs, $side_b/$side_a"
ratios=()
for i in $(seq "$REPS"); do
  if (( i % 2 )); then a=$(run "$side_a"); b=$(run "$side_b"); else b=$(run "$side_b"); a=$(run "$side_a"); fi
  r=$(awk -v b="$b" -v a="$a" 'BEGIN{printf "%.3f", b/a}')
  ratios+=("$r")
  echo "pair $i: $side_a $a us/msg, $side_b $b us/msg, $side_b/$side_a $r"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk -v name="$side_b/$side_a" '{a[NR]=$1} END{m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; q1 = a[int((NR+3)/4)]; q3 = a[int((3*NR+3)/4)]; printf "median %s %.3f (quartiles %.3f-%.3f, min %.3f, max %.3f, %d pairs)\n", name, m, q1, q3, a[1], a[NR], NR}'
