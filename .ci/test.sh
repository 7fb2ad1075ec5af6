#!/usr/bin/env bash
# The README's test command: installs what is needed, builds with warnings as
# errors, and runs the whole suite (unit tests, then integration tests that
# drive the real binary with mosquitto clients and paho-mqtt on both backends).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps.sh test
builddir=${BUILDDIR:-build}
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" --werror ${MESON_ARGS:-}
fi
ninja -C "$builddir"
meson test -C "$builddir" --print-errorlogs --num-processes 2 ${MESON_TEST_ARGS:-}
