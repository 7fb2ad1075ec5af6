# One bad client cannot hurt the others: malformed packets and oversized
# packets close that connection only.

import socket
import struct

import pytest

import raw_mqtt

MALFORMED = {
    # remaining length with five continuation bytes (at most four allowed)
    "bad-remaining-length": b"\x30\xff\xff\xff\xff\xff",
    # PUBLISH with both QoS bits set
    "publish-qos3": raw_mqtt.packet(raw_mqtt.PUBLISH, 0x6, raw_mqtt.mstr("a/b") + b"\x00\x01hi"),
    # PUBLISH to a topic with a wildcard
    "publish-wildcard-topic": raw_mqtt.publish("a/+", b"x", qos=0),
    # SUBSCRIBE with reserved flags 0 instead of 2
    "subscribe-bad-flags": raw_mqtt.packet(raw_mqtt.SUBSCRIBE, 0, b"\x00\x01" + raw_mqtt.mstr("a") + b"\x00"),
    # a second CONNECT on the same connection
    "second-connect": raw_mqtt.connect("again"),
    # packet type 0 is reserved
    "reserved-type": b"\x00\x00",
}


@pytest.mark.parametrize("bad", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_packet_closes_only_that_connection(clients, raw, bad):
    sub = clients("robust-sub")
    sub.subscribe("robust/#", 1)
    pub = clients("robust-pub")

    evil = raw()
    evil.connect("robust-evil")
    evil.send(MALFORMED[bad])
    seen = evil.wait_closed()
    # nothing but (v5 only) a DISCONNECT may come back before the close
    assert all(p.type == raw_mqtt.DISCONNECT for p in seen), seen

    for i in range(5):
        pub.publish("robust/after", f"ok{i}".encode(), qos=1)
    assert [m.payload for m in sub.expect(5)] == [f"ok{i}".encode() for i in range(5)]


def test_v5_malformed_gets_disconnect_reason(raw):
    evil = raw()
    evil.connect("robust-evil5", version=5)
    evil.send(raw_mqtt.packet(raw_mqtt.PUBLISH, 0x6, raw_mqtt.mstr("a/b") + b"\x00\x01\x00hi"))
    seen = evil.wait_closed()
    # a DISCONNECT, if sent, carries 0x81 Malformed Packet or 0x82 Protocol Error
    for p in seen:
        assert p.type == raw_mqtt.DISCONNECT and p.body[0] in (0x81, 0x82), seen


def test_garbage_before_connect_is_closed(raw, clients):
    evil = raw()
    # long enough that the bogus "remaining length" ('E' = 69) is all there:
    # a complete packet that is not CONNECT
    evil.send(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"y" * 100 + b"\r\n\r\n")
    evil.wait_closed()
    ok = clients("after-garbage")
    ok.subscribe("g/t", 0)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("excess", [
    pytest.param(1, id="limit+1", marks=pytest.mark.mosquitto_fails(
        "2.0.11 does not count the remaining-length bytes against max_packet_size")),
    pytest.param(1024, id="limit+1024")])
def test_oversize_packet_refused(excess, broker_factory, clients, raw, version):
    b = broker_factory({"limits": {"max_packet_size": 1024}})
    watcher = clients("big-watch", broker=b)
    watcher.subscribe("big/#", 1)

    conn = raw(b)
    ack = conn.connect("big-sender", version=version)
    if version == 5:
        props = raw_mqtt.connack_props(ack)
        assert props.get(raw_mqtt.MAXIMUM_PACKET_SIZE) == 1024, props
    # a packet of exactly the limit is accepted...
    fill = 1024 - len(raw_mqtt.publish("big/ok", b"", qos=1, pid=1, version=version))
    while len(raw_mqtt.publish("big/ok", b"s" * fill, qos=1, pid=1, version=version)) > 1024:
        fill -= 1   # the remaining length grew a byte
    assert len(raw_mqtt.publish("big/ok", b"s" * fill, qos=1, pid=1, version=version)) == 1024
    conn.send(raw_mqtt.publish("big/ok", b"s" * fill, qos=1, pid=1, version=version))
    conn.expect(raw_mqtt.PUBACK)
    assert watcher.expect().payload == b"s" * fill
    # ...a bigger one is refused, the connection closed
    conn.send(raw_mqtt.publish("big/no", b"s" * (fill + excess), qos=1, pid=2, version=version))
    seen = conn.wait_closed()
    if version == 5:
        assert [(p.type, p.body[:1]) for p in seen] == [(raw_mqtt.DISCONNECT, b"\x95")], seen
    else:
        assert seen == []
    watcher.expect_none()


def test_oversize_announced_length_refused_before_body(broker_factory, raw):
    # the fixed header announces 100 MB: the broker must not wait for the
    # body (nor buffer it) but close at once
    b = broker_factory({"limits": {"max_packet_size": 1024}})
    conn = raw(b)
    conn.connect("big-header")
    conn.send(b"\x30" + raw_mqtt.varint(100 * 1024 * 1024) + struct.pack("!H", 3) + b"a/b")
    conn.wait_closed(timeout=5)


def _answers_after_half_close(broker, data):
    """Sends data, shuts down the write side, reads until the broker closes."""
    s = socket.create_connection((broker.host, broker.port), timeout=10)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    return got


# A client that half-closes after its last packet (shutdown(SHUT_WR), as a
# script piping into a socket does) still gets the answers to what it sent,
# the PUBACK that waits for the store's sync included; then the broker
# closes, and the will goes as for any connection lost without DISCONNECT.
def test_a_client_that_half_closes_gets_its_answers(broker_factory, raw):
    b = broker_factory({"storage": {"enabled": True, "sync": "always"}})
    watcher = raw(b)
    watcher.connect("half-watch")
    watcher.send(raw_mqtt.subscribe(1, "half/#", qos=1))
    watcher.expect(raw_mqtt.SUBACK)
    connack = b"\x20\x02\x00\x00"
    for i in range(20):
        got = _answers_after_half_close(b, raw_mqtt.connect(f"half-p{i}") + b"\xc0\x00")
        assert got == connack + b"\xd0\x00", (i, got)
        got = _answers_after_half_close(b, raw_mqtt.connect(f"half-s{i}") + raw_mqtt.subscribe(1, "x/y", 1))
        assert got == connack + b"\x90\x03\x00\x01\x01", (i, got)
        got = _answers_after_half_close(b, raw_mqtt.connect(f"half-q{i}") +
                                        raw_mqtt.publish("half/q", b"m%d" % i, qos=1, pid=7))
        assert got == connack + b"\x40\x02\x00\x07", (i, got)
        p = watcher.read()
        assert raw_mqtt.parse_publish(p)[3] == b"m%d" % i
        watcher.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, raw_mqtt.parse_publish(p)[1].to_bytes(2, "big")))
    conn = raw(b)
    conn.send(raw_mqtt.connect("half-will", will={"topic": "half/will", "payload": b"gone", "qos": 1}))
    conn.expect(raw_mqtt.CONNACK)
    conn.sock.shutdown(socket.SHUT_WR)
    assert conn.wait_closed() == []
    p = watcher.read()
    assert raw_mqtt.parse_publish(p)[0] == "half/will"
