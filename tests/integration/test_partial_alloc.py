# A client that announces a large PUBLISH makes the broker reserve the
# packet's whole size once part of it has arrived (resident memory still
# follows the bytes that came). Where address space is short (a 32-bit
# gateway) or overcommit is strict, a few such clients exhaust it: the
# reservation that fails closes its client (v5: DISCONNECT 0x97, quota
# exceeded), and the broker keeps serving everyone else. The shortage is made
# with an address-space limit (RLIMIT_AS) set on the running broker.
import resource
import select
import socket
import time

import pytest

import raw_mqtt
from build_info import sanitized
from metrics_util import metric, start_with_metrics
from proc_status import status_bytes
from raw_mqtt import RawClient

MiB = 1 << 20
ANNOUNCED = 64 * MiB    # remaining length of each hostile PUBLISH
SENT = 40 * MiB         # past half of it: its buffer is the whole packet
HEADROOM = 192 * MiB    # address space allowed above the broker's at start:
                        # two such buffers (and a growth's old copy) fit, three do not
TOPIC = b"big/hostile"


def _hostile(broker, n):
    """Connects (v5), announces ANNOUNCED bytes and sends SENT of them.
    Returns (socket, how it ended): "open", "disconnect 0x.." or "closed"."""
    s = socket.create_connection((broker.host, broker.port), timeout=10)
    s.sendall(raw_mqtt.connect(f"hostile-{n}", 5))
    ack = s.recv(64)
    assert ack and ack[0] >> 4 == raw_mqtt.CONNACK, ack
    head = bytes([raw_mqtt.PUBLISH << 4]) + raw_mqtt.varint(ANNOUNCED) + len(TOPIC).to_bytes(2, "big") + TOPIC
    s.sendall(head + b"\0" * 1)   # v5: empty properties
    chunk = b"h" * MiB
    try:
        for _ in range(SENT // MiB):
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        return s, "closed"
    # The broker has read it all (or closed) well within this.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        readable, _, _ = select.select([s], [], [], 0.2)
        if readable:
            try:
                data = s.recv(64)
            except ConnectionResetError:
                return s, "closed"
            if not data:
                return s, "closed"
            if data[0] >> 4 == raw_mqtt.DISCONNECT:
                return s, f"disconnect {data[2]:#x}"
            raise AssertionError(f"unexpected bytes from the broker: {data!r}")
    return s, "open"


def test_a_reservation_that_fails_closes_only_its_client(broker_factory):
    b = start_with_metrics(broker_factory, {"limits": {"max_packet_size": 256 * MiB}, "storage": {"enabled": False}})
    if sanitized(b):
        pytest.skip("AddressSanitizer reserves terabytes of shadow memory: no address-space limit fits it")
    sub = RawClient(b, timeout=10)
    sub.connect("ok-sub", version=4)
    sub.send(raw_mqtt.subscribe(1, "ok/t", qos=1))
    sub.expect(raw_mqtt.SUBACK)

    limit = status_bytes(b.proc.pid, "VmSize") + HEADROOM
    soft, hard = resource.prlimit(b.proc.pid, resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    held, endings = [], []
    try:
        for n in range(5):
            s, ending = _hostile(b, n)
            held.append(s)
            endings.append(ending)
            if ending != "open":
                break
        assert b.proc.poll() is None, f"the broker died: {b.log()[-2000:]}"
        assert endings[-1] == "disconnect 0x97", endings
        assert endings.count("open") >= 1, endings   # the limit left room for one at least
        assert metric(b, "hato_input_alloc_failures_total") == 1

        # Everyone else is served: a QoS 1 round trip through the broker.
        pub = RawClient(b, timeout=10)
        pub.connect("ok-pub", version=4)
        pub.send(raw_mqtt.publish("ok/t", b"still served", qos=1, pid=7))
        pub.expect(raw_mqtt.PUBACK)
        _, pid, _, payload = raw_mqtt.parse_publish(sub.expect(raw_mqtt.PUBLISH))
        assert payload == b"still served"
        sub.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, pid.to_bytes(2, "big")))
        pub.close()
    finally:
        for s in held:
            s.close()
        sub.close()
        if b.proc.poll() is None:
            resource.prlimit(b.proc.pid, resource.RLIMIT_AS, (soft, hard))   # a clean shutdown
