# Keep alive, Server Keep Alive and flow control, the behaviour the Eclipse
# Paho interoperability suite checks (our own tests, not that suite):
# keep alive expiry closes the client and fires its will within 1.5x keep
# alive; Server Keep Alive in CONNACK per [mqtt] max_keep_alive and
# server_keep_alive; the client's Receive Maximum is respected by the broker
# and the broker's own Receive Maximum is enforced (DISCONNECT 0x93).

import struct
import time

import pytest

import raw_mqtt

SERVER_KEEP_ALIVE = 0x13


def _connack_reason(ack):
    return ack.body[1]


def _watch_will(raw, b, topic):
    w = raw(b)
    w.connect(f"watch-{time.monotonic_ns()}")
    w.send(raw_mqtt.subscribe(1, topic, 1))
    w.expect(raw_mqtt.SUBACK)
    return w


@pytest.mark.mosquitto_fails("checks keep alive only every ~5 s")
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_keep_alive_expiry_closes_and_fires_will_within_1_5x(broker_factory, raw, version):
    b = broker_factory()
    watcher = _watch_will(raw, b, "kaf/#")
    silent = raw(b)
    silent.connect("kaf-silent", version=version, keepalive=2,
                   will={"topic": "kaf/silent", "payload": b"gone", "qos": 1})
    t0 = time.monotonic()
    silent.wait_closed(timeout=8)
    closed_after = time.monotonic() - t0
    p = watcher.expect(raw_mqtt.PUBLISH, timeout=8)
    will_after = time.monotonic() - t0
    assert raw_mqtt.parse_publish(p)[0] == "kaf/silent"
    print(f"keep alive 2 s: closed after {closed_after:.2f} s, will after {will_after:.2f} s")
    # 1.5 x 2 s = 3 s; a little slack for a loaded machine, far below any default
    assert 2.5 <= closed_after <= 4.0
    assert will_after <= 4.0


@pytest.mark.hato_only("[mqtt] server_keep_alive applies to v5 only; mosquitto's max_keepalive differs")
def test_server_keep_alive_not_imposed_on_v311(broker_factory, raw):
    # a v3.1.1 client cannot be told another keep alive: its own 2 s holds
    b = broker_factory({"mqtt": {"server_keep_alive": 90}})
    watcher = _watch_will(raw, b, "ka311/#")
    silent = raw(b)
    silent.connect("ka311", version=4, keepalive=2, will={"topic": "ka311/w", "payload": b"x"})
    t0 = time.monotonic()
    silent.wait_closed(timeout=8)
    assert time.monotonic() - t0 <= 4.0
    watcher.expect(raw_mqtt.PUBLISH, timeout=4)


@pytest.mark.hato_only("[mqtt] max_keep_alive is a hato key")
def test_max_keep_alive_v5_connack(broker_factory, raw):
    b = broker_factory({"mqtt": {"max_keep_alive": 10}})
    for asked, told in ((60, 10), (0, 10), (5, None), (10, None)):
        c = raw(b)
        ack = c.connect(f"mka-{asked}", version=5, keepalive=asked)
        assert raw_mqtt.connack_props(ack).get(SERVER_KEEP_ALIVE) == told, (asked, ack)
        c.close()


@pytest.mark.hato_only("[mqtt] max_keep_alive is a hato key")
def test_max_keep_alive_refuses_v311_outside(broker_factory, raw):
    b = broker_factory({"mqtt": {"max_keep_alive": 10}})
    for asked in (60, 0):
        c = raw(b)
        c.send(raw_mqtt.connect(f"mka311-{asked}", 4, keepalive=asked))
        ack = c.expect(raw_mqtt.CONNACK)
        assert _connack_reason(ack) == 2, ack   # identifier rejected, as Mosquitto answers
        c.wait_closed()
    ok = raw(b)
    ok.connect("mka311-ok", 4, keepalive=10)
    assert "max_keep_alive" in b.log()


@pytest.mark.hato_only("[mqtt] server_keep_alive semantics")
def test_server_keep_alive_overrides_v5_within_max(broker_factory, raw):
    b = broker_factory({"mqtt": {"server_keep_alive": 7, "max_keep_alive": 20}})
    c = raw(b)
    ack = c.connect("ska", version=5, keepalive=3)
    assert raw_mqtt.connack_props(ack).get(SERVER_KEEP_ALIVE) == 7


def test_client_receive_maximum_respected(broker_factory, raw):
    b = broker_factory({"limits": {"max_inflight": 32}})
    sub = raw(b)
    sub.connect("rm-sub", version=5, props=[(raw_mqtt.RECEIVE_MAXIMUM, 2)])
    sub.send(raw_mqtt.subscribe(1, "rm/t", 1, version=5))
    sub.expect(raw_mqtt.SUBACK)
    pub = raw(b)
    pub.connect("rm-pub", version=5)
    for i in range(10):
        pub.send(raw_mqtt.publish("rm/t", f"m{i}", qos=1, pid=i + 1, version=5))
    for _ in range(10):
        pub.expect(raw_mqtt.PUBACK)
    got = []
    for _ in range(2):
        got.append(sub.expect(raw_mqtt.PUBLISH))
    with pytest.raises(TimeoutError):
        sub.read(timeout=0.5)   # never more than 2 in flight
    received = 2
    while received < 10:
        _, pid, _, _ = raw_mqtt.parse_publish(got.pop(0), 5)
        sub.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, struct.pack("!H", pid)))
        got.append(sub.expect(raw_mqtt.PUBLISH))
        received += 1
        with pytest.raises(TimeoutError):
            sub.read(timeout=0.05)   # one acknowledged, one more: still 2 in flight


def test_broker_receive_maximum_enforced(broker_factory, raw):
    b = broker_factory({"mqtt": {"receive_maximum": 3}})
    c = raw(b)
    ack = c.connect("rm-over", version=5)
    assert raw_mqtt.connack_props(ack).get(raw_mqtt.RECEIVE_MAXIMUM) == 3
    # QoS 2 without PUBREL keeps each one counted against the window
    for i in range(3):
        c.send(raw_mqtt.publish("rmo/t", "x", qos=2, pid=i + 1, version=5))
        c.expect(raw_mqtt.PUBREC)
    c.send(raw_mqtt.publish("rmo/t", "x", qos=2, pid=4, version=5))
    seen = c.wait_closed()
    assert [p.type for p in seen] == [raw_mqtt.DISCONNECT], seen
    assert seen[0].body[0] == 0x93, seen
