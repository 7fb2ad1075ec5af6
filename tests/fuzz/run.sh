#!/usr/bin/env bash
# Fuzzes the broker (TARGET fuzz_broker, or fuzz_broker_log over the real log) for a while (default 300 s) on one core, at low priority.
#   tests/fuzz/run.sh [SECONDS] [TARGET]
# Needs clang and libFuzzer (apt-get install clang libclang-rt-14-dev). Builds
# build-fuzz with -Dfuzz=true, copies the committed corpus into a scratch
# folder and mutates from there; a crash is written to build-fuzz/crashes/.
# Keep a crash: minimize it (fuzz_broker -minimize_crash=1 -runs=10000 FILE),
# add it to tests/fuzz/corpus/broker as crash_<what>, fix the broker; the
# unit tests replay it from then on.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-300}
target=${2:-fuzz_broker}
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dbuildtype=debugoptimized
fi
ninja -C build-fuzz "tests/fuzz/$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/broker/* "$work/"
mkdir -p build-fuzz/crashes
nice -n 19 "build-fuzz/tests/fuzz/$target" -max_len=4096 -max_total_time="$secs" \
  -artifact_prefix=build-fuzz/crashes/ -print_final_stats=1 "$work"
