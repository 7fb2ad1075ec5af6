#!/usr/bin/env bash
# Packaging check for CI (called by .ci/run), as root on Debian 12:
#   packaging/ci-package.sh [--arm64]
# Builds dist/hato_<version>_amd64.deb (nocheck), runs lintian, installs it, checks the
# installed files, the hato user, the configuration (hato --check-config) and
# the unit (systemd-analyze verify), starts the installed broker as the hato
# user for a publish/subscribe round trip, then purges the package.
# Installing over what is there: before the install, the packaged binary is
# run from the .deb as root on /var/lib/hato (README's source run) and leaves
# a retained message; the package must take the directory over and serve it.
# Then an upgrade to the same package with a higher version (repacked, not
# rebuilt) under a dpkg-statoverride, a remove that keeps config and data,
# and the purge that deletes them.
# --arm64 also cross-builds the arm64 package, runs its unit tests under qemu
# and puts back the amd64 -dev packages (build-deb.sh does the swap back).
# Installs everything it uses. Ends with "N passed, N failed".
# shellcheck disable=SC2016,SC2317  # sh -c bodies; functions run through check
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
export DEBIAN_FRONTEND=noninteractive
with_arm64=0
[ "${1:-}" = --arm64 ] && with_arm64=1
version=$(grep -oE "(^|[^_[:alnum:]])version[[:space:]]*:[[:space:]]*'[^']*'" meson.build | head -n1 | sed "s/.*'\(.*\)'/\1/")
deb=dist/hato_${version}_amd64.deb
passed=0; failed=0
check() {  # check NAME COMMAND...: runs COMMAND, counts and reports it
  local name=$1; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1))
  else echo "FAILED: $name"; failed=$((failed + 1)); fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

rm -f "$deb"
# nocheck: the same unit tests already ran in .ci/run's first two stages (the
# first at -O2), and the arm64 build below runs them with the release flags
# under qemu; building them a third time at -O2 was a quarter of CI's time.
check "build $deb" env DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} nocheck" bash packaging/build-deb.sh amd64
if [ ! -f "$deb" ]; then finish; fi

apt-get install -y -q --no-install-recommends lintian man-db systemd mosquitto-clients >/dev/null \
  || echo "warning: could not install lintian/man-db/systemd/mosquitto-clients"
# lintian refuses nothing as root, but says so; errors fail the check.
check "lintian: no errors" lintian --fail-on error --tag-display-limit 0 "$deb"

# --- a broker run from source as root, before the package ---------------
unpacked=$(mktemp -d)
dpkg-deb -x "$deb" "$unpacked"
wait_port() {  # wait_port PORT: up to 5 s for a broker to accept MQTT
  for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$1" -t probe -m x >/dev/null 2>&1 && return 0; sleep 0.1
  done
  return 1
}
# run_on_state USER BINARY: the broker on /var/lib/hato (built-in defaults:
# 127.0.0.1, anonymous on loopback) on a free port: sets pid and port.
run_on_state() {
  port=$(( 20000 + RANDOM % 20000 ))
  runuser -u "$1" -- "$2" --data /var/lib/hato --port "$port" > /tmp/hato-state.log 2>&1 &
  pid=$!
}
source_run() {
  local pid port
  rm -rf /var/lib/hato
  run_on_state root "$unpacked/usr/sbin/hato"
  wait_port "$port" && mosquitto_pub -h 127.0.0.1 -p "$port" -t pkg/before -m kept -q 1 -r
  kill "$pid"; wait "$pid" 2>/dev/null
  if [ "$(stat -c %U /var/lib/hato)" != root ] || [ -z "$(ls -A /var/lib/hato)" ]; then
    cat /tmp/hato-state.log; return 1
  fi
}
# serves_state TOPIC...: the installed hato, as user hato, on /var/lib/hato
# serves each TOPIC's retained message (nothing lost).
serves_state() {
  local pid port t out rc=0
  run_on_state hato /usr/sbin/hato
  wait_port "$port" || rc=1
  for t in "$@"; do
    out=$(timeout 5 mosquitto_sub -h 127.0.0.1 -p "$port" -t "$t" -C 1 -W 4 2>/dev/null)
    [ -n "$out" ] || { echo "no retained message on $t"; rc=1; }
  done
  kill "$pid"; wait "$pid" 2>/dev/null
  [ "$rc" = 0 ] || cat /tmp/hato-state.log
  return "$rc"
}
retain() {  # retain TOPIC: as user hato on /var/lib/hato, publish a retained QoS 1 message
  local pid port rc
  run_on_state hato /usr/sbin/hato
  wait_port "$port" && mosquitto_pub -h 127.0.0.1 -p "$port" -t "$1" -m kept -q 1 -r; rc=$?
  kill "$pid"; wait "$pid" 2>/dev/null
  return "$rc"
}
have_clients=0
command -v mosquitto_pub >/dev/null && have_clients=1
# The package's service must not hold the state directory while these run.
stop_service() { systemctl stop hato >/dev/null 2>&1 || true; }
if [ $have_clients = 1 ]; then
  check "a source run as root leaves a store in /var/lib/hato" source_run
fi

check "install the package" apt-get install -y -q "./$deb"
stop_service
check "/usr/sbin/hato is installed" test -x /usr/sbin/hato
check "/etc/hato/hato.toml is a conffile" grep -qx /etc/hato/hato.toml /var/lib/dpkg/info/hato.conffiles
check "hato.service is installed" test -f /lib/systemd/system/hato.service
check "man pages hato(8) and hato.toml(5)" test -f /usr/share/man/man8/hato.8.gz -a -f /usr/share/man/man5/hato.toml.5.gz
check "system user hato" sh -c 'getent passwd hato | grep -q ":/var/lib/hato:"'
check "/var/lib/hato owned by hato" sh -c '[ "$(stat -c %U:%G /var/lib/hato)" = hato:hato ]'
check "every file in /var/lib/hato owned by hato" \
  sh -c '[ -z "$(find /var/lib/hato \( ! -user hato -o ! -group hato \) -print -quit)" ]'
if [ $have_clients = 1 ]; then
  check "the installed hato serves the source run's store" serves_state pkg/before
fi
if [ -e build/src/auth/hato-passwd ] || grep -rqs "hato-passwd" src/*/meson.build; then
  check "/usr/bin/hato-passwd is installed" test -x /usr/bin/hato-passwd
fi
check_config() {
  local out rc
  out=$(/usr/sbin/hato --check-config --config /etc/hato/hato.toml 2>&1); rc=$?
  echo "$out"
  [ "$rc" = 0 ] && grep -q '^OK' <<<"$out"
}
check "hato --check-config on /etc/hato/hato.toml" check_config

verify_unit() {
  if man -w hato.toml.5 >/dev/null 2>&1 && man -w 8 hato >/dev/null 2>&1; then
    systemd-analyze verify /lib/systemd/system/hato.service
  else
    # dpkg excludes /usr/share/man on minimised images (path-exclude), and
    # verify fails on a Documentation=man: page it cannot open.
    echo "warning: man pages not installed here (dpkg path-exclude?): verifying without Documentation="
    sed '/^Documentation=/d' /lib/systemd/system/hato.service > /tmp/hato-verify.service
    systemd-analyze verify /tmp/hato-verify.service
  fi
}
check "systemd-analyze verify hato.service" verify_unit

# The installed binary, as the hato user, on the packaged config with a free
# port and a scratch state dir (the real service may hold 1883).
smoke() {
  # The packaged config refuses anonymous clients on its 0.0.0.0 listener, so
  # the smoke run uses a password made with the packaged hato-passwd.
  local data port pid out
  data=$(mktemp -d); chown hato:hato "$data"
  port=$(( 20000 + RANDOM % 20000 ))
  hato-passwd -c -b "$data/passwd" smoke s3cret && chown hato:hato "$data/passwd"
  printf '[[listener]]\naddress = "127.0.0.1"\nport = %s\n[storage]\ndir = "%s/data"\n[auth]\nallow_anonymous = false\npassword_file = "%s/passwd"\n' \
    "$port" "$data" "$data" > "$data/hato.toml"
  runuser -u hato -- /usr/sbin/hato --config "$data/hato.toml" > /tmp/hato-smoke.log 2>&1 & pid=$!
  for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$port" -u smoke -P s3cret -t probe -m x >/dev/null 2>&1 && break; sleep 0.1
  done
  mosquitto_pub -h 127.0.0.1 -p "$port" -u smoke -P s3cret -t pkg/check -m ok -q 1 -r
  out=$(timeout 5 mosquitto_sub -h 127.0.0.1 -p "$port" -u smoke -P s3cret -t pkg/check -C 1)
  if mosquitto_pub -h 127.0.0.1 -p "$port" -t pkg/anon -m x >/dev/null 2>&1; then out=anonymous-accepted; fi
  kill "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$data"
  [ "$out" = ok ] || { echo "smoke: got '$out'"; cat /tmp/hato-smoke.log; return 1; }
}
if command -v mosquitto_pub >/dev/null; then
  check "installed hato serves a retained QoS 1 message as user hato" smoke
fi

# --- upgrade, remove ----------------------------------------------------------
upgrade_deb=/tmp/hato_${version}+ciupgrade1_amd64.deb
repack_higher() {  # the same package, version +ciupgrade1: an upgrade without a rebuild
  local d
  d=$(mktemp -d)
  dpkg-deb -R "$deb" "$d/pkg" && sed -i "s/^Version: .*/Version: ${version}+ciupgrade1/" "$d/pkg/DEBIAN/control" \
    && dpkg-deb -b "$d/pkg" "$upgrade_deb" >/dev/null
  local rc=$?; rm -rf "$d"; return "$rc"
}
if [ $have_clients = 1 ]; then
  check "a retained message written by the packaged broker" retain pkg/v1
fi
check "repack $deb with a higher version" repack_higher
# An admin's statoverride on the state directory survives the upgrade.
dpkg-statoverride --remove /var/lib/hato >/dev/null 2>&1
dpkg-statoverride --add root hato 0770 /var/lib/hato
check "upgrade to ${version}+ciupgrade1" apt-get install -y -q "$upgrade_deb"
stop_service
check "the upgrade is installed" sh -c "dpkg-query -W -f='\${Version}' hato | grep -qx '${version}+ciupgrade1'"
check "the upgrade applies the statoverride (root:hato 770)" \
  sh -c '[ "$(stat -c %U:%G:%a /var/lib/hato)" = root:hato:770 ]'
if [ $have_clients = 1 ]; then
  check "after the upgrade nothing is lost" serves_state pkg/before pkg/v1
fi
dpkg-statoverride --remove /var/lib/hato
check "remove the package" apt-get remove -y -q hato
check "remove keeps /etc/hato/hato.toml and the store" \
  sh -c '[ -f /etc/hato/hato.toml ] && [ -n "$(ls -A /var/lib/hato)" ]'
rm -rf "$unpacked" "$upgrade_deb"

check "purge the package" apt-get purge -y -q hato
check "purge removed /var/lib/hato and /etc/hato" sh -c '[ ! -e /var/lib/hato ] && [ ! -e /etc/hato ]'

if [ $with_arm64 = 1 ]; then
  check "arm64 cross-build and unit tests under qemu" bash packaging/build-deb.sh arm64
  check "amd64 libwolfssl-dev is back" sh -c 'dpkg-query -W -f="\${Status}" libwolfssl-dev:amd64 | grep -q "install ok installed"'
fi
finish
