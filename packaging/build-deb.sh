#!/usr/bin/env bash
# Builds the hato Debian package on a Debian 12 host, as root (no sudo):
#   packaging/build-deb.sh [amd64|arm64]
# Leaves dist/hato_<version>_<arch>.deb. Works on a brand-new debian:bookworm
# with empty apt lists: it runs apt-get update and installs what it needs.
# The build runs in a copy of the tree (HATO_PKG_WORKDIR, default
# /tmp/hato-pkg-<arch>), so the work tree only gains dist/.
#
# arm64 cross-builds (dpkg-buildpackage -aarm64). Its build dependencies are
# installed as arm64 packages; libwolfssl-dev:arm64 cannot sit beside the
# amd64 one, so apt swaps it (and whatever else conflicts) out. Every package
# installed before the build that apt removes is put back on exit, even on
# failure. The arm64 unit tests then run under qemu-aarch64-static (epoll:
# qemu-user has no io_uring).
set -euo pipefail
arch=${1:-amd64}
case $arch in amd64|arm64) ;; *) echo "usage: $0 [amd64|arm64]" >&2; exit 2 ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${HATO_PKG_WORKDIR:-/tmp/hato-pkg-$arch}
export DEBIAN_FRONTEND=noninteractive
# Two cores on the gateway build hosts and CI; debhelper builds serially
# without a parallel= option.
case " ${DEB_BUILD_OPTIONS:-} " in *" parallel="*) ;; *) export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=2" ;; esac
say() { echo "build-deb[$arch]: $*"; }
die() { echo "build-deb[$arch]: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs the build dependencies)"

version=$(grep -oE "(^|[^_[:alnum:]])version[[:space:]]*:[[:space:]]*'[^']*'" "$repo/meson.build" | head -n1 | sed "s/.*'\(.*\)'/\1/")
[ -n "$version" ] || die "no version : '...' in meson.build"
native=$(dpkg --print-architecture)

apt_update() {
  # A mirror with one broken index still leaves the others usable; a real
  # problem shows up as an install failure right after.
  apt-get update -q || say "warning: apt-get update reported errors"
}
apt_install() { apt-get install -y -q --no-install-recommends "$@"; }

# --- 1. a copy of the tree with debian/ at its top -----------------------
src=$work/hato-$version
rm -rf "$work"; mkdir -p "$src"
tar -C "$repo" --exclude=./.git --exclude='./build*' --exclude=./dist --exclude=./obj-\* -cf - . | tar -C "$src" -xf -
rm -rf "$src/debian"; cp -a "$repo/packaging/debian" "$src/debian"
changelog_version=$(sed -n '1s/^hato (\([^)]*\)).*/\1/p' "$src/debian/changelog")
if [ "$changelog_version" != "$version" ]; then
  # Keeps the package name equal to the project version; the lead updates the
  # real changelog when releasing.
  say "warning: debian/changelog says $changelog_version, meson.build $version: adding an entry in the copy"
  { printf 'hato (%s) unstable; urgency=medium\n\n  * Built from the work tree.\n\n -- %s  %s\n\n' \
      "$version" "$(sed -n 's/^Maintainer: //p' "$src/debian/control")" "$(date -R)"
    cat "$repo/packaging/debian/changelog"; } > "$src/debian/changelog"
fi

# --- 2. tools and build dependencies ------------------------------------
apt_update
apt_install build-essential dpkg-dev debhelper fakeroot file

restore_native() {
  # Put back every package that was installed before and is gone now.
  local gone
  gone=$(comm -23 <(sort "$work/installed-before") \
                  <(dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' | awk '$1=="ii"{print $2}' | sort) \
         | grep -v ":$arch\$" || true)
  if [ -n "$gone" ]; then
    say "restoring the $native packages the cross build-dep replaced: $(echo "$gone" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    apt_install $gone || say "ERROR: could not restore: $gone"
  fi
}

# The compiler cache, when installed (.ci/install-deps.sh installs it), for
# the cross compiler as well: through its wrappers on PATH. Its directory is
# fixed here, as debhelper gives the build its own HOME.
use_ccache() {
  command -v update-ccache-symlinks >/dev/null || return 0
  update-ccache-symlinks
  export PATH=/usr/lib/ccache:$PATH CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
}

if [ "$arch" = "$native" ]; then
  use_ccache
  (cd "$src" && apt-get build-dep -y -q ./) || die "cannot install the build dependencies"
  (cd "$src" && dpkg-buildpackage -us -uc -b) || die "dpkg-buildpackage failed"
else
  [ "$arch" = arm64 ] || die "cross-building is only prepared for arm64"
  dpkg --add-architecture arm64
  apt_update
  dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package}\n' | awk '$1=="ii"{print $2}' > "$work/installed-before"
  trap restore_native EXIT
  apt_install crossbuild-essential-arm64 qemu-user-static pkgconf:arm64
  (cd "$src" && apt-get build-dep -y -q -a arm64 ./) || die "cannot install the arm64 build dependencies"
  use_ccache
  # The project's own cross file, so the package build proves it too.
  (cd "$src" && DH_MESON_CROSS_FILE="$src/packaging/cross/aarch64-linux-gnu.txt" \
     dpkg-buildpackage -us -uc -b -aarm64) || die "dpkg-buildpackage -aarm64 failed"

  # Unit tests under qemu-user, with the multiarch libc6:arm64 loader and
  # libraries that build-dep installed (not the cross toolchain's older libc:
  # one loader and libc from the same build).
  bdir=$(find "$src" -maxdepth 1 -type d -name 'obj-aarch64-linux-gnu*' | head -n1)
  [ -n "$bdir" ] || die "no arm64 build folder"
  ran=0
  for t in test_mqtt test_broker test_store test_net test_config test_auth; do
    exe=$(find "$bdir/tests" -type f -name "$t" -perm -u+x 2>/dev/null | head -n1)
    if [ -z "$exe" ]; then say "$t: not built, skipped"; continue; fi
    say "running $t under qemu-aarch64-static"
    (cd "$(dirname "$exe")" && env HATO_FORCE_NO_URING=1 \
       LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu:/lib/aarch64-linux-gnu \
       qemu-aarch64-static "$exe") || die "$t failed under qemu"
    ran=$((ran + 1))
  done
  [ $ran -gt 0 ] || die "no arm64 unit test executable was built"
  say "$ran arm64 unit test executables passed under qemu"
fi

# --- 3. the result -------------------------------------------------------
deb=$work/hato_${version}_${arch}.deb
[ -f "$deb" ] || die "dpkg-buildpackage made no $(basename "$deb")"
mkdir -p "$repo/dist"
cp "$deb" "$repo/dist/"
dpkg-deb --info "$repo/dist/$(basename "$deb")" | sed -n '/Package:/,$p'
say "OK: dist/$(basename "$deb")"
