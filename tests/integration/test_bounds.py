# Per-client costs stay within the configured limits: large packets arrive in
# pieces, shared-group names are freed, a client that sends but never reads
# is paused and then dropped, CONNECT is bounded in size, and a DISCONNECT
# reason code survives the client's unread input.

import os
import socket
import struct
import threading
import time

import pytest

import raw_mqtt
from raw_mqtt import RawClient
from build_info import sanitized

pytestmark = pytest.mark.hato_only("reads the broker's RSS and hato-only limits")




@pytest.fixture
def no_quarantine(monkeypatch):
    """Under AddressSanitizer, freed memory is reused at once (no quarantine),
    so RSS shows what the broker keeps, not what ASan holds back."""
    opts = [o for o in os.environ.get("ASAN_OPTIONS", "").split(":") if o]
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(opts + ["quarantine_size_mb=0", "thread_local_quarantine_size_kb=0"]))


def rss_kb(broker):
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_until_peer_closed(sock, timeout):
    """True once the kernel's TCP state for sock leaves ESTABLISHED (the peer
    sent FIN or RST); reads nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        if state != 1:   # TCP_ESTABLISHED
            return True
        time.sleep(0.05)
    return False


def test_large_publish_in_pieces(broker_factory):
    b = broker_factory({"limits": {"max_packet_size": 4 * 1024 * 1024}})
    sub = RawClient(b)
    sub.connect("big-sub")
    sub.send(raw_mqtt.subscribe(1, "big/t", qos=0))
    sub.expect(raw_mqtt.SUBACK)
    pub = RawClient(b)
    pub.connect("big-pub")
    payload = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    wire = raw_mqtt.publish("big/t", payload)
    for off in range(0, len(wire), 4096):
        pub.send(wire[off:off + 4096])
    p = sub.expect(raw_mqtt.PUBLISH, timeout=20)
    topic, _, _, got = raw_mqtt.parse_publish(p)
    assert topic == "big/t"
    assert got == payload
    # The publisher is still served.
    pub.send(raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b""))
    pub.expect(raw_mqtt.PINGRESP)
    sub.close()
    pub.close()


def test_shared_group_names_are_freed(broker_factory, no_quarantine):
    b = broker_factory({"limits": {"max_packet_size": 1024 * 1024}})
    warm = RawClient(b)
    warm.connect("warm")
    warm.close()
    time.sleep(0.3)
    baseline = rss_kb(b)
    c = RawClient(b)
    c.connect("share-churn", version=5)
    name = "g" * (60 * 1024)
    for i in range(600):
        topic = f"$share/{name}{i}/t"
        pid = i % 60000 + 1
        c.send(raw_mqtt.subscribe(pid, topic, qos=1, version=5))
        c.expect(raw_mqtt.SUBACK)
        c.send(raw_mqtt.unsubscribe(pid, topic, version=5))
        c.expect(raw_mqtt.UNSUBACK)
    c.send(raw_mqtt.disconnect(version=5))
    c.wait_closed()
    c.close()
    time.sleep(0.5)
    grown_kb = rss_kb(b) - baseline
    print(f"RSS after 600 $share sub/unsub pairs of 60 KB names: +{grown_kb} KB")
    # 600 names of 60 KB each would be 35 MB if they were kept.
    assert grown_kb < (16 if sanitized(b) else 8) * 1024, grown_kb


def test_client_that_never_reads_is_bounded_and_dropped(broker_factory, no_quarantine):
    max_output = 64 * 1024
    b = broker_factory({"limits": {"max_output_bytes": max_output, "slow_client_timeout_ms": 1000}})
    time.sleep(0.2)
    baseline = rss_kb(b)
    c = RawClient(b)
    c.connect("never-reads", version=5)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # PUBRECs for ids the broker never sent: each is answered with a PUBREL.
    chunk = b"".join(raw_mqtt.packet(raw_mqtt.PUBREC, 0, struct.pack("!H", pid)) for pid in range(1, 16385))
    c.sock.setblocking(False)
    sent = 0
    peak = 0
    stalled_since = None
    deadline = time.monotonic() + 6
    while sent < 20 * 1024 * 1024 and time.monotonic() < deadline:
        try:
            sent += c.sock.send(chunk)
            stalled_since = None
        except BlockingIOError:
            # The broker stopped reading: our send buffer stays full.
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            break
        peak = max(peak, rss_kb(b))
    print(f"sent {sent} bytes of PUBRECs; broker RSS {baseline} KB -> peak {peak} KB")
    assert sent < 20 * 1024 * 1024, "the broker kept reading a client that never reads"
    # Output held for the client: the limit, plus the replies to what one
    # loop pass had already received when reading paused (io_uring: up to its
    # 4 MiB buffer ring), buffer growth included; far below the 20 MiB sent.
    bound_kb = (2 * max_output) // 1024 + 16 * 1024
    if sanitized(b):
        bound_kb *= 2   # redzones and shadow memory
    assert peak - baseline < bound_kb, (peak - baseline, bound_kb)
    # Still not reading: dropped after slow_client_timeout_ms (plus the
    # 2 s flush limit of the close). Timing: asserted on the release build.
    if sanitized(b):
        c.close()
        return
    # Watched without reading: a read here would make the client a reader
    # again before the broker's verdict, and it would rightly stay.
    assert wait_until_peer_closed(c.sock, 8), \
        "a client over max_output_bytes for longer than slow_client_timeout_ms stayed connected"
    c.close()
    # The broker still serves others.
    other = RawClient(b)
    other.connect("other")
    other.close()


def test_connect_larger_than_max_connect_packet_size_is_closed(broker_factory):
    b = broker_factory({"limits": {"max_connect_packet_size": 1024}})
    c = RawClient(b)
    c.send(raw_mqtt.connect("big-connect", will={"topic": "w", "payload": "x" * 4000}))
    assert c.wait_closed(timeout=5) == []
    c.close()
    ok = RawClient(b)
    ok.connect("small-connect", will={"topic": "w", "payload": "x" * 100})
    ok.close()


def test_connect_timeout_is_configurable(broker_factory):
    b = broker_factory({"limits": {"connect_timeout_ms": 500}})
    c = RawClient(b)
    start = time.monotonic()
    assert c.wait_closed(timeout=5) == []
    took = time.monotonic() - start
    assert took < 3, took
    c.close()


def test_disconnect_reason_survives_unread_input(broker_factory):
    b = broker_factory({"mqtt": {"receive_maximum": 5}})
    c = RawClient(b)
    ack = c.connect("rm-unread", version=5)
    receive_max = raw_mqtt.connack_props(ack).get(raw_mqtt.RECEIVE_MAXIMUM, 65535)
    assert receive_max == 5
    # QoS 2 publishes stay in flight until PUBREL (never sent): the 6th
    # exceeds the receive maximum. More data follows for a second, so the
    # broker closes while input is still arriving and unread.
    burst = b"".join(raw_mqtt.publish("rm/t", b"x", qos=2, pid=pid, version=5) for pid in range(1, receive_max + 2))
    filler = raw_mqtt.publish("rm/t", b"y" * 60000, qos=0, version=5)
    errors = []

    def writer():
        try:
            c.sock.sendall(burst)
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                c.sock.sendall(filler)
        except OSError as e:   # reset: the broker closed without reading
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    t.join(10)
    # The broker closed meanwhile; only now do we read.
    seen = c.wait_closed(timeout=5)
    types = [(p.type, p.body[:1]) for p in seen]
    assert types[-1] == (raw_mqtt.DISCONNECT, b"\x93"), types
    assert not errors, errors
    c.close()


def _hwm_kb(broker):
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_subscribe_to_many_large_retained_messages_holds_only_what_the_client_has_room_for(broker_factory, no_quarantine):
    # A SUBSCRIBE decoded every retained message it matched from the log
    # into one list on the heap before sending any: 48 MiB of retained
    # firmware images became 48 MiB of broker memory at once (a 400 MiB set,
    # a gateway's whole RAM), for a client with room for one.
    b = broker_factory({"limits": {"max_output_bytes": 256 * 1024}})
    pub = RawClient(b)
    pub.connect("fw")
    blob = b"f" * (256 * 1024)
    for i in range(192):
        pub.send(raw_mqtt.publish(f"fw/{i}", blob, qos=1, pid=i + 1, retain=True))
        pub.expect(raw_mqtt.PUBACK)
    time.sleep(0.3)
    before = _hwm_kb(b)
    c = RawClient(b)
    c.connect("never-reads", version=5)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send(raw_mqtt.subscribe(1, "fw/#", qos=0, version=5))
    # Everyone else is served meanwhile.
    pub.send(bytes([0xC0, 0]))
    pub.expect(raw_mqtt.PINGRESP)
    time.sleep(0.5)
    grown_kb = _hwm_kb(b) - before
    print(f"peak RSS grew {grown_kb} KB for a SUBSCRIBE matching 48 MiB of retained messages")
    bound_kb = 16 * 1024
    if sanitized(b):
        bound_kb *= 2   # redzones and shadow memory
    assert grown_kb < bound_kb, grown_kb
    c.close()
    pub.close()
