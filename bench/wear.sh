#!/usr/bin/env bash
# Disk wear per acknowledged persistent QoS 1 message: starts hato with its
# data folder on the disk under test, runs `hato-bench --persistent --qos 1
# --rate R` (10 publisher/subscriber pairs, 64-byte payloads), and reads,
# before and after, the sectors the block device wrote (/sys/block/DEV/stat,
# the device of the folder, a partition counted as its disk) and hato's own
# write_bytes (/proc/PID/io). Prints bytes per message, both ways, with the
# acknowledgement latency and hato's CPU per message, for each group-commit
# window ([storage] sync_window_us) and rate.
#   bench/wear.sh [DATA_PARENT] [BUILDDIR]
#     DATA_PARENT: a folder on the disk under test (default /var/tmp); a
#                  fresh hato-wear.XXXX folder is made in it and removed after
#     BUILDDIR:    default build
#   WINDOWS="0 1000 5000" RATES="200 2000 20000" DURATION=5 (seconds per run)
#   BATCH=bytes sets [storage] sync_batch_bytes (default: hato's default)
# syncs/s is hato's own count of group-commit syncs (its metrics endpoint,
# hato_sync_latency_seconds_count), msg/sync the messages each one covered.
# The device counts everything written to the disk: on a machine where
# other programs write, run it more than once and take the lowest figures.
# Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
parent=${1:-/var/tmp}
build=${2:-build}
hato=$build/src/app/hato
bench=$build/bench/hato-bench
WINDOWS=${WINDOWS:-"0 1000 5000"}
RATES=${RATES:-"200 2000 20000"}
DURATION=${DURATION:-5}
for f in "$hato" "$bench"; do [ -x "$f" ] || { echo "missing $f: build first (meson setup $build && ninja -C $build)"; exit 1; }; done
mkdir -p "$parent"
work=$(mktemp -d "$parent/hato-wear.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The whole disk the folder lives on: /sys/dev/block/MAJ:MIN is the
# partition's directory, inside its disk's; a disk has no "partition" file.
block_device() {
  local sys
  sys=$(readlink -f "/sys/dev/block/$(stat -c '%Hd:%Ld' "$1")")
  [ -e "$sys/partition" ] && sys=$(dirname "$sys")
  basename "$sys"
}
dev=$(block_device "$work")
[ -r "/sys/block/$dev/stat" ] || { echo "no /sys/block/$dev/stat for $work"; exit 1; }
sectors_written() { awk '{print $7}' "/sys/block/$dev/stat"; }
proc_write_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }

start_hato() {  # $1 = sync_window_us
  rm -rf "$work/data"
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 12000 ))
    mport=$(( port + 1 ))
    cat > "$work/hato.toml" <<TOML
[[listener]]
address = "127.0.0.1"
port = $port
[limits]
max_queued_messages = 100000
[storage]
dir = "$work/data"
sync = "always"
sync_window_us = $1
${BATCH:+sync_batch_bytes = $BATCH}
[metrics]
port = $mport
[log]
level = "warn"
TOML
    "$hato" -c "$work/hato.toml" 2>"$work/broker.log" &
    pid=$!
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && kill -0 "$pid" 2>/dev/null && return 0
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
  done
  echo "hato did not start"; cat "$work/broker.log"; exit 1
}

stop_hato() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }

# Syncs hato has completed so far (0 when the endpoint does not answer).
syncs_done() {
  local body
  body=$(exec 3<>/dev/tcp/127.0.0.1/$mport && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null || { echo 0; return; }
  awk '/^hato_sync_latency_seconds_count/ {print $2; found=1} END {if (!found) print 0}' <<<"$body"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "disk under test: $work on /dev/$dev ($(findmnt -n -o FSTYPE -T "$work" 2>/dev/null || echo '?')), ${DURATION}s per run, sync_batch_bytes ${BATCH:-default}, $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '| %9s | %7s | %9s | %12s | %13s | %8s | %8s | %7s | %7s | %8s | %12s |\n' \
  window_us rate msgs dev_B/msg proc_B/msg syncs/s msg/sync p50_us p99_us cpu_us/msg dev_GB/day
for window in $WINDOWS; do
  for rate in $RATES; do
    start_hato "$window"
    sync
    sleep 0.5
    dev0=$(sectors_written)
    io0=$(proc_write_bytes "$pid")
    s0=$(syncs_done)
    out=$("$bench" --port "$port" --scenario pairs --clients 10 --qos 1 --persistent --rate "$rate" \
            --duration "$DURATION" --warmup 0 --broker-pid "$pid" 2>&1) || { echo "$out"; exit 1; }
    io1=$(proc_write_bytes "$pid")
    s1=$(syncs_done)
    dev1=$(sectors_written)
    stop_hato
    result=$(grep '^RESULT' <<<"$out")
    msgs=$(field received "$result")
    [ "${msgs:-0}" -gt 0 ] || { echo "$out"; exit 1; }
    awk -v w="$window" -v r="$rate" -v m="$msgs" -v d=$(( (dev1 - dev0) * 512 )) -v io=$(( io1 - io0 )) -v syncs=$(( s1 - s0 )) -v secs="$DURATION" \
        -v p50="$(field p50_us "$result")" -v p99="$(field p99_us "$result")" -v cpu="$(field broker_us_per_msg "$result")" \
        'BEGIN { printf "| %9s | %7s | %9d | %12.0f | %13.0f | %8.0f | %8.1f | %7s | %7s | %8s | %12.2f |\n",
                 w, r, m, d / m, io / m, syncs / secs, syncs ? m / syncs : 0, p50, p99, cpu, d / m * r * 86400 / 1e9 }'
  done
done
