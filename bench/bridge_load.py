#!/usr/bin/python3
"""Helpers of bench/bridge-drain.sh and bench/bridge-rabbitmq-cluster.sh.

  bridge_load.py publish PORT TOPIC N [SIZE]   N QoS 1 messages, pipelined (window 1000),
                                               returns once every PUBACK arrived
  bridge_load.py drain METRICS_PORT N          waits until the bridge "site" connects, then
                                               until its backlog is 0; prints the drain rate
  bridge_load.py count PORT FILTER N SECONDS   subscribes (QoS 1) and counts arrivals
"""
import socket
import struct
import sys
import time
import urllib.request
from pathlib import Path

# The packet builders are the integration tests' own, so the two never disagree.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import raw_mqtt as mq  # noqa: E402


def open_conn(port, cid):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mq.connect(cid))
    hdr = s.recv(4)
    assert len(hdr) == 4 and hdr[0] == 0x20 and hdr[3] == 0, f"CONNACK {hdr!r}"
    return s


class Reader:
    def __init__(self, s):
        self.s, self.buf = s, bytearray()

    def packets(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk
        out, off, buf = [], 0, self.buf
        while True:
            if off + 2 > len(buf):
                break
            mult, n, i = 1, 0, off + 1
            while True:
                if i >= len(buf):
                    n = None
                    break
                b = buf[i]
                n += (b & 127) * mult
                mult *= 128
                i += 1
                if not b & 128:
                    break
            if n is None or i + n > len(buf):
                break
            out.append((buf[off], bytes(buf[i:i + n])))
            off = i + n
        del self.buf[:off]
        return out


def publish(port, topic, n, size=64):
    s = open_conn(port, "")
    r = Reader(s)
    payload = b"x" * size
    window, sent, acked = 1000, 0, 0
    t0 = time.monotonic()
    while acked < n:
        batch = []
        while sent < n and sent - acked < window:
            pid = sent % 65535 + 1
            batch.append(mq.publish(topic, payload, qos=1, pid=pid))
            sent += 1
        if batch:
            s.sendall(b"".join(batch))
        for ptype, _ in r.packets():
            if ptype >> 4 == 4:
                acked += 1
    dt = time.monotonic() - t0
    s.close()
    print(f"published {n} QoS 1 messages in {dt:.2f} s ({n / dt:,.0f} msg/s, every one acknowledged)")


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + '{bridge="site"}'):
                return float(line.rsplit(" ", 1)[1])
    return None


def drain(mport, n, timeout=600):
    deadline = time.monotonic() + timeout
    while metric(mport, "hato_bridge_connected") != 1:
        assert time.monotonic() < deadline, "the bridge never connected"
        time.sleep(0.005)
    t0 = time.monotonic()
    while True:
        left = metric(mport, "hato_bridge_backlog_messages")
        if left == 0:
            break
        assert time.monotonic() < deadline, f"still {left} queued"
        time.sleep(0.01)
    dt = time.monotonic() - t0
    print(f"drained {n} messages in {dt:.2f} s after the bridge connected: {n / dt:,.0f} msg/s")


def count(port, filt, n, seconds):
    s = open_conn(port, "")
    r = Reader(s)
    s.sendall(mq.subscribe(1, filt, qos=1))
    got, deadline = 0, time.monotonic() + seconds
    s.settimeout(1.0)
    while got < n and time.monotonic() < deadline:
        try:
            pkts = r.packets()
        except socket.timeout:
            continue
        acks = []
        for ptype, body in pkts:
            if ptype >> 4 == 3:
                got += 1
                if ptype & 0x06:
                    tl = struct.unpack_from("!H", body)[0]
                    acks.append(b"\x40\x02" + body[2 + tl:4 + tl])
        if acks:
            s.sendall(b"".join(acks))
    print(f"received {got} of {n}")
    return got == n


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "publish":
        publish(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 64)
    elif cmd == "drain":
        drain(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "count":
        sys.exit(0 if count(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])) else 1)
    else:
        sys.exit(__doc__)
