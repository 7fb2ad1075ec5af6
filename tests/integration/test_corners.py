# Protocol corners: an MQTT 3.1 PUBREL re-sent with DUP, a client Maximum
# Packet Size too small for the CONNACK, acknowledgements of the wrong type
# (MQTT-4.8.0-1).

import struct

import pytest

import raw_mqtt


def test_mqtt31_pubrel_with_dup_after_reconnect(broker, raw):
    a = raw()
    a.connect("c31-pubrel", version=3, clean=False)
    a.send(raw_mqtt.publish("c31/t", "x", qos=2, pid=7))
    a.expect(raw_mqtt.PUBREC)
    a.close()
    again = raw()
    again.connect("c31-pubrel", version=3, clean=False)
    # MQTT 3.1: PUBREL is QoS 1 and carries DUP when re-sent
    again.send(raw_mqtt.packet(raw_mqtt.PUBREL, 0x0A, struct.pack("!H", 7)))
    comp = again.expect(raw_mqtt.PUBCOMP)
    assert comp.body == struct.pack("!H", 7)


@pytest.mark.mosquitto_fails("mosquitto 2.0.11 sends the CONNACK anyway")
def test_connack_larger_than_client_maximum_packet_size_closes(broker, raw):
    c = raw()
    c.send(raw_mqtt.connect("tiny-max", 5, props=[(raw_mqtt.MAXIMUM_PACKET_SIZE, 2)]))
    assert c.wait_closed() == []


def _one_delivery(raw, version, qos, cid):
    sub = raw()
    sub.connect(cid, version=version)
    sub.send(raw_mqtt.subscribe(1, f"{cid}/t", 2, version=version))
    sub.expect(raw_mqtt.SUBACK)
    pub = raw()
    pub.connect(cid + "-pub", version=version)
    pub.send(raw_mqtt.publish(f"{cid}/t", "x", qos=qos, pid=1, version=version))
    p = sub.expect(raw_mqtt.PUBLISH)
    return sub, raw_mqtt.parse_publish(p, version)[1]


@pytest.mark.mosquitto_fails("mosquitto ignores an acknowledgement of the wrong type")
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("qos,wrong", [(1, raw_mqtt.PUBREC), (2, raw_mqtt.PUBACK), (2, raw_mqtt.PUBCOMP)],
                         ids=["pubrec-for-qos1", "puback-for-qos2", "pubcomp-before-pubrec"])
def test_wrong_ack_type_is_protocol_error(broker, raw, version, qos, wrong):
    sub, pid = _one_delivery(raw, version, qos, f"wrong-ack-{version}-{qos}-{wrong}")
    sub.send(raw_mqtt.packet(wrong, 0, struct.pack("!H", pid)))
    seen = sub.wait_closed()
    if version == 5:
        assert [(p.type, p.body[:1]) for p in seen] == [(raw_mqtt.DISCONNECT, b"\x82")], seen
    else:
        assert seen == []
