#!/usr/bin/env bash
# Restart cost with a large retained set, hato against Debian's Mosquitto in
# one run: publishes N retained messages (64-byte payloads, topics r/0 ..
# r/N-1) over MQTT to each broker (persistence on: hato's store with
# sync = "always", Mosquitto's persistence file written at shutdown), then
# restarts each broker RESTARTS times and prints, per start, the time from
# exec to the first CONNACK and the broker's RSS (VmRSS and RssAnon) once
# it answers, then the hato/Mosquitto ratios of the medians.
#   bench/recovery-compare.sh [N] [BUILDDIR]     (N default 1000000, BUILDDIR default build)
#   RESTARTS=3
# Not run by CI: it takes minutes and a shared machine is noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
build=${2:-build}
hato=$(readlink -f "$build/src/app/hato")
RESTARTS=${RESTARTS:-3}
py=/usr/bin/python3
[ -x "$hato" ] || { echo "missing $hato: build first (meson setup $build && ninja -C $build)"; exit 1; }
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "mosquitto not installed"; exit 1; }
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The MQTT side: "publish PORT N" sends N retained QoS 0 PUBLISHes on one
# connection and ends with a QoS 1 one whose PUBACK says all came before it
# were handled; "connack PORT TIMEOUT" connects until a CONNACK arrives and
# prints the monotonic time it did.
cat > "$work/mqtt.py" <<'PY'
import socket, struct, sys, time

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def packet(first, body):
    return bytes([first]) + varint(len(body)) + body

def connect_packet(cid):
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    return packet(0x10, body)

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        c = s.recv(n - len(out))
        if not c:
            raise EOFError
        out += c
    return out

def read_packet(s):
    first = recv_exact(s, 1)[0]
    length, mult = 0, 1
    while True:
        b = recv_exact(s, 1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, recv_exact(s, length)

def publish(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect_packet(b"recovery-feed"))
    assert read_packet(s)[0] >> 4 == 2
    payload = b"p" * 64
    chunk = []
    for i in range(n):
        t = b"r/%d" % i
        chunk.append(packet(0x31, struct.pack("!H", len(t)) + t + payload))
        if len(chunk) == 10000:
            s.sendall(b"".join(chunk))
            chunk = []
    t = b"r/done"
    chunk.append(packet(0x33, struct.pack("!H", len(t)) + t + struct.pack("!H", 1) + payload))
    s.sendall(b"".join(chunk))
    s.settimeout(600)
    while True:
        first, _ = read_packet(s)
        if first >> 4 == 4:
            break
    s.close()

def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1

def restart(port, log, argv):
    """Starts the broker, times exec -> first CONNACK, reads its RSS then,
    stops it (SIGTERM, which also makes Mosquitto save its database)."""
    import subprocess
    with open(log, "ab") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stderr=err)
        try:
            t1 = float(connack_at(port, 600, p))
            print("%d %d %d" % (round((t1 - t0) * 1000), status_kb(p.pid, "VmRSS"), status_kb(p.pid, "RssAnon")))
        finally:
            p.terminate()
            p.wait()

def connack_at(port, timeout, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit("the broker exited with %d" % proc.returncode)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            s.sendall(connect_packet(b"recovery-probe"))
            s.settimeout(timeout)
            first, _ = read_packet(s)
            s.close()
            if first >> 4 == 2:
                return "%.6f" % time.monotonic()
        except (OSError, EOFError):
            time.sleep(0.002)
    sys.exit("no CONNACK in time")

if sys.argv[1] == "publish":
    publish(int(sys.argv[2]), int(sys.argv[3]))
elif sys.argv[1] == "restart":
    restart(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
else:
    print(connack_at(int(sys.argv[2]), float(sys.argv[3])))
PY

now() { $py -c 'import time; print("%.6f" % time.monotonic())'; }

start_broker() {  # $1 = hato | mosquitto; sets pid
  if [ "$1" = mosquitto ]; then
    "$mosquitto_bin" -c "$work/mosq.conf" 2>>"$work/mosq.log" &
  else
    "$hato" -c "$work/hato.toml" 2>>"$work/hato.log" &
  fi
  pid=$!
}
stop_broker() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }

hato_port=$(free_port)
mosq_port=$(free_port)
mkdir -p "$work/hato-data" "$work/mosq-data"
cat > "$work/hato.toml" <<TOML
[[listener]]
address = "127.0.0.1"
port = $hato_port
[limits]
max_retained_messages = 0
[storage]
dir = "$work/hato-data"
sync = "always"
[log]
level = "warn"
TOML
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 0\nmax_queued_messages 1000\n' \
  "$mosq_port" "$work/mosq-data" > "$work/mosq.conf"
# As root Mosquitto would switch to its own user, who may not write $work.
[ "$(id -u)" = 0 ] && echo "user root" >> "$work/mosq.conf"

declare -A times rss anon
echo "recovery-compare: $n retained messages (64 B payloads), $RESTARTS restarts each, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -m)"
for broker in hato mosquitto; do
  port=$([ $broker = hato ] && echo "$hato_port" || echo "$mosq_port")
  start_broker $broker
  $py "$work/mqtt.py" connack "$port" 30 >/dev/null
  t0=$(now)
  $py "$work/mqtt.py" publish "$port" "$n"
  printf '%s: fed %d retained in %.1f s\n' $broker "$n" "$($py -c "print($(now) - $t0)")"
  stop_broker
  if [ $broker = hato ]; then argv=("$hato" -c "$work/hato.toml"); else argv=("$mosquitto_bin" -c "$work/mosq.conf"); fi
  for i in $(seq "$RESTARTS"); do
    read -r ms r a < <($py "$work/mqtt.py" restart "$port" "$work/$broker.log" "${argv[@]}")
    printf '%s restart %d: first CONNACK after %d ms, VmRSS %d KiB, RssAnon %d KiB\n' $broker "$i" "$ms" "$r" "$a"
    times[$broker]+="$ms "
    rss[$broker]+="$r "
    anon[$broker]+="$a "
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ht=$(median "${times[hato]}"); mt=$(median "${times[mosquitto]}")
hr=$(median "${rss[hato]}"); mr=$(median "${rss[mosquitto]}")
ha=$(median "${anon[hato]}"); ma=$(median "${anon[mosquitto]}")
printf '\n| broker    | first CONNACK ms (median) | VmRSS KiB | RssAnon KiB |\n'
printf '| hato      | %25s | %9s | %11s |\n' "$ht" "$hr" "$ha"
printf '| mosquitto | %25s | %9s | %11s |\n' "$mt" "$mr" "$ma"
awk -v ht="$ht" -v mt="$mt" -v hr="$hr" -v mr="$mr" -v ha="$ha" -v ma="$ma" \
  'BEGIN { printf "| hato/mosq | %25.2f | %9.2f | %11.2f |\n", ht / mt, hr / mr, ha / ma }'
