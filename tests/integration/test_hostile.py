# Hostile and careless clients. Each scenario runs against a fresh broker
# while a well-behaved client (in its own process, so this test's Python work
# does not delay it) measures QoS 1 round trips; every scenario asserts
#   - the well-behaved client's round trip p99 stays under P99_BOUND_S (the
#     target is 10 ms; the bound is generous for a shared, loaded 2-core
#     machine, where floods measured up to ~240 ms; the figure is printed),
#   - the broker's RSS (from /proc/<pid>/status) stays under a bound computed
#     from the configured limits and what the scenario legitimately stores,
#   - afterwards, what no live session holds is freed: RSS comes back within
#     a margin of the baseline.
# Counts are scaled to keep the whole file near a minute per backend.
# Storage is off: this measures the reactor and memory, not the disk.

import multiprocessing
import os
import resource
import select
import socket
import struct
import subprocess
import time

import pytest

import raw_mqtt
from build_info import sanitized
from raw_mqtt import RawClient
from proc_status import status_bytes

P99_BOUND_S = 0.500
# A flood of small PUBLISHes from one client: the reactor handles at most
# kInputBudgetPerPass of one connection's input per pass, so the others wait
# about a pass of it (a few ms). Measured on the shared 2-core VM at load ~15:
# p99 90-190 ms (without the budget: 530-720 ms); idle, a few ms.
RETAINED_FLOOD_P99_BOUND_S = 0.250
MiB = 1 << 20
KiB = 1 << 10

# The configured limits every scenario runs under (bounds are computed from these).
MAX_PACKET = 256 * KiB
MAX_OUTPUT = 256 * KiB
MAX_CONNECTIONS = 8000
MAX_QUEUED = 2000
# What the broker may spend per open connection (its own state, reactor
# bookkeeping, receive buffer) and per stored subscription / retained message
# beyond their bytes: budgets, not measurements.
PER_CONN = 4 * KiB
PER_SUB = 512
PER_RETAINED = 512
# Allocator and measurement noise on top of any bound.
SLACK = 16 * MiB

SETTINGS = {
    "storage": {"enabled": False},
    "limits": {"max_connections": MAX_CONNECTIONS, "max_packet_size": MAX_PACKET,
               "max_output_bytes": MAX_OUTPUT, "max_queued_messages": MAX_QUEUED},
}

pytestmark = pytest.mark.hato_only("reads the broker's RSS and runs scenarios sized for hato's limits")


# --- measurements -------------------------------------------------------------

def rss(b):
    return status_bytes(b.proc.pid, "VmRSS")


def _probe_main(host, port, conn, stop):
    """The well-behaved client: every 5 ms a QoS 1 PUBLISH to its own
    subscription; the round trip ends when both the PUBACK and the message
    itself are back. Sends [(monotonic time, seconds)] when stopped."""
    class Addr:
        pass
    a = Addr()
    a.host, a.port = host, port
    samples = []
    error = None
    try:
        c = RawClient(a)
        c.connect("probe", version=4, keepalive=60)
        c.send(raw_mqtt.subscribe(1, "probe/rt", 1))
        c.expect(raw_mqtt.SUBACK)
        pid = 0
        while not stop.is_set():
            pid = pid % 65535 + 1
            t0 = time.monotonic()
            c.send(raw_mqtt.publish("probe/rt", b"p", qos=1, pid=pid))
            acked = echoed = False
            while not (acked and echoed):
                p = c.read(timeout=10)
                if p.type == raw_mqtt.PUBACK:
                    acked = True
                elif p.type == raw_mqtt.PUBLISH:
                    c.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, p.body[-3:-1]))   # topic, id, 1-byte payload
                    echoed = True
            samples.append((t0, time.monotonic() - t0))
            stop.wait(0.005)
    except Exception as e:  # reported to the test, which fails on it
        error = repr(e)
    conn.send((samples, error))


class Probe:
    def __init__(self, b):
        ctx = multiprocessing.get_context("fork")
        self.stop = ctx.Event()
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_probe_main, args=(b.host, b.port, send, self.stop), daemon=True)
        self.proc.start()
        self.result = None

    def finish(self):
        if self.result is None:
            self.stop.set()
            if not self.recv.poll(30):
                self.proc.kill()
                raise AssertionError("the well-behaved client did not report")
            self.result = self.recv.recv()
            self.proc.join(5)
        return self.result

    def p99(self, since, until, label):
        samples, error = self.finish()
        assert error is None, f"the well-behaved client failed: {error}"
        rtts = sorted(rtt for t, rtt in samples if since <= t <= until)
        assert len(rtts) >= 5, f"too few round trips measured during {label}: {len(rtts)}"
        p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
        p50 = rtts[len(rtts) // 2]
        print(f"[{label}] well-behaved QoS 1 round trip: n={len(rtts)} p50={p50 * 1e3:.1f} ms "
              f"p99={p99 * 1e3:.1f} ms max={rtts[-1] * 1e3:.1f} ms")
        return p99


class Scenario:
    """A fresh broker, its baseline RSS and the probe running."""

    def __init__(self, broker_factory, settings=None):
        s = {k: dict(v) for k, v in SETTINGS.items()}
        for k, v in (settings or {}).items():
            s.setdefault(k, {}).update(v)
        self.b = broker_factory(s)
        self.probe = Probe(self.b)
        time.sleep(0.5)                 # the probe connected and warmed up
        self.base = rss(self.b)
        self.peak = self.base
        self.t0 = time.monotonic()

    def sample(self):
        self.peak = max(self.peak, rss(self.b))
        return self.peak

    def check_during(self, label, bound, p99_bound=P99_BOUND_S):
        t1 = time.monotonic()
        time.sleep(0.3)                 # a few round trips after the load, too
        p99 = self.probe.p99(self.t0, t1 + 0.3, label)
        self.sample()
        print(f"[{label}] RSS baseline {self.base / MiB:.1f} MiB, peak {self.peak / MiB:.1f} MiB, "
              f"bound {bound / MiB:.1f} MiB")
        if not sanitized(self.b):   # RSS bounds: asserted on the release build
            assert self.peak <= bound, f"{label}: RSS {self.peak / MiB:.1f} MiB over {bound / MiB:.1f} MiB"
        # A sanitized broker runs several times slower: a bound measured on
        # the release build is doubled there (a stall of seconds still fails).
        if sanitized(self.b):
            p99_bound *= 2
        assert p99 < p99_bound, f"{label}: p99 {p99 * 1e3:.1f} ms (bound {p99_bound * 1e3:.0f} ms)"

    def check_freed(self, label, again=None, settle=3.0):
        """What the scenario stored is gone: RSS back within a margin of the
        baseline. The allocator returns freed memory to the kernel only in
        part, so if RSS stays high the scenario runs `again` (the same load,
        then its removal): memory that was freed is reused, so a second round
        must not grow RSS past the first round's peak; a leak would."""
        margin = 4 * MiB + (self.peak - self.base) // 4
        deadline = time.monotonic() + settle
        while True:
            now = rss(self.b)
            if now <= self.base + margin or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print(f"[{label}] RSS after: {now / MiB:.1f} MiB (baseline {self.base / MiB:.1f}, "
              f"peak {self.peak / MiB:.1f}, within {(self.base + margin) / MiB:.1f}?)")
        assert self.b.alive()
        if now <= self.base + margin or sanitized(self.b):   # ASan: quarantine holds freed memory
            return
        assert again is not None, f"{label}: RSS stays at {now / MiB:.1f} MiB"
        first_peak = self.peak
        again()
        again_rss = max(rss(self.b), self.peak)
        # A leak would add about the whole first round again; tables that keep
        # their capacity (or tombstones) until rehashed may add a little.
        allowed = first_peak + (first_peak - self.base) // 4 + 2 * MiB
        print(f"[{label}] second round: RSS {again_rss / MiB:.1f} MiB "
              f"(first peak {first_peak / MiB:.1f}, allowed {allowed / MiB:.1f})")
        if not sanitized(self.b):   # ASan keeps freed memory in quarantine
            assert again_rss <= allowed, f"{label}: a second round grew RSS to {again_rss / MiB:.1f} MiB: not freed"


def connect_packet(cid, version=4, keepalive=60, user=None, password=None, will=None, clean=True):
    body = raw_mqtt.connect(cid, version, keepalive=keepalive, clean=clean, will=will)
    if user is None:
        return body
    # raw_mqtt.connect has no credentials: add the flags and fields
    _, pos = raw_mqtt.read_varint(body, 1)
    var = bytearray(body[pos:])
    flags_at = 2 + len(b"MQTT") + 1
    var[flags_at] |= 0x80 | (0x40 if password is not None else 0)
    var += raw_mqtt.mstr(user)
    if password is not None:
        var += raw_mqtt.mstr(password)
    return raw_mqtt.packet(raw_mqtt.CONNECT, 0, bytes(var))


def open_sockets(b, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection((b.host, b.port), timeout=10)
        socks.append(s)
    return socks


def read_one_packet(s, timeout=10):
    """Reads exactly one packet from a blocking socket (no buffering beyond it)."""
    s.settimeout(timeout)
    head = s.recv(2, socket.MSG_WAITALL)
    if len(head) < 2:
        raise EOFError("closed")
    length, shift, data = head[1] & 0x7F, 7, head
    while data[-1] & 0x80:
        data += s.recv(1)
        length |= (data[-1] & 0x7F) << shift
        shift += 7
    body = s.recv(length, socket.MSG_WAITALL) if length else b""
    return raw_mqtt.Packet(data[0], body)


def sub_packet(pid, filters, qos=0):
    body = struct.pack("!H", pid) + b"".join(raw_mqtt.mstr(f) + bytes([qos]) for f in filters)
    return raw_mqtt.packet(raw_mqtt.SUBSCRIBE, 2, body)


# --- scenarios ----------------------------------------------------------------

IDLE_CONNECTIONS = 5000


def _fd_budget(wanted):
    """`wanted` sockets, or fewer if the open-file limit (shared by this
    process and the broker it starts) cannot be raised that far."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted + 500 and (hard == resource.RLIM_INFINITY or hard > soft):
        soft = wanted + 500 if hard == resource.RLIM_INFINITY else min(hard, wanted + 500)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return max(100, min(wanted, soft - 500))


def open_fds(b):
    return len(os.listdir(f"/proc/{b.proc.pid}/fd"))


def test_connections_that_never_send_connect(broker_factory):
    n = _fd_budget(IDLE_CONNECTIONS)   # raised before the broker starts: it inherits the limit
    sc = Scenario(broker_factory)
    socks = open_sockets(sc.b, n)
    try:
        deadline = time.monotonic() + 10
        while open_fds(sc.b) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds(sc.b) >= n, "the broker did not accept every connection"
        time.sleep(0.5)
        sc.sample()
        sc.check_during(f"{n} connections without CONNECT", sc.base + n * PER_CONN + SLACK)
        # the broker still accepts and serves a real client
        c = RawClient(sc.b)
        c.connect("after-idle")
        c.close()
    finally:
        for s in socks:
            s.close()
    sc.check_freed("connections without CONNECT")


SLOW_PER_STAGE = 20


def test_slowloris_connect_subscribe_publish(broker_factory):
    sc = Scenario(broker_factory)
    drips = []   # (socket, bytes to drip, expected answer type)
    for i in range(SLOW_PER_STAGE):
        s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
        drips.append((s, connect_packet(f"slow-c{i}"), raw_mqtt.CONNACK))
    for i in range(SLOW_PER_STAGE):
        s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
        s.sendall(connect_packet(f"slow-s{i}"))
        read_one_packet(s)
        drips.append((s, raw_mqtt.subscribe(1, f"slow/{i}/#", 1), raw_mqtt.SUBACK))
    for i in range(SLOW_PER_STAGE):
        s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
        s.sendall(connect_packet(f"slow-p{i}"))
        read_one_packet(s)
        drips.append((s, raw_mqtt.publish(f"slow/p/{i}", b"drip", qos=1, pid=1), raw_mqtt.PUBACK))
    longest = max(len(d[1]) for d in drips)
    for k in range(longest):   # one byte per connection every 100 ms
        for s, data, _ in drips:
            if k < len(data):
                s.send(data[k:k + 1])
        time.sleep(0.1)
        if k % 5 == 0:
            sc.sample()
    for s, _, answer in drips:
        assert read_one_packet(s).type == answer
    sc.check_during(f"slowloris x{len(drips)} ({longest} bytes at 10 bytes/s)",
                    sc.base + len(drips) * PER_CONN + SLACK)
    for s, _, _ in drips:
        s.close()
    sc.check_freed("slowloris")


TRICKLERS = 40
TRICKLE_KEEPALIVE_S = 2


def test_large_publishes_trickled_are_closed_at_the_keep_alive(broker_factory):
    """Keep alive counts whole packets: clients that send most of a large
    PUBLISH and then a byte now and then (each holding a partial packet's
    buffer) are closed 1.5x their keep alive after their last whole packet,
    their buffers freed; a client that sends whole packets stays."""
    sc = Scenario(broker_factory)
    head = raw_mqtt.publish("trickle/t", b"x" * (MAX_PACKET - 64))
    socks = []
    for i in range(TRICKLERS):
        s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
        s.sendall(connect_packet(f"trickle-{i}", keepalive=TRICKLE_KEEPALIVE_S))
        assert read_one_packet(s).type == raw_mqtt.CONNACK
        s.sendall(head[:len(head) // 2])
        socks.append(s)
    alive = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
    alive.sendall(connect_packet("whole-packets", keepalive=TRICKLE_KEEPALIVE_S))
    assert read_one_packet(alive).type == raw_mqtt.CONNACK
    sc.sample()
    closed_at = {}
    start = time.monotonic()
    k = len(head) // 2
    while len(closed_at) < TRICKLERS and time.monotonic() - start < 4 * TRICKLE_KEEPALIVE_S:
        for i, s in enumerate(socks):
            if i in closed_at:
                continue
            try:
                s.send(head[k:k + 1])
                s.setblocking(False)
                if s.recv(1) == b"":
                    closed_at[i] = time.monotonic() - start
            except BlockingIOError:
                pass
            except OSError:
                closed_at[i] = time.monotonic() - start
            finally:
                s.setblocking(True)
        k += 1
        alive.sendall(raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b""))
        assert read_one_packet(alive).type == raw_mqtt.PINGRESP
        sc.sample()
        time.sleep(0.25)
    assert len(closed_at) == TRICKLERS, f"still open after {4 * TRICKLE_KEEPALIVE_S} s: {TRICKLERS - len(closed_at)}"
    # Due 1.5x the keep alive after the CONNECT; the broker checks on its tick.
    assert max(closed_at.values()) < 1.5 * TRICKLE_KEEPALIVE_S + 2.0, closed_at
    print(f"tricklers closed after {min(closed_at.values()):.1f}-{max(closed_at.values()):.1f} s")
    sc.check_during(f"{TRICKLERS} trickled large PUBLISHes",
                    sc.base + TRICKLERS * (MAX_PACKET + PER_CONN) + SLACK)
    for s in socks:
        s.close()
    alive.sendall(raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b""))
    assert read_one_packet(alive).type == raw_mqtt.PINGRESP
    alive.close()
    sc.check_freed("trickled large PUBLISHes")


NEVER_READ_S = 6.0


def test_client_that_publishes_and_never_reads(broker_factory):
    sc = Scenario(broker_factory)
    s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)   # it never reads: keep the kernel's part small
    s.sendall(raw_mqtt.connect("never-reads", 5, keepalive=0))
    read_one_packet(s)
    s.sendall(raw_mqtt.subscribe(1, "nr/t", 0, version=5))
    read_one_packet(s)
    # Publishes to its own subscription (a forward each) and PUBRECs for ids
    # never used (a PUBREL 0x92 each), never reading. (QoS 0: QoS 1 without
    # waiting for PUBACKs would exceed the Receive Maximum and be closed.)
    batch = b"".join(raw_mqtt.publish("nr/t", b"x" * 200, version=5)
                     + b"".join(raw_mqtt.packet(raw_mqtt.PUBREC, 0, struct.pack("!H", (i * 50 + k) % 65000 + 1))
                                for k in range(50))
                     for i in range(100))
    s.setblocking(False)
    sent = 0
    end = time.monotonic() + NEVER_READ_S
    next_sample = 0.0
    pos = 0
    while time.monotonic() < end:
        try:
            n = s.send(batch[pos:])   # a partial send continues where it stopped
            sent += n
            pos = (pos + n) % len(batch)
        except BlockingIOError:
            select.select([], [s], [], 0.05)
        if time.monotonic() > next_sample:
            sc.sample()
            next_sample = time.monotonic() + 0.2
    print(f"[never reads] sent {sent / MiB:.1f} MiB in {NEVER_READ_S} s")
    # its output may hold max_output_bytes, its input one packet; kernel
    # socket buffers are not in the broker's RSS
    sc.check_during("publisher that never reads", sc.base + MAX_OUTPUT + MAX_PACKET + SLACK)
    s.close()
    sc.check_freed("publisher that never reads")


WRONG_PASSWORDS = 1000


def _passwd_tool():
    hato = os.environ.get("HATO_BIN") or ""
    cand = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(hato))), "auth", "hato-passwd")
    if not os.access(cand, os.X_OK):
        pytest.skip(f"hato-passwd not found next to HATO_BIN ({cand})")
    return cand


def test_wrong_passwords(broker_factory, tmp_path):
    # A cheap iteration count keeps this bounded whether hashing runs on the
    # reactor or on a worker pool; the real default costs ~100x more each.
    passwd = str(tmp_path / "passwd")
    tool = _passwd_tool()
    subprocess.run([tool, "-c", "-b", "-I", "1000", passwd, "dev", "right"], check=True, timeout=30)
    subprocess.run([tool, "-b", "-I", "1000", passwd, "probe-user", "x"], check=True, timeout=30)
    sc = Scenario(broker_factory, {"auth": {"password_file": passwd, "allow_anonymous": True}})
    refused = 0
    t0 = time.monotonic()
    wave = 50
    for w in range(WRONG_PASSWORDS // wave):
        socks = open_sockets(sc.b, wave)
        for i, s in enumerate(socks):
            s.sendall(connect_packet(f"bad-{w}-{i}", user="dev", password=f"wrong{i}"))
        for s in socks:
            try:
                p = read_one_packet(s)
                assert p.type == raw_mqtt.CONNACK and p.body[1] != 0, p
                refused += 1
            except EOFError:
                refused += 1   # refused without an answer (rate limited) counts too
            s.close()
        sc.sample()
    took = time.monotonic() - t0
    print(f"[wrong passwords] {refused} refused in {took:.1f} s")
    assert refused == WRONG_PASSWORDS
    assert took < 30
    sc.check_during(f"{WRONG_PASSWORDS} wrong passwords", sc.base + wave * PER_CONN + SLACK)
    sc.check_freed("wrong passwords")


SUBSCRIPTIONS = 65536


def _many_subscriptions(sc, cid):
    """SUBSCRIPTIONS filters from one client; returns its socket and the filter bytes."""
    s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
    s.sendall(connect_packet(cid))
    read_one_packet(s)
    per_packet = 1024
    filters_bytes = 0
    for k in range(SUBSCRIPTIONS // per_packet):
        filters = [f"subs/{k}/{i}/+" for i in range(per_packet)]
        filters_bytes += sum(len(f) for f in filters)
        s.sendall(sub_packet(k + 1, filters, 1))
        ack = read_one_packet(s)
        assert ack.type == raw_mqtt.SUBACK and len(ack.body) == 2 + per_packet
        if k % 8 == 0:
            sc.sample()
    return s, filters_bytes


def _leave(s):
    s.sendall(raw_mqtt.disconnect())   # clean session: everything it held goes
    s.settimeout(10)
    assert s.recv(1) == b""
    s.close()


def test_64k_subscriptions_from_one_client(broker_factory):
    # What 64k subscriptions cost where the limit is lifted.
    sc = Scenario(broker_factory, {"limits": {"max_subscriptions_per_client": 0}})
    s, filters_bytes = _many_subscriptions(sc, "many-subs")
    # one of them works
    pub = RawClient(sc.b)
    pub.connect("many-subs-pub")
    pub.send(raw_mqtt.publish("subs/63/1023/x", b"hit"))
    p = read_one_packet(s)
    assert p.type == raw_mqtt.PUBLISH and p.body.endswith(b"hit")
    sc.check_during(f"{SUBSCRIPTIONS} subscriptions",
                    sc.base + SUBSCRIPTIONS * PER_SUB + 2 * filters_bytes + SLACK)
    _leave(s)
    pub.close()
    sc.check_freed("64k subscriptions", again=lambda: _leave(_many_subscriptions(sc, "many-subs-2")[0]))


def test_subscriptions_past_the_default_limit_are_refused(broker_factory):
    b = broker_factory(SETTINGS)
    s = socket.create_connection((b.host, b.port), timeout=10)
    s.sendall(connect_packet("sub-limit"))
    read_one_packet(s)
    per_packet = 1024
    codes = []
    for k in range(11):   # 11264 filters against the default 10000
        s.sendall(sub_packet(k + 1, [f"lim/{k}/{i}" for i in range(per_packet)], 1))
        ack = read_one_packet(s)
        assert ack.type == raw_mqtt.SUBACK
        codes += list(ack.body[2:])
    assert codes[:10000] == [1] * 10000
    assert codes[10000:] == [0x80] * (len(codes) - 10000)
    # A subscription it holds still works, and may be replaced.
    s.sendall(sub_packet(12, ["lim/0/0"], 0))
    assert read_one_packet(s).body[2:] == b"\x00"
    pub = RawClient(b)
    pub.connect("sub-limit-pub")
    pub.send(raw_mqtt.publish("lim/10/1023", b"refused"))
    pub.send(raw_mqtt.publish("lim/0/0", b"held"))
    p = read_one_packet(s)
    assert p.type == raw_mqtt.PUBLISH and p.body.endswith(b"held")
    _leave(s)
    pub.close()


def test_deep_topics_and_filters_are_refused(broker_factory):
    """Depth is memory per level and a probe per level of every match:
    past [limits] max_topic_levels (64 by default) topics and filters are
    refused. At the limit, filters that branch near the root (the costly
    shape for matching) leave the broker answering others promptly."""
    sc = Scenario(broker_factory)
    sub = RawClient(sc.b)
    sub.connect("deep-sub")
    refused = ["/".join(["l"] * 1000), "/".join(["+"] * 1000), "d" + "/" * 60000, "/".join(["l"] * 65)]
    for pid, f in enumerate(refused, start=1):
        sub.send(raw_mqtt.subscribe(pid, f, 1))
        assert sub.expect(raw_mqtt.SUBACK).body[-1] == 0x80
    at_limit = "/".join(["l"] * 64)
    for pid, f in enumerate((at_limit, "l/#"), start=10):
        sub.send(raw_mqtt.subscribe(pid, f, 1))
        assert sub.expect(raw_mqtt.SUBACK).body[-1] == 1

    # 1024 filters whose first 10 levels are every mix of "a" and "+", then
    # "+" to the limit: a match probes each of them at every level.
    bulk = RawClient(sc.b)
    bulk.connect("deep-bulk")
    filters = ["/".join("a" if k >> i & 1 else "+" for i in range(10)) + "/+" * 54 for k in range(1024)]
    for chunk in range(0, 1024, 256):
        bulk.send(sub_packet(100 + chunk, filters[chunk:chunk + 256], 0))
        assert list(bulk.expect(raw_mqtt.SUBACK).body[2:]) == [0] * 256
    pub = RawClient(sc.b)
    pub.connect("deep-pub")
    # 63 levels: walked to the end by every filter, matched by none; a new
    # last level each time, so no route cache answers.
    for i in range(100):
        pub.send(raw_mqtt.publish("a/" * 62 + f"u{i}", b"x", qos=1, pid=i + 1))
        pub.expect(raw_mqtt.PUBACK)
    # Past the limit a v3.1.1 publisher (no refusal code) is acknowledged
    # and the message dropped, like one the ACL denies; at the limit it is
    # delivered.
    pub.send(raw_mqtt.publish(at_limit + "/l", b"deeper", qos=1, pid=201))
    pub.expect(raw_mqtt.PUBACK)
    pub.send(raw_mqtt.publish(at_limit, b"deep", qos=1, pid=200))
    pub.expect(raw_mqtt.PUBACK)
    assert sub.expect(raw_mqtt.PUBLISH).body.endswith(b"deep")   # once per client (v3.1.1), two filters match
    assert "its topic has more than 64 levels" in sc.b.log()
    # The same PUBLISHes pipelined, 200 in one write: the reactor's input
    # budget counts bytes, a pass's worth of which used to cost over half a
    # second of matching (2 s on the debug build). Now matching work is
    # budgeted per connection and pass: the rest waits for later passes.
    burst = b"".join(raw_mqtt.publish("a/" * 62 + f"v{i}", b"x", qos=1, pid=i + 1) for i in range(200))
    t_burst = time.monotonic()
    pub.send(burst)
    for _ in range(200):
        pub.expect(raw_mqtt.PUBACK)
    t_done = time.monotonic()
    pub.send(raw_mqtt.disconnect())
    time.sleep(0.2)
    samples, error = sc.probe.finish()
    assert error is None, error
    during = [rtt for t, rtt in samples if t_burst <= t <= t_done]
    worst = max(during)
    bound = 0.25 * (3 if sanitized(sc.b) else 1)
    print(f"[deep topics, pipelined] 200 PUBLISHes in {t_done - t_burst:.2f} s; well-behaved round trip: "
          f"n={len(during)} worst {worst * 1e3:.0f} ms (bound {bound * 1e3:.0f} ms)")
    assert len(during) >= 3 and worst < bound
    sc.check_during("deep topics", sc.base + SLACK)
    for c in (sub, bulk):
        c.send(raw_mqtt.disconnect())
    sc.check_freed("deep topics")


def test_sessions_nobody_ends_are_bounded(broker_factory):
    """A client reconnecting under new ids leaves a persistent session each
    time: past [limits] max_sessions the CONNECT is refused (return code 3)
    and logged, resuming one still works; an overlong id is refused too."""
    sc = Scenario(broker_factory, {"limits": {"max_sessions": 50}})
    codes = []
    for i in range(60):
        c = RawClient(sc.b)
        c.send(raw_mqtt.connect(f"left-behind-{i}", clean=False))
        codes.append(c.expect(raw_mqtt.CONNACK).body[1])
        c.close()
    held = codes.index(3)   # the probe's clean session counts too
    assert 45 <= held < 50 and codes == [0] * held + [3] * (60 - held)
    again = RawClient(sc.b)
    again.connect("left-behind-7", clean=False)
    again.close()
    long_id = RawClient(sc.b)
    long_id.send(raw_mqtt.connect("x" * 60000, clean=True))
    assert long_id.expect(raw_mqtt.CONNACK).body[1] == 2
    assert sc.b.log().count("refusing new persistent sessions: 50 held, max_sessions is 50") == 1
    sc.check_during("sessions", sc.base + SLACK)


def test_a_subscribe_matching_thousands_of_retained_messages_many_times_over(broker_factory):
    """One SUBSCRIBE of 2048 distinct filters, each matching all 1000
    retained QoS 1 messages, from a client that never reads: 2 M deliveries
    into a queue that is full after the first thousand. Each used to sweep
    that queue for expired messages (seconds of loop time); now they are
    dropped (counted) for the price of the match."""
    sc = Scenario(broker_factory)
    pub = RawClient(sc.b)
    pub.connect("retained-pub")
    pub.send(b"".join(raw_mqtt.publish("r" + "/x" * 10 + f"/{i}", b"v", qos=1, pid=i + 1, retain=True)
                      for i in range(1000)))
    for _ in range(1000):
        pub.expect(raw_mqtt.PUBACK)
    names = ["r"] + ["x"] * 10
    filters = []
    for k in range(1024):
        base = "/".join(names[j] if k >> j & 1 else "+" for j in range(11))
        filters += [base + "/+", base + "/#"]
    greedy = RawClient(sc.b)
    greedy.connect("greedy")
    greedy.send(sub_packet(1, filters, 1))
    time.sleep(1.5)
    pub.send(raw_mqtt.disconnect())
    samples, error = sc.probe.finish()
    assert error is None, error
    worst = max(rtt for _, rtt in samples)
    bound = 2.0 * (3 if sanitized(sc.b) else 1)
    print(f"[retained x filters] well-behaved QoS 1 round trip: worst {worst * 1e3:.0f} ms (bound {bound:.0f} s)")
    assert worst < bound
    assert sc.b.alive()


RETAINED_TOPICS = 100_000


def _retained_flood(s, n, payload):
    chunk = []
    for i in range(n):
        chunk.append(raw_mqtt.publish(f"flood/{i}", payload, retain=True))
        if len(chunk) == 4096:
            s.sendall(b"".join(chunk))
            chunk = []
    s.sendall(b"".join(chunk) + raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b""))
    assert read_one_packet(s, timeout=60).type == raw_mqtt.PINGRESP   # everything before it was handled


def test_retained_flood(broker_factory):
    sc = Scenario(broker_factory)
    s = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
    s.sendall(connect_packet("flooder"))
    read_one_packet(s)
    payload = b"r" * 16
    t0 = time.monotonic()
    _retained_flood(s, RETAINED_TOPICS, payload)
    print(f"[retained flood] {RETAINED_TOPICS} retained topics stored in {time.monotonic() - t0:.1f} s")
    sc.sample()
    check = RawClient(sc.b)
    check.connect("flood-check")
    check.send(raw_mqtt.subscribe(1, f"flood/{RETAINED_TOPICS - 1}", 0))
    check.expect(raw_mqtt.SUBACK)
    assert raw_mqtt.parse_publish(check.expect(raw_mqtt.PUBLISH))[3] == payload
    stored = RETAINED_TOPICS * (len(f"flood/{RETAINED_TOPICS}") + len(payload) + PER_RETAINED)
    sc.check_during(f"retained flood of {RETAINED_TOPICS} topics", sc.base + stored + SLACK,
                    p99_bound=RETAINED_FLOOD_P99_BOUND_S)
    _retained_flood(s, RETAINED_TOPICS, b"")   # empty retained payloads clear them
    check.close()

    def again():
        _retained_flood(s, RETAINED_TOPICS, payload)
        sc.sample()
        _retained_flood(s, RETAINED_TOPICS, b"")

    sc.check_freed("retained flood", again=again)
    s.close()


WILLS = 1000


def test_1000_wills_at_once(broker_factory):
    sc = Scenario(broker_factory)
    watcher = socket.create_connection((sc.b.host, sc.b.port), timeout=10)
    watcher.sendall(connect_packet("will-watcher"))
    read_one_packet(watcher)
    watcher.sendall(raw_mqtt.subscribe(1, "wills/#", 1))
    read_one_packet(watcher)
    socks = open_sockets(sc.b, WILLS)
    for i, s in enumerate(socks):
        s.sendall(connect_packet(f"will-{i}", will={"topic": f"wills/{i}", "payload": b"gone", "qos": 1}))
    for s in socks:
        assert read_one_packet(s).type == raw_mqtt.CONNACK
    sc.sample()
    for s in socks:   # all gone at once, without DISCONNECT
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    seen = set()
    buf = b""
    watcher.settimeout(10)
    deadline = time.monotonic() + 20
    while len(seen) < WILLS and time.monotonic() < deadline:
        buf += watcher.recv(65536)
        acks = []
        while len(buf) >= 2:
            length, pos = raw_mqtt.read_varint(buf, 1)
            if len(buf) < pos + length:
                break
            p = raw_mqtt.Packet(buf[0], buf[pos:pos + length])
            buf = buf[pos + length:]
            if p.type == raw_mqtt.PUBLISH:
                topic, pid, _, _ = raw_mqtt.parse_publish(p)
                seen.add(topic)
                acks.append(raw_mqtt.packet(raw_mqtt.PUBACK, 0, struct.pack("!H", pid)))
        if acks:
            watcher.sendall(b"".join(acks))
        sc.sample()
    assert len(seen) == WILLS, f"{len(seen)} wills of {WILLS}"
    sc.check_during(f"{WILLS} wills at once", sc.base + WILLS * PER_CONN + SLACK)
    watcher.close()
    sc.check_freed("1000 wills")
