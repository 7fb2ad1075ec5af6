# Persistent sessions and session takeover.

import struct

import pytest

import raw_mqtt

from paho_client import V5, VERSIONS, VERSION_IDS


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_persistent_session_queues_qos1_in_order(clients, version):
    persistent = dict(clean=False, session_expiry=3600) if version == V5 else dict(clean=False)
    sub = clients("persist-sub", version=version, **persistent)
    sub.subscribe("persist/t", 1)
    sub.disconnect()

    pub = clients("persist-pub", version=version)
    payloads = [f"msg-{i:03d}".encode() for i in range(50)]
    for p in payloads:
        pub.publish("persist/t", p, qos=1)

    sub.connect()
    assert sub.session_present
    got = sub.expect(50)
    assert [m.payload for m in got] == payloads
    assert all(m.qos == 1 for m in got)
    sub.expect_none(0.3)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_clean_session_discards_state(clients, version):
    persistent = dict(clean=False, session_expiry=3600) if version == V5 else dict(clean=False)
    sub = clients("clean-sub", version=version, **persistent)
    sub.subscribe("clean/t", 1)
    sub.disconnect()
    sub.connect(clean=True)
    assert not sub.session_present
    pub = clients("clean-pub", version=version)
    pub.publish("clean/t", b"nobody listens", qos=1)
    sub.expect_none()


def test_v5_session_expiry_zero_ends_session_at_disconnect(clients):
    sub = clients("sx0-sub", version=V5, clean=False, session_expiry=0)
    sub.subscribe("sx0/t", 1)
    sub.disconnect()
    pub = clients("sx0-pub", version=V5)
    pub.publish("sx0/t", b"lost", qos=1)
    sub.connect()
    assert not sub.session_present
    sub.expect_none()


def test_v5_session_expires_after_interval(clients):
    import time
    sub = clients("sx-sub", version=V5, clean=False, session_expiry=1)
    sub.subscribe("sx/t", 1)
    sub.disconnect()
    time.sleep(3.0)   # > 1 s session expiry, with slack for the broker's timer
    sub.connect()
    assert not sub.session_present


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_takeover_disconnects_first_client(clients, version):
    first = clients("same-id", version=version)
    first.subscribe("take/t", 1)
    second = clients("same-id", version=version, auto_connect=False)
    second.connect()
    assert first.wait_disconnect() != 0   # not a disconnect it asked for
    # the new connection works
    second.subscribe("take/t", 1)
    pub = clients("take-pub", version=version)
    pub.publish("take/t", b"to second", qos=1)
    assert second.expect().payload == b"to second"


@pytest.mark.mosquitto_fails("2.0.11 closes the old connection without DISCONNECT 0x8E")
def test_v5_takeover_sends_session_taken_over(clients):
    first = clients("same-id-v5", version=V5)
    clients("same-id-v5", version=V5)
    # paho reports the reason code of the server's DISCONNECT; paho 1.6.1
    # only decodes it when the DISCONNECT's remaining length is > 2, i.e.
    # when the packet carries at least one property (e.g. a Reason String)
    rc = first.wait_disconnect()
    assert rc == 0x8E, (f"paho saw reason {rc}, not 0x8E (7 = connection lost: no DISCONNECT, "
                        "or one too short for paho 1.6.1 to decode)")


@pytest.mark.mosquitto_fails("2.0.11 closes the old connection without DISCONNECT 0x8E")
def test_v5_takeover_disconnect_packet(raw):
    first = raw()
    first.connect("same-id-raw", version=5)
    second = raw()
    second.connect("same-id-raw", version=5)
    seen = first.wait_closed()
    assert [(p.type, p.body[:1]) for p in seen] == [(raw_mqtt.DISCONNECT, b"\x8e")], seen


# A client may write CONNECT ... DISCONNECT in one go. With a persistent
# session the CONNACK (and the acks after it) wait for their records to be
# durable; the DISCONNECT must not throw them away: the broker closes only
# after sending what it owed, in order.
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_pipelined_session_then_disconnect_gets_every_answer(raw, version):
    props = [(raw_mqtt.SESSION_EXPIRY, 60)] if version == 5 else None
    for i in range(3):
        c = raw()
        c.send(raw_mqtt.connect(f"piped-{version}-{i}", version, clean=False, props=props)
               + raw_mqtt.subscribe(1, "piped/x", 1, version=version)
               + raw_mqtt.publish("piped/x", b"x", qos=1, pid=2, version=version)
               + raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b"")
               + raw_mqtt.unsubscribe(3, "piped/x", version=version)
               + raw_mqtt.disconnect(version))
        seen = [p.type for p in c.wait_closed()]
        assert seen == [raw_mqtt.CONNACK, raw_mqtt.SUBACK, raw_mqtt.PUBLISH, raw_mqtt.PUBACK,
                        raw_mqtt.PINGRESP, raw_mqtt.UNSUBACK], seen


def test_v5_protocol_error_behind_a_held_connack_is_reported_after_it(raw):
    c = raw()
    c.send(raw_mqtt.connect("piped-error", 5, clean=False, props=[(raw_mqtt.SESSION_EXPIRY, 60)])
           + raw_mqtt.publish("t", b"x", version=5, props=[(0x0B, 3)]))   # a subscription id from a client
    seen = c.wait_closed()
    assert [p.type for p in seen] == [raw_mqtt.CONNACK, raw_mqtt.DISCONNECT], seen
    assert seen[1].body[:1] == b"\x82", seen   # protocol error


# MQTT-3.3.4-9, 4.9: the send quota starts again at the Receive Maximum of
# each new connection. Unacknowledged messages from the earlier connection go
# again (DUP, same packet id) only as far as it allows, each further one as
# an acknowledgement frees a slot, and then what was queued meanwhile.
def test_v5_resume_resends_within_the_new_receive_maximum(raw):
    def props(receive_maximum):
        return [(raw_mqtt.SESSION_EXPIRY, 300), (raw_mqtt.RECEIVE_MAXIMUM, receive_maximum)]

    def publish_parts(p):
        _, pid, _, payload = raw_mqtt.parse_publish(p, 5)
        return payload, pid, bool(p.flags & 0x08)

    # Its window full with the first 6: what follows queues, even before the
    # broker sees this connection close.
    sub = raw()
    sub.connect("rm-resume", version=5, props=props(6))
    sub.send(raw_mqtt.subscribe(1, "rm-resume/t", 1, version=5))
    sub.expect(raw_mqtt.SUBACK)
    pub = raw()
    pub.connect("rm-resume-pub", version=5)
    sent = [f"m{i}".encode() for i in range(6)]
    for i, payload in enumerate(sent):
        pub.send(raw_mqtt.publish("rm-resume/t", payload, qos=1, pid=i + 1, version=5))
        pub.expect(raw_mqtt.PUBACK)
    first_ids = {}
    for _ in sent:   # none acknowledged
        payload, pid, _ = publish_parts(sub.expect(raw_mqtt.PUBLISH, timeout=3))
        first_ids[payload] = pid
    sub.close()
    queued = [b"q0", b"q1"]
    for i, payload in enumerate(queued):
        pub.send(raw_mqtt.publish("rm-resume/t", payload, qos=1, pid=10 + i, version=5))
        pub.expect(raw_mqtt.PUBACK)

    sub = raw()
    sub.connect("rm-resume", version=5, clean=False, props=props(2))
    outstanding = [publish_parts(sub.expect(raw_mqtt.PUBLISH, timeout=3)) for _ in range(2)]
    with pytest.raises(TimeoutError):
        sub.read(timeout=0.5)   # never more than 2 unacknowledged
    got = []
    while outstanding:
        payload, pid, dup = outstanding.pop(0)
        got.append(payload)
        resent = payload in first_ids
        assert dup == resent, (payload, dup)
        if resent:
            assert pid == first_ids[payload], payload
        sub.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, struct.pack("!H", pid)))
        if len(got) + len(outstanding) < len(sent) + len(queued):
            outstanding.append(publish_parts(sub.expect(raw_mqtt.PUBLISH, timeout=3)))
        with pytest.raises(TimeoutError):
            sub.read(timeout=0.05)   # one acknowledged, at most one more
    assert got == sent + queued
