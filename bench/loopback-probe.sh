#!/usr/bin/env bash
# The loopback ceiling for large messages (bench/loopback_probe.c): for 64 KiB,
# 256 KiB and 1 MiB writes, a sender straight to a receiver (no forwarder: no
# broker can beat it), through a read/write forwarder (what Mosquitto, hato
# and hato-floor do), and through zero-copy forwarders (splice, tee).
#   bench/loopback-probe.sh [SECONDS]     (default 3 per combination; REPS, default 1)
# Not run by CI. Needs a C compiler.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-3}
reps=${REPS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -o "$work/loopback_probe" loopback_probe.c
combos=(
  "write none read 1" "write none trunc 1" "vmsplice none trunc 1"
  "write rw read 1" "write splice read 1" "vmsplice splice splice 1"
  "write rw read 2" "vmsplice tee trunc 2"
)
for c in "${combos[@]}"; do
  for size in 65536 262144 1048576; do
    for _ in $(seq "$reps"); do
      # shellcheck disable=SC2086  # the combination is four words
      "$work/loopback_probe" "$size" $c "$secs"
    done
  done
done
