#!/usr/bin/env bash
# User-space instructions per message of hato's hot path, counted by
# callgrind (valgrind), for QoS 0 and QoS 1: hato (release build, durable
# store on, sync = "always", epoll backend) runs under callgrind while
# hato-bench sends `pairs --clients 10` at a fixed rate. Instruction counts
# repeat where CPU time does not, so this is the before/after measure for
# changes on the hot path.
# Start-up, connect, subscribe and shutdown cost the same in a short and a
# long run, so each QoS runs twice (SHORT and LONG seconds of publishing)
# and the result is
#   (instructions(LONG) - instructions(SHORT)) / (messages(LONG) - messages(SHORT)).
# Besides the whole process, it prints the part inside the broker's event
# entry points (Broker::on_data, on_tick, on_pass_end, on_durable, ...,
# inclusive): the reactor's per-pass cost depends on how many messages one
# loop pass handles, which varies with the machine's load; the broker's
# work per message hardly does.
#   bench/callgrind.sh [BUILDDIR]     (default: build-rel; RATE, CLIENTS, SHORT, LONG;
#     HATO: another build's hato, driven by BUILDDIR's hato-bench)
# CACHE_SIM=1 adds callgrind's simulated cache (this machine's sizes) and
# prints its data misses per message too: first-level (D1) and last-level
# (LL). With many connections a message's cost is mostly lines found cold,
# which instruction counts do not see; the simulation repeats exactly too.
# LL=SIZE,ASSOC,LINE sets the simulated last level (e.g. LL=1048576,16,64):
# with thousands of clients a message's state was last touched tens of
# milliseconds earlier, and on a shared machine a line that old is mostly
# gone from the real caches; a small last level counts those touches.
# BACKEND=io_uring runs that backend (valgrind 3.19 passes io_uring through;
# the kernel's side of it is not counted, as with epoll's syscalls).
# KEEP=DIR keeps each run's callgrind output there (qos<Q>-<S>s.out), for
# a per-function diff of the long and the short run (callgrind_annotate).
# Needs valgrind (apt-get install valgrind). Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-rel}
hato=${HATO:-$build/src/app/hato}
bench=$build/bench/hato-bench
RATE=${RATE:-500}   # msg/s over all publishers: low, so that most loop passes handle one message
CLIENTS=${CLIENTS:-10}   # pairs
cache_sim=${CACHE_SIM:-}; [ "$cache_sim" = 0 ] && cache_sim=
SHORT=${SHORT:-1}
LONG=${LONG:-5}
for f in "$hato" "$bench"; do [ -x "$f" ] || { echo "missing $f: build first (meson setup $build --buildtype=release -Dtests=false && ninja -C $build)"; exit 1; }; done
command -v valgrind >/dev/null || { echo "valgrind not installed: apt-get install valgrind"; exit 1; }
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Inclusive instructions of the broker's entry points (they do not call each other).
broker_ir() {
  callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
    awk '/hato::broker::Broker::on_(open|data|close|tick|pass_end|durable|auth_result)\(/ { gsub(",", "", $1); n += $1 } END { print n + 0 }'
}

run() {  # $1 = qos, $2 = seconds; prints "instructions broker_instructions messages"
  local port out
  rm -rf "$work/data" "$work/cg.out"
  port=$(( 20000 + RANDOM % 12000 ))
  cat > "$work/hato.toml" <<TOML
[broker]
event_backend = "${BACKEND:-epoll}"
[[listener]]
address = "127.0.0.1"
port = $port
[storage]
dir = "$work/data"
sync = "always"
[log]
level = "warn"
TOML
  valgrind --tool=callgrind ${cache_sim:+--cache-sim=yes} ${LL:+--LL=$LL} --callgrind-out-file="$work/cg.out" "$hato" -c "$work/hato.toml" 2>"$work/broker.log" &
  pid=$!
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/broker.log"; exit 1; }
    sleep 0.1
  done
  out=$("$bench" --port "$port" --scenario pairs --clients "$CLIENTS" --qos "$1" --rate "$RATE" \
        --duration "$2" --warmup 0 2>&1 | grep '^RESULT') || { echo "hato-bench failed: $out"; exit 1; }
  kill -TERM "$pid"; wait "$pid" || true; pid=
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work/cg.out" "$KEEP/qos$1-$2s.out"
  [[ "$out" == *" lost=0 "* ]] || { echo "messages lost: $out"; exit 1; }
  # summary: Ir [Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw]; prints Ir, D1 and LL data misses
  echo "$(awk '/^summary:/ {print $2, $6 + $7, $9 + $10}' "$work/cg.out") $(broker_ir "$work/cg.out") $(sed -n 's/.* received=\([0-9]*\).*/\1/p' <<<"$out")"
}

echo "callgrind, $(date -u '+%Y-%m-%d %H:%M'), pairs x${CLIENTS}, ${RATE} msg/s, ${SHORT}s vs ${LONG}s, $build"
for qos in 0 1; do
  read -r i1 d1 l1 b1 m1 < <(run "$qos" "$SHORT")
  read -r i2 d2 l2 b2 m2 < <(run "$qos" "$LONG")
  awk -v q="$qos" -v i1="$i1" -v b1="$b1" -v m1="$m1" -v i2="$i2" -v b2="$b2" -v m2="$m2" \
      -v d1="$d1" -v d2="$d2" -v l1="$l1" -v l2="$l2" -v sim="$cache_sim" \
    'BEGIN{printf "qos%d: %.0f instructions/msg, %.0f of them in the broker", q, (i2-i1)/(m2-m1), (b2-b1)/(m2-m1)
           if (sim != "") printf ", %.1f D1 and %.1f LL data misses/msg", (d2-d1)/(m2-m1), (l2-l1)/(m2-m1)
           printf "  (%d msgs: %d Ir; %d msgs: %d Ir)\n", m1, i1, m2, i2}'
done
