# QoS state machines seen from the wire: duplicate inbound QoS 2, outbound
# redelivery with DUP after reconnect, CONNACK-announced limits.

import struct

import pytest

import raw_mqtt


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_inbound_qos2_duplicate_delivered_once(clients, raw, version):
    sub = clients("q2dup-sub")
    sub.subscribe("q2dup/t", 2)
    conn = raw()
    conn.connect("q2dup-pub", version=version)
    conn.send(raw_mqtt.publish("q2dup/t", b"once", qos=2, pid=9, version=version))
    assert conn.expect(raw_mqtt.PUBREC).body[:2] == b"\x00\x09"
    # the PUBREC "got lost": the client sends the PUBLISH again with DUP
    conn.send(raw_mqtt.publish("q2dup/t", b"once", qos=2, pid=9, dup=True, version=version))
    assert conn.expect(raw_mqtt.PUBREC).body[:2] == b"\x00\x09"
    conn.send(raw_mqtt.pubrel(9))
    assert conn.expect(raw_mqtt.PUBCOMP).body[:2] == b"\x00\x09"
    assert sub.expect().payload == b"once"
    sub.expect_none(0.5)


@pytest.mark.hato_only("SIGKILL recovery of the inbound QoS 2 state")
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_inbound_qos2_id_holding_another_message_after_kill(broker_factory, clients, raw, version):
    """What a bridge sends after a crash lost the local PUBREL that closed a
    stale flow: the new message's resend, under an id the session still
    holds for an older message, with no PUBREL before it. It carries another
    message, so it is delivered; the older message's own resend is not
    delivered twice. Both across SIGKILL, so the id's record holds which
    message it carried."""
    b = broker_factory({"storage": {"enabled": True, "sync": "always"}})
    sx = [(raw_mqtt.SESSION_EXPIRY, 600)] if version == 5 else None
    pub = raw(b)
    pub.connect("q2re-pub", version=version, clean=False, props=sx)
    pub.send(raw_mqtt.publish("q2re/t", b"old", qos=2, pid=9, version=version))
    assert pub.expect(raw_mqtt.PUBREC).body[:2] == b"\x00\x09"
    b.kill()
    b.start()

    sub = clients("q2re-sub", broker=b)
    sub.subscribe("q2re/t", 2)
    again = raw(b)
    ack = again.connect("q2re-pub", version=version, clean=False, props=sx)
    assert ack.body[0] & 1, "session not present"
    again.send(raw_mqtt.publish("q2re/t", b"old", qos=2, pid=9, dup=True, version=version))
    assert again.expect(raw_mqtt.PUBREC).body[:2] == b"\x00\x09"
    sub.expect_none(0.5)
    again.send(raw_mqtt.publish("q2re/t", b"new", qos=2, pid=9, dup=True, version=version))
    assert again.expect(raw_mqtt.PUBREC).body[:2] == b"\x00\x09"
    assert sub.expect().payload == b"new"
    again.send(raw_mqtt.pubrel(9))
    assert again.expect(raw_mqtt.PUBCOMP).body[:2] == b"\x00\x09"
    sub.expect_none(0.5)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unacknowledged_qos1_redelivered_with_dup_after_reconnect(clients, raw, version):
    sx = [(raw_mqtt.SESSION_EXPIRY, 600)] if version == 5 else None
    conn = raw()
    conn.connect("redeliver-sub", version=version, clean=False, props=sx)
    conn.send(raw_mqtt.subscribe(1, "redeliver/t", 1, version=version))
    conn.expect(raw_mqtt.SUBACK)
    pub = clients("redeliver-pub")
    pub.publish("redeliver/t", b"ack me", qos=1)
    first = conn.expect(raw_mqtt.PUBLISH)
    topic, pid, _, payload = raw_mqtt.parse_publish(first, version)
    assert (topic, payload) == ("redeliver/t", b"ack me") and not first.flags & 8
    conn.close()   # no PUBACK

    again = raw()
    ack = again.connect("redeliver-sub", version=version, clean=False, props=sx)
    assert ack.body[0] & 1, "session not present"
    p = again.expect(raw_mqtt.PUBLISH)
    topic2, pid2, _, payload2 = raw_mqtt.parse_publish(p, version)
    assert (topic2, pid2, payload2) == (topic, pid, payload)
    assert p.flags & 8, "redelivered PUBLISH without DUP flag"
    again.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, struct.pack("!H", pid2)))
    again.send(raw_mqtt.disconnect(version))
    again.wait_closed()


@pytest.mark.mosquitto_fails("no [mqtt] server_keep_alive equivalent in the generated conf")
def test_v5_connack_announces_configured_limits(broker_factory, raw):
    b = broker_factory({"mqtt": {"server_keep_alive": 5, "maximum_qos": 1, "receive_maximum": 7,
                                 "topic_alias_maximum": 3, "retain_available": False}})
    conn = raw(b)
    ack = conn.connect("limits", version=5, keepalive=60)
    got = raw_mqtt.connack_props(ack)
    assert got.get(0x13) == 5, got           # Server Keep Alive
    assert got.get(0x24) == 1, got           # Maximum QoS
    assert got.get(raw_mqtt.RECEIVE_MAXIMUM) == 7, got
    assert got.get(0x22) == 3, got           # Topic Alias Maximum
    assert got.get(0x25) == 0, got           # Retain Available
    # a subscription asking QoS 2 is granted QoS 1
    conn.send(raw_mqtt.subscribe(1, "lim/t", 2, version=5))
    suback = conn.expect(raw_mqtt.SUBACK)
    assert suback.body[-1] == 1, suback


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_outbound_inflight_window_respected(broker_factory, clients, raw, version):
    # with max_inflight 4, a subscriber that never acknowledges gets 4
    # QoS 1 messages, then the rest once it acknowledges
    b = broker_factory({"limits": {"max_inflight": 4}})
    conn = raw(b)
    conn.connect("window-sub", version=version)
    conn.send(raw_mqtt.subscribe(1, "win/t", 1, version=version))
    conn.expect(raw_mqtt.SUBACK)
    pub = clients("window-pub", broker=b)
    for i in range(10):
        pub.publish("win/t", f"w{i}".encode(), qos=1)
    first = [conn.expect(raw_mqtt.PUBLISH) for _ in range(4)]
    with pytest.raises(TimeoutError):
        conn.read(timeout=0.7)
    payloads = []
    pending = first
    while len(payloads) < 10:
        for p in pending:
            _, pid, _, payload = raw_mqtt.parse_publish(p, version)
            payloads.append(payload)
            conn.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, struct.pack("!H", pid)))
        pending = [conn.expect(raw_mqtt.PUBLISH)] if len(payloads) < 10 else []
    assert payloads == [f"w{i}".encode() for i in range(10)]
