#!/usr/bin/env bash
# Runs the same scenarios against Mosquitto (Debian package, no persistence)
# and hato (durable store on, sync = "always") in one run, each broker pinned
# to core 0 and hato-bench to core 1, and prints a table with hato/Mosquitto
# ratios and each broker's CPU per message (hato-bench reads /proc/PID/stat
# over the measured window). Both brokers get TCP_NODELAY, like for like.
# The QoS 1 rows also run hato-floor, a forwarder on hato's reactor that does
# no broker work: its CPU per message is the socket work alone, the floor
# under any broker on this machine, printed in a second table. The QoS 0
# blast rows (hato-bench --rate 0 --window 0: publishers write as fast as
# their sockets accept) run hato-floor too, as the ceiling: a forwarder that
# routes each message and batches writes with the same back-pressure; a
# third table gives hato/floor in msg/s and what each side lost. The
# "large" rows (64 KiB, 256 KiB, 1 MiB payloads, QoS 0 and 1, ten pairs,
# a window of 4 MiB per publisher) compare payload MB/s and broker CPU
# per MB (flat across sizes when no step costs more than linear in bytes),
# with hato-floor as the ceiling, in a fourth table; a fifth gives p50/p99
# of the fixed-rate latency rows.
#   bench/compare.sh [BUILDDIR]      (default: build; ONLY=substring runs some rows)
# Not run by CI: shared machines are noisy; compare ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
hato=${HATO:-$build/src/app/hato}   # HATO=path: another build of the broker, e.g. an older commit
bench=$build/bench/hato-bench
floor=$build/bench/hato-floor
DURATION=${DURATION:-5}
for f in "$hato" "$bench" "$floor"; do [ -x "$f" ] || { echo "missing $f: build first (meson setup $build && ninja -C $build)"; exit 1; }; done
command -v mosquitto >/dev/null || { echo "mosquitto not installed: bash .ci/install-deps.sh test"; exit 1; }
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true
hz=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

try_start_broker() {  # $1 = mosquitto | hato | floor; sets pid and port; fails if it exits
  # Below the ephemeral range (32768+): hato-bench's own client ports, some
  # still closing after the 10000-connection scenario, cannot collide with it.
  port=$(( 20000 + RANDOM % 12000 ))
  if [ "$1" = mosquitto ]; then
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\nset_tcp_nodelay true\n' "$port" > "$work/mosq.conf"
    taskset -c 0 mosquitto -c "$work/mosq.conf" 2>"$work/broker.log" &
  elif [ "$1" = floor ]; then
    taskset -c 0 "$floor" --port "$port" 2>"$work/broker.log" &
  else
    rm -rf "$work/data"
    cat > "$work/hato.toml" <<TOML
[[listener]]
address = "127.0.0.1"
port = $port
[limits]
max_connections = 19000
max_queued_messages = 100000
# The large rows' 1 MiB payloads plus topic and header.
max_packet_size = 2097152
[storage]
dir = "$work/data"
sync = "$hato_sync"
[log]
level = "warn"
TOML
    taskset -c 0 "$hato" -c "$work/hato.toml" 2>"$work/broker.log" &
  fi
  pid=$!
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; pid=; return 1; }
    # Connectable and still alive: ours, not another program on that port.
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && kill -0 "$pid" 2>/dev/null && return 0
    sleep 0.1
  done
  stop_broker
  return 1
}

start_broker() {  # a port taken by someone else only costs another try
  for _ in 1 2 3 4 5; do try_start_broker "$1" && return 0; done
  echo "$1 did not start"; cat "$work/broker.log"; exit 1
}

stop_broker() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }

# name | hato-bench arguments [| hato's storage sync mode, default always]
# The "persistent" rows use persistent sessions, so hato writes every QoS 1
# delivery to its log (Mosquitto, with persistence off, keeps it in memory);
# the pair of them with sync always / off is the cost of group commit.
# The QoS 1 CPU rows pace on a 1 ms clock (sensors on a fixed cycle): with
# hato-bench's default pacing it writes whatever is due each time a reply
# wakes it, so a broker that takes longer per message gets smaller batches
# and more sends a message, and its extra work counts about twice
# (bench/README.md, "QoS 1 at 10 pairs"). The clock gives every broker the
# same arrivals.
scenarios=(
  "qos0 pairs x10|--scenario pairs --clients 10 --qos 0"
  "qos0 fanin 100->1|--scenario fanin --clients 100 --qos 0"
  "qos0 fanout 1->100|--scenario fanout --clients 100 --qos 0"
  "qos0 blast pairs x10|--scenario pairs --clients 10 --qos 0 --rate 0 --window 0"
  "qos0 blast fanin 100->1|--scenario fanin --clients 100 --qos 0 --rate 0 --window 0"
  "qos0 blast fanout 1->100|--scenario fanout --clients 100 --qos 0 --rate 0 --window 0"
  "qos1 20k/s pairs x10|--scenario pairs --clients 10 --qos 1 --rate 20000 --pace clock"
  "qos1 20k/s pairs x1000|--scenario pairs --clients 1000 --qos 1 --rate 20000 --pace clock"
  "qos0 10k/s latency|--scenario pairs --clients 10 --qos 0 --rate 10000"
  "qos0 10k/s lat sync=off|--scenario pairs --clients 10 --qos 0 --rate 10000|off"
  "qos1 10k/s latency|--scenario pairs --clients 10 --qos 1 --rate 10000"
  "qos1 10k/s lat sync=off|--scenario pairs --clients 10 --qos 1 --rate 10000|off"
  "qos1 max persistent|--scenario pairs --clients 10 --qos 1 --persistent"
  "qos1 max pers. sync=off|--scenario pairs --clients 10 --qos 1 --persistent|off"
  "idle conns 10000|--scenario conn --clients 10000"
  "large 64k qos0 pairs x10|--scenario pairs --clients 10 --qos 0 --size 65536 --window 64"
  "large 256k qos0 pairs x10|--scenario pairs --clients 10 --qos 0 --size 262144 --window 16"
  "large 1M qos0 pairs x10|--scenario pairs --clients 10 --qos 0 --size 1048576 --window 4"
  "large 64k qos1 pairs x10|--scenario pairs --clients 10 --qos 1 --size 65536 --window 64"
  "large 256k qos1 pairs x10|--scenario pairs --clients 10 --qos 1 --size 262144 --window 16"
  "large 1M qos1 pairs x10|--scenario pairs --clients 10 --qos 1 --size 1048576 --window 4"
)
ONLY=${ONLY:-}   # a substring: run only the scenarios whose name contains it

declare -A rate cpu p50 p99 kib lost mbs usmb gcpu
bench_bound=()   # runs where hato-bench itself was near 100% CPU
# Brokers alternate per scenario (not all Mosquitto runs, then all hato runs),
# so a burst of load from elsewhere on a shared machine hits both sides alike.
selected=()
for s in "${scenarios[@]}"; do [[ -z "$ONLY" || "${s%%|*}" == *"$ONLY"* ]] && selected+=("$s"); done
scenarios=("${selected[@]}")
has_floor() { [[ "$1" == "qos1 20k/s"* || "$1" == *"sync=off"* && "$1" == "qos1 10k/s"* || "$1" == *blast* || "$1" == large* ]]; }
for s in "${scenarios[@]}"; do
  peers=(mosquitto hato)
  if has_floor "${s%%|*}"; then peers+=(floor); fi
  for broker in "${peers[@]}"; do
    name=${s%%|*} args=${s#*|}
    hato_sync=always
    if [[ "$args" == *"|"* ]]; then hato_sync=${args##*|}; args=${args%|*}; fi
    start_broker "$broker"
    t0=$(cpu_ticks "$pid")
    full=$(taskset -c 1 "$bench" --port "$port" $args --duration "$DURATION" --warmup 1 --broker-pid "$pid" 2>&1) || true
    t1=$(cpu_ticks "$pid")
    stop_broker
    # The RESULT line is the last; a "note:" line before it says the
    # generator was saturated (then the rate measures hato-bench, not the broker).
    out=$(grep '^RESULT' <<<"$full" | tail -1) || out=$(tail -1 <<<"$full")
    if grep -q '^note:' <<<"$full"; then bench_bound+=("$broker / $name"); fi
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$out"; }
    key="$broker|$name"
    rate[$key]=$(get rate); p50[$key]=$(get p50_us); p99[$key]=$(get p99_us); mbs[$key]=$(get mb_per_s) kib[$key]=$(get kib_per_conn); lost[$key]=$(get lost); gcpu[$key]=$(get bench_cpu)
    recv=$(get received)
    measured=$(get broker_us_per_msg)
    # hato-bench measures the broker's CPU over the measured window only; the
    # /proc difference around the whole run (connect + warm-up) is the fallback.
    if [ -n "$measured" ] && [ "${measured#-}" = "$measured" ]; then
      cpu[$key]=$measured
    elif [ -n "$recv" ] && [ "$recv" != 0 ]; then
      cpu[$key]=$(awk -v t=$(( t1 - t0 )) -v hz="$hz" -v n="$recv" 'BEGIN{printf "%.2f", t/hz*1e6/n}')
    else cpu[$key]=; fi
    usmb[$key]=
    if [ -n "${cpu[$key]}" ] && [[ "$args" =~ --size\ ([0-9]+) ]]; then
      usmb[$key]=$(awk -v c="${cpu[$key]}" -v b="${BASH_REMATCH[1]}" 'BEGIN{printf "%.0f", c*1e6/b}')
    fi
    echo "$broker / $name: $out" >&2
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b+0 == 0) print "-"; else printf "%.2f", a/b }'; }
echo
echo "hato/mosquitto, $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m), ${DURATION}s per scenario"
printf '| %-24s | %12s | %12s | %6s | %10s | %10s | %6s | %8s | %8s | %8s | %8s |\n' scenario "mosq msg/s" "hato msg/s" ratio "mosq us/msg" "hato us/msg" "cpu r" "mosq p99" "hato p99" "mosq KiB" "hato KiB"
for s in "${scenarios[@]}"; do
  name=${s%%|*}; m="mosquitto|$name"; h="hato|$name"
  printf '| %-24s | %12s | %12s | %6s | %10s | %10s | %6s | %8s | %8s | %8s | %8s |\n' "$name" \
    "${rate[$m]:--}" "${rate[$h]:--}" "$(ratio "${rate[$h]}" "${rate[$m]}")" \
    "${cpu[$m]:--}" "${cpu[$h]:--}" "$(ratio "${cpu[$h]}" "${cpu[$m]}")" \
    "${p99[$m]:--}" "${p99[$h]:--}" "${kib[$m]:--}" "${kib[$h]:--}"
done
# The floor: hato-floor's socket work per message against each broker.
floor_rows=()
for s in "${scenarios[@]}"; do
  n=${s%%|*}
  if has_floor "$n" && [[ "$n" != *blast* && "$n" != large* ]]; then floor_rows+=("$n"); fi
done
if [ ${#floor_rows[@]} -gt 0 ]; then
  echo
  echo "floor: hato-floor (hato's reactor, no broker work) in the same run"
  printf '| %-24s | %10s | %10s | %10s | %10s | %10s | %8s | %8s |\n' scenario "mosq us/msg" "floor us/msg" "hato us/msg" "floor/mosq" "hato/floor" "floor p99" "hato p99"
  for name in "${floor_rows[@]}"; do
    m="mosquitto|$name"; h="hato|$name"; f="floor|$name"
    printf '| %-24s | %10s | %10s | %10s | %10s | %10s | %8s | %8s |\n' "$name" \
      "${cpu[$m]:--}" "${cpu[$f]:--}" "${cpu[$h]:--}" "$(ratio "${cpu[$f]}" "${cpu[$m]}")" \
      "$(ratio "${cpu[$h]}" "${cpu[$f]}")" "${p99[$f]:--}" "${p99[$h]:--}"
  done
fi
# The ceiling: hato against hato-floor in msg/s under blast, and what was lost.
ceiling_rows=()
for s in "${scenarios[@]}"; do [[ "${s%%|*}" == *blast* ]] && ceiling_rows+=("${s%%|*}"); done
if [ ${#ceiling_rows[@]} -gt 0 ]; then
  echo
  echo "ceiling: hato-floor (per-message routing, batched writes, back-pressure, no broker work), blast mode"
  printf '| %-24s | %12s | %12s | %12s | %10s | %10s | %10s | %10s |
' scenario "floor msg/s" "hato msg/s" "mosq msg/s" "hato/floor" "floor lost" "hato lost" "mosq lost"
  for name in "${ceiling_rows[@]}"; do
    m="mosquitto|$name"; h="hato|$name"; f="floor|$name"
    printf '| %-24s | %12s | %12s | %12s | %10s | %10s | %10s | %10s |
' "$name" \
      "${rate[$f]:--}" "${rate[$h]:--}" "${rate[$m]:--}" "$(ratio "${rate[$h]}" "${rate[$f]}")" \
      "${lost[$f]:--}" "${lost[$h]:--}" "${lost[$m]:--}"
  done
fi
# Large messages: payload MB/s (10^6 bytes) and broker CPU per MB.
large_rows=()
for s in "${scenarios[@]}"; do [[ "${s%%|*}" == large* ]] && large_rows+=("${s%%|*}"); done
if [ ${#large_rows[@]} -gt 0 ]; then
  echo
  echo "large messages: payload MB/s and broker CPU us per MB (hato-floor: the ceiling)"
  # gen m/h/f: hato-bench's share of its core against each broker (near
  # 1.00 it, not the broker, limited the row).
  printf '| %-26s | %8s | %8s | %8s | %9s | %9s | %9s | %9s | %9s | %9s | %6s | %14s |\n' scenario "mosq MB/s" "hato MB/s" "floor MB/s" "hato/mosq" "hato/floor" "mosq us/MB" "hato us/MB" "floor us/MB" "cpu h/m" "lost h" "gen m/h/f"
  for name in "${large_rows[@]}"; do
    m="mosquitto|$name"; h="hato|$name"; f="floor|$name"
    printf '| %-26s | %8s | %8s | %8s | %9s | %9s | %9s | %9s | %9s | %9s | %6s | %14s |\n' "$name" \
      "${mbs[$m]:--}" "${mbs[$h]:--}" "${mbs[$f]:--}" "$(ratio "${mbs[$h]}" "${mbs[$m]}")" "$(ratio "${mbs[$h]}" "${mbs[$f]}")" \
      "${usmb[$m]:--}" "${usmb[$h]:--}" "${usmb[$f]:--}" "$(ratio "${usmb[$h]}" "${usmb[$m]}")" "${lost[$h]:--}" \
      "${gcpu[$m]:--}/${gcpu[$h]:--}/${gcpu[$f]:--}"
  done
fi
# Latency at a fixed rate: p50 and p99 in us.
lat_rows=()
for s in "${scenarios[@]}"; do [[ "${s%%|*}" == *"10k/s"* ]] && lat_rows+=("${s%%|*}"); done
if [ ${#lat_rows[@]} -gt 0 ]; then
  echo
  echo "latency at a fixed rate (us)"
  printf '| %-24s | %8s | %8s | %8s | %8s |\n' scenario "mosq p50" "hato p50" "mosq p99" "hato p99"
  for name in "${lat_rows[@]}"; do
    m="mosquitto|$name"; h="hato|$name"
    printf '| %-24s | %8s | %8s | %8s | %8s |\n' "$name" "${p50[$m]:--}" "${p50[$h]:--}" "${p99[$m]:--}" "${p99[$h]:--}"
  done
fi
for b in "${bench_bound[@]}"; do echo "note: hato-bench near 100% CPU in: $b (that rate is a lower bound)"; done
