#!/usr/bin/env bash
# Installs what hato needs on a Debian 12 machine, as root (no sudo needed).
#   install-deps.sh build   compiler, meson and the libraries
#   install-deps.sh test    the above plus the third-party clients the tests drive
set -euo pipefail
mode=${1:-build}
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ccache: meson uses it when it is installed; a rebuild (and CI's four
# builds of the same sources, on a machine that keeps its cache) takes
# seconds instead of minutes.
pkgs=(ca-certificates g++ meson ninja-build pkgconf ccache
      liburing-dev libwolfssl-dev libtomlplusplus-dev doctest-dev)
if [ "$mode" = test ]; then
  pkgs+=(mosquitto mosquitto-clients python3 python3-paho-mqtt python3-pytest openssl procps)
  # promtool (checks /metrics); headless chromium (status page screenshot, and
  # tests/js/browser.test.mjs: MQTT over WebSockets from a real browser)
  pkgs+=(prometheus chromium)
  # the simulated PLC of tests/integration/test_modbus.py (its serial server
  # needs python3-serial-asyncio), and the pseudo-terminal pair for RTU
  pkgs+=(python3-pymodbus python3-serial-asyncio socat)
  # a bridge upstream: tests/integration/test_bridge_rabbitmq.py starts its
  # own one-off node (MQTT plugin) on free ports
  pkgs+=(rabbitmq-server)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# packaging/build-deb.sh swaps libwolfssl-dev for the arm64 one while it
# cross-builds (both cannot be installed); one stopped half-way leaves it so.
arch=$(dpkg --print-architecture)
dpkg-query -W -f='${Status}' "libwolfssl-dev:$arch" 2>/dev/null | grep -q "install ok installed" ||
  missing+=("libwolfssl-dev:$arch")
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# MQTT.js for the MQTT 5 tests, from the npm registry, pinned by package-lock.json.
if [ "$mode" = test ]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends nodejs npm
  fi
  js=$(cd "$(dirname "$0")/../tests/js" && pwd)
  if [ ! -d "$js/node_modules/mqtt" ]; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
# The Debian mosquitto package may start its own service on 1883; our tests use
# free ports, but a stray broker on 1883 would confuse the README's smoke test.
if [ "$mode" = test ] && command -v systemctl >/dev/null && systemctl is-active -q mosquitto 2>/dev/null; then
  as_root systemctl stop mosquitto || true
fi
# The tests start their own RabbitMQ nodes; the package's service is not wanted.
if [ "$mode" = test ] && command -v systemctl >/dev/null && systemctl is-active -q rabbitmq-server 2>/dev/null; then
  as_root systemctl stop rabbitmq-server || true
fi
# Only promtool is wanted from the prometheus package, not its server.
if [ "$mode" = test ] && command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
  as_root systemctl stop prometheus || true
fi
