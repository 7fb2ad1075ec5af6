#!/usr/bin/env bash
# Proves packaging/cross/arm-linux-gnueabihf.txt without installing any armhf
# package: downloads the armhf .debs of hato's libraries with a private apt
# state (the machine's dpkg architectures and apt lists are left untouched),
# unpacks them into a sysroot, writes a meson cross-file overlay for it, then
# compiles and links a probe against it and configures (and, with --build,
# compiles) hato with both cross files.
#   packaging/cross/armhf-sysroot.sh [--build] [SYSROOT_DIR]
# Needs root only to install the cross toolchain (crossbuild-essential-armhf).
set -euo pipefail
build=0
if [ "${1:-}" = --build ]; then build=1; shift; fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
top=${1:-/tmp/hato-armhf-sysroot}
sysroot=$top/root
aptdir=$top/apt
triplet=arm-linux-gnueabihf
export DEBIAN_FRONTEND=noninteractive

say() { echo "armhf-sysroot: $*"; }
fail() { echo "armhf-sysroot: FAILED: $*" >&2; exit 1; }

# 1. The cross toolchain is an amd64 package set: apt installs it as usual.
if ! command -v $triplet-g++ >/dev/null; then
  say "installing crossbuild-essential-armhf"
  apt-get update -q || say "warning: apt-get update reported errors"
  apt-get install -y -q --no-install-recommends crossbuild-essential-armhf pkgconf meson ninja-build \
    || fail "cannot install the armhf cross toolchain"
fi

# 2. Private apt state for armhf: lists, cache and an empty dpkg status.
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/sources" "$aptdir/debs"
: > "$aptdir/status"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$aptdir/sources/"
elif [ -f /etc/apt/sources.list ]; then
  grep -E '^deb ' /etc/apt/sources.list > "$aptdir/sources/debian.list"
else
  fail "no Debian apt source found in /etc/apt"
fi
apt_armhf=(-o APT::Architecture=armhf -o APT::Architectures=armhf
           -o Dir::State::Lists="$aptdir/lists" -o Dir::State::Status="$aptdir/status"
           -o Dir::Cache="$aptdir/cache" -o Dir::Etc::SourceList=/dev/null
           -o Dir::Etc::SourceParts="$aptdir/sources" -o Debug::NoLocking=1)
say "fetching the armhf package lists (private state in $aptdir)"
# A partial failure is tolerated (seen here: the security suite's armhf list
# fails its size check, "Mirror sync in progress?"): bookworm main suffices.
apt-get "${apt_armhf[@]}" update -q || say "warning: some armhf lists failed to download; using those that did"
if ! ls "$aptdir"/lists/*binary-armhf_Packages* >/dev/null 2>&1; then
  fail "the apt mirror serves no armhf package lists: armhf .debs cannot be downloaded here.
  The cross file itself needs only the armhf toolchain; see packaging/README.md."
fi

# 3. Download and unpack the libraries hato links (runtime + -dev) and the
#    header-only doctest. libc and libstdc++ come from the cross toolchain.
pkgs=(liburing2 liburing-dev libtomlplusplus3 libtomlplusplus-dev libwolfssl35 libwolfssl-dev doctest-dev)
say "downloading: ${pkgs[*]}"
(cd "$aptdir/debs" && apt-get "${apt_armhf[@]}" download "${pkgs[@]}") \
  || fail "apt-get download of the armhf .debs failed (mirror without armhf pool files?)"
rm -rf "$sysroot"; mkdir -p "$sysroot"
for deb in "$aptdir"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
say "sysroot ready: $sysroot"

# 4. Cross-file overlay: the host's pkg-config reads the sysroot's .pc files
#    (meson sets PKG_CONFIG_SYSROOT_DIR from sys_root), the compiler finds the
#    headers and libraries there, the toolchain keeps its own libc.
lib=$sysroot/usr/lib/$triplet
cat > "$top/sysroot.txt" <<EOT
# Written by packaging/cross/armhf-sysroot.sh: use after arm-linux-gnueabihf.txt.
[binaries]
pkgconfig = 'pkg-config'
exe_wrapper = ['qemu-arm-static', '-L', '/usr/$triplet', '-E', 'LD_LIBRARY_PATH=$lib']

[properties]
sys_root = '$sysroot'
pkg_config_libdir = ['$lib/pkgconfig', '$sysroot/usr/share/pkgconfig']

[built-in options]
cpp_args = ['-isystem', '$sysroot/usr/include', '-isystem', '$sysroot/usr/include/$triplet']
cpp_link_args = ['-L$lib', '-Wl,-rpath-link,$lib']
EOT
say "cross-file overlay: $top/sysroot.txt"

# 5. Probe: one file using every library, compiled and linked for armhf.
probe=$top/probe
mkdir -p "$probe"
cat > "$probe/probe.cpp" <<'EOT'
#include <liburing.h>
#include <toml++/toml.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <cstdio>
int main() {
    io_uring ring;
    int rc = io_uring_queue_init(4, &ring, 0);
    if (rc == 0) io_uring_queue_exit(&ring);
    auto tbl = toml::parse("a = 1");
    std::printf("uring=%d toml=%lld wolfssl=%s\n", rc, (long long)tbl["a"].value_or(0), wolfSSL_lib_version());
    return 0;
}
EOT
pcflags=$(PKG_CONFIG_LIBDIR="$lib/pkgconfig:$sysroot/usr/share/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$sysroot" \
          pkg-config --cflags --libs liburing tomlplusplus wolfssl) || fail "pkg-config cannot resolve the armhf .pc files"
# shellcheck disable=SC2086
$triplet-g++ -std=c++20 -O1 -isystem "$sysroot/usr/include" -isystem "$sysroot/usr/include/$triplet" \
  -o "$probe/probe" "$probe/probe.cpp" $pcflags -Wl,-rpath-link,"$lib" || fail "probe does not build"
file "$probe/probe" 2>/dev/null || true
if command -v qemu-arm-static >/dev/null; then
  qemu-arm-static -L /usr/$triplet -E LD_LIBRARY_PATH="$lib" "$probe/probe" || fail "probe does not run under qemu-arm-static"
fi
say "probe built and linked for armhf"

# 6. hato itself, configured (and built with --build) from a copy of the tree.
src=$top/src
rm -rf "$src"; mkdir -p "$src"
tar -C "$repo" --exclude=./.git --exclude='./build*' --exclude=./dist -cf - . | tar -C "$src" -xf -
rm -rf "$top/build"
meson setup "$top/build" "$src" --cross-file "$repo/packaging/cross/arm-linux-gnueabihf.txt" \
  --cross-file "$top/sysroot.txt" -Dio_uring=enabled \
  || fail "meson setup with the armhf cross files failed (see $top/build/meson-logs)"
say "meson configured hato for armhf in $top/build"
if [ $build = 1 ]; then
  ninja -C "$top/build" -j2 || fail "hato does not build for armhf"
  file "$top/build/src/app/hato" 2>/dev/null || true
  say "hato built for armhf"
fi
say "OK"
