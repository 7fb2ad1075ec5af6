#!/usr/bin/env bash
# Backlog drain rate of a bridge (docs/bridge.md): a gateway hato queues N
# QoS 1 messages (64-byte payloads, every one acknowledged, sync = "always")
# while its upstream is down; then the upstream starts, and the time from
# the bridge's connection until its backlog is empty (every message
# acknowledged by the upstream) gives the drain rate. Upstreams: a second
# hato, then Debian's mosquitto (try_private = true). The gateway's
# /metrics (hato_bridge_backlog_messages) tells when it is empty.
#   bench/bridge-drain.sh [BUILDDIR]    (N=200000 by default; N=... to change)
# Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
hato=$(realpath "$build/src/app/hato")
N=${N:-200000}
load="/usr/bin/python3 $(pwd)/bench/bridge_load.py"
[ -x "$hato" ] || { echo "missing $hato: build first"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

run() {  # $1 = hato | mosquitto
  local up_port gw_port m_port gw_pid up_pid
  up_port=$(port); gw_port=$(port); m_port=$(port)
  rm -rf "$work/gw" "$work/up"; mkdir -p "$work/gw" "$work/up"
  local bit=false; [ "$1" = mosquitto ] && bit=true
  cat > "$work/gw/hato.toml" <<TOML
[[listener]]
address = "127.0.0.1"
port = $gw_port
[storage]
dir = "$work/gw/data"
sync = "always"
[metrics]
address = "127.0.0.1"
port = $m_port
[log]
level = "warn"
[[bridge]]
name = "site"
address = "127.0.0.1"
port = $up_port
client_id = "drain-gw"
try_private = $bit
reconnect_min_ms = 20
reconnect_max_ms = 50
[[bridge.topic]]
pattern = "plant/#"
direction = "out"
qos = 1
remote_prefix = "site/gw/"
TOML
  "$hato" -c "$work/gw/hato.toml" 2>"$work/gw/log" & gw_pid=$!; pids+=("$gw_pid")
  wait_port "$gw_port"
  echo "== upstream: $1, N = $N"
  $load publish "$gw_port" plant/drain "$N"
  if [ "$1" = hato ]; then
    printf '[[listener]]\naddress = "127.0.0.1"\nport = %s\n[storage]\nenabled = false\n[log]\nlevel = "warn"\n' "$up_port" > "$work/up/hato.toml"
    "$hato" -c "$work/up/hato.toml" 2>"$work/up/log" & up_pid=$!
  else
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 0\n' "$up_port" > "$work/up/mosq.conf"
    mosquitto -c "$work/up/mosq.conf" 2>"$work/up/log" & up_pid=$!
  fi
  pids+=("$up_pid")
  $load drain "$m_port" "$N"
  kill "$gw_pid" "$up_pid"; wait "$gw_pid" "$up_pid" 2>/dev/null || true
}

run hato
if command -v mosquitto >/dev/null; then run mosquitto; else echo "mosquitto not installed: skipped"; fi
