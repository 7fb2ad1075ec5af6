# 1 MiB messages at QoS 0 and QoS 1 pass through intact and in order: to a
# subscriber that reads at once, and to one that reads slowly (each message
# is larger than max_output_bytes, so the broker holds its intake back while
# that subscriber drains; with slow_consumer_ms long enough nothing is lost).
import os
import socket
import threading
import time

import pytest

import raw_mqtt
from raw_mqtt import RawClient

MIB = 1024 * 1024
COUNT = 4
LIMITS = {"max_packet_size": 2 * MIB, "slow_consumer_ms": 20000}


def _payloads():
    # Distinct bytes per message, so a mix-up or a truncation shows.
    return [os.urandom(64) * (MIB // 64) for _ in range(COUNT)]


def _publish_all(b, qos, payloads, errors):
    try:
        pub = RawClient(b, timeout=30)
        pub.connect(f"big-pub-{qos}")
        for i, payload in enumerate(payloads):
            pub.send(raw_mqtt.publish("big/t", payload, qos=qos, pid=i + 1 if qos else None))
        for i in range(len(payloads) if qos else 0):
            ack = pub.expect(raw_mqtt.PUBACK, timeout=30)
            assert ack.body[:2] == (i + 1).to_bytes(2, "big")
        pub.close()
    except BaseException as e:  # reported by the test thread
        errors.append(e)


def _receive(sub, qos, count, pause=0.0):
    got = []
    for _ in range(count):
        if pause:
            time.sleep(pause)
        p = sub.expect(raw_mqtt.PUBLISH, timeout=30)
        topic, pid, _, payload = raw_mqtt.parse_publish(p)
        assert topic == "big/t"
        assert (p.flags >> 1) & 3 == qos
        if qos:
            sub.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, pid.to_bytes(2, "big")))
        got.append(payload)
    return got


def _run(broker_factory, qos, slow):
    b = broker_factory({"limits": LIMITS})
    sub = RawClient(b, timeout=30)
    if slow:   # a small receive buffer: the broker's output waits on this reader
        sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sub.connect(f"big-sub-{qos}")
    sub.send(raw_mqtt.subscribe(1, "big/t", qos=qos))
    sub.expect(raw_mqtt.SUBACK)
    payloads = _payloads()
    errors = []
    t = threading.Thread(target=_publish_all, args=(b, qos, payloads, errors))
    t.start()
    try:
        got = _receive(sub, qos, COUNT, pause=0.4 if slow else 0.0)
    finally:
        t.join(60)
    assert not errors, errors
    assert len(got) == COUNT
    for i, (want, have) in enumerate(zip(payloads, got)):
        assert len(have) == len(want), f"message {i}: {len(have)} bytes, sent {len(want)}"
        assert have == want, f"message {i} differs"
    # Still served afterwards.
    sub.send(raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b""))
    sub.expect(raw_mqtt.PINGRESP)
    sub.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_1mib_messages_pass_intact(broker_factory, qos):
    _run(broker_factory, qos, slow=False)


@pytest.mark.parametrize("qos", [0, 1])
def test_1mib_messages_reach_a_slow_reader_intact(broker_factory, qos):
    _run(broker_factory, qos, slow=True)
