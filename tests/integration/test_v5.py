# MQTT 5 features end to end, paho (protocol=MQTTv5) and raw sockets.

import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

import raw_mqtt
from paho_client import V5, props, publish_props


def test_assigned_client_identifier(clients):
    c = clients("", version=V5)
    assigned = c.connack[2].AssignedClientIdentifier
    assert assigned, "no Assigned Client Identifier for an empty client id"
    other = clients("", version=V5)
    assert other.connack[2].AssignedClientIdentifier != assigned


def test_message_expiry_in_offline_queue(clients):
    sub = clients("mx-sub", version=V5, clean=False, session_expiry=600)
    sub.subscribe("mx/#", 1)
    sub.disconnect()
    pub = clients("mx-pub", version=V5)
    pub.publish("mx/short", b"expires", qos=1, properties=publish_props(MessageExpiryInterval=1))
    pub.publish("mx/long", b"stays", qos=1, properties=publish_props(MessageExpiryInterval=600))
    pub.publish("mx/none", b"forever", qos=1)
    time.sleep(2.5)
    sub.connect()
    got = sub.expect(2)
    assert [m.payload for m in got] == [b"stays", b"forever"]
    # the forwarded interval is what is left of it
    left = got[0].properties.MessageExpiryInterval
    assert 590 <= left <= 599, left
    assert not hasattr(got[1].properties, "MessageExpiryInterval")
    sub.expect_none(0.3)


def test_topic_alias_inbound(clients, raw):
    sub = clients("alias-sub", version=V5)
    sub.subscribe("alias/#", 1)
    conn = raw()
    ack = conn.connect("alias-pub", version=5)
    alias_max = raw_mqtt.connack_props(ack).get(0x22, 0)
    assert alias_max >= 1, "broker accepts no topic alias"
    conn.send(raw_mqtt.publish("alias/one", b"set", qos=1, pid=1, version=5,
                               props=[(raw_mqtt.TOPIC_ALIAS, 1)]))
    conn.expect(raw_mqtt.PUBACK)
    conn.send(raw_mqtt.publish("", b"used", qos=1, pid=2, version=5, props=[(raw_mqtt.TOPIC_ALIAS, 1)]))
    conn.expect(raw_mqtt.PUBACK)
    # re-map alias 1 to another topic
    conn.send(raw_mqtt.publish("alias/two", b"remapped", qos=1, pid=3, version=5,
                               props=[(raw_mqtt.TOPIC_ALIAS, 1)]))
    conn.expect(raw_mqtt.PUBACK)
    conn.send(raw_mqtt.publish("", b"used2", qos=1, pid=4, version=5, props=[(raw_mqtt.TOPIC_ALIAS, 1)]))
    conn.expect(raw_mqtt.PUBACK)
    got = [(m.topic, m.payload) for m in sub.expect(4)]
    assert got == [("alias/one", b"set"), ("alias/one", b"used"),
                   ("alias/two", b"remapped"), ("alias/two", b"used2")]


def test_topic_alias_over_maximum_is_refused(raw):
    conn = raw()
    ack = conn.connect("alias-bad", version=5)
    alias_max = raw_mqtt.connack_props(ack).get(0x22, 0)
    conn.send(raw_mqtt.publish("alias/x", b"x", qos=1, pid=1, version=5,
                               props=[(raw_mqtt.TOPIC_ALIAS, alias_max + 1)]))
    seen = conn.wait_closed()
    assert [(p.type, p.body[:1]) for p in seen] == [(raw_mqtt.DISCONNECT, b"\x94")], seen


def test_unknown_topic_alias_is_protocol_error(raw):
    conn = raw()
    conn.connect("alias-unknown", version=5)
    conn.send(raw_mqtt.publish("", b"x", qos=1, pid=1, version=5, props=[(raw_mqtt.TOPIC_ALIAS, 1)]))
    seen = conn.wait_closed()
    assert [(p.type, p.body[:1]) for p in seen] == [(raw_mqtt.DISCONNECT, b"\x82")], seen


def test_subscription_identifiers(clients):
    sub = clients("sid-sub", version=V5)
    sub.subscribe("sid/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    sub.subscribe("sid/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=300))
    sub.subscribe("other/t", 1)
    pub = clients("sid-pub", version=V5)
    pub.publish("sid/a", b"both", qos=1)
    pub.publish("other/t", b"none", qos=1)
    # "sid/a" copies all come before "other/t" (one publisher, in order)
    ids = []
    while True:
        m = sub.expect()
        if m.topic == "other/t":
            assert not hasattr(m.properties, "SubscriptionIdentifier")
            break
        ids += m.properties.SubscriptionIdentifier
    # one copy carrying both identifiers, or one copy per subscription
    assert sorted(ids) == [7, 300], ids
    sub.expect_none(0.3)


def test_no_local(clients):
    me = clients("nl-me", version=V5)
    me.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True))
    other = clients("nl-other", version=V5)
    me.publish("nl/t", b"mine", qos=1)
    other.publish("nl/t", b"theirs", qos=1)
    assert me.expect().payload == b"theirs"
    me.expect_none(0.3)


def test_retain_as_published(clients):
    rap = clients("rap-yes", version=V5)
    rap.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=True))
    plain = clients("rap-no", version=V5)
    plain.subscribe("rap/t", options=SubscribeOptions(qos=1))
    pub = clients("rap-pub", version=V5)
    pub.publish("rap/t", b"kept", qos=1, retain=True)
    pub.publish("rap/t", b"live", qos=1)
    assert [(m.payload, m.retain) for m in rap.expect(2)] == [(b"kept", True), (b"live", False)]
    assert [(m.payload, m.retain) for m in plain.expect(2)] == [(b"kept", False), (b"live", False)]
    pub.publish("rap/t", b"", qos=1, retain=True)


def test_retain_handling(clients):
    pub = clients("rh-pub", version=V5)
    pub.publish("rh/t", b"old", qos=1, retain=True)
    never = clients("rh-2", version=V5)
    never.subscribe("rh/t", options=SubscribeOptions(qos=1, retainHandling=2))
    never.expect_none(0.5)
    if_new = clients("rh-1", version=V5)
    if_new.subscribe("rh/t", options=SubscribeOptions(qos=1, retainHandling=1))
    assert if_new.expect().payload == b"old"
    if_new.subscribe("rh/t", options=SubscribeOptions(qos=1, retainHandling=1))   # not new
    if_new.expect_none(0.5)
    always = clients("rh-0", version=V5)
    always.subscribe("rh/t", options=SubscribeOptions(qos=1, retainHandling=0))
    assert always.expect().payload == b"old"
    always.subscribe("rh/t", options=SubscribeOptions(qos=1, retainHandling=0))   # again
    assert always.expect().payload == b"old"


def test_shared_subscription_round_robin(clients):
    a = clients("share-a", version=V5)
    a.subscribe("$share/g/sh/t", 1)
    b = clients("share-b", version=V5)
    b.subscribe("$share/g/sh/t", 1)
    normal = clients("share-normal", version=V5)
    normal.subscribe("sh/t", 1)
    pub = clients("share-pub", version=V5)
    sent = [f"s{i}".encode() for i in range(10)]
    for p in sent:
        pub.publish("sh/t", p, qos=1)
    # every message once to the group, split evenly between its two members
    got_a = [m.payload for m in a.expect(5)]
    got_b = [m.payload for m in b.expect(5)]
    assert sorted(got_a + got_b) == sorted(sent)
    a.expect_none(0.3)
    b.expect_none(0.1)
    assert [m.payload for m in normal.expect(10)] == sent


def test_user_properties_forwarded_in_order(clients):
    sub = clients("up-sub", version=V5)
    sub.subscribe("up/t", 1)
    pub = clients("up-pub", version=V5)
    pairs = [("z", "1"), ("a", "2"), ("z", "3"), ("key", "")]
    pub.publish("up/t", b"x", qos=1, properties=publish_props(UserProperty=pairs))
    assert sub.expect().properties.UserProperty == pairs


def test_request_response_properties_forwarded(clients):
    sub = clients("rr-sub", version=V5)
    sub.subscribe("rr/req", 1)
    pub = clients("rr-pub", version=V5)
    pub.publish("rr/req", b"q", qos=1, properties=publish_props(
        ResponseTopic="rr/resp/42", CorrelationData=b"\x00\x01corr", PayloadFormatIndicator=1,
        ContentType="text/plain"))
    p = sub.expect().properties
    assert p.ResponseTopic == "rr/resp/42"
    assert p.CorrelationData == b"\x00\x01corr"
    assert p.PayloadFormatIndicator == 1
    assert p.ContentType == "text/plain"


@pytest.mark.mosquitto_fails("2.0.11 answers PUBREC 0x97 instead of DISCONNECT 0x93")
def test_receive_maximum_exceeded(broker_factory, raw):
    b = broker_factory({"mqtt": {"receive_maximum": 5}})
    conn = raw(b)
    ack = conn.connect("rm-flood", version=5)
    receive_max = raw_mqtt.connack_props(ack).get(raw_mqtt.RECEIVE_MAXIMUM, 65535)
    assert receive_max <= 100, receive_max
    # QoS 2 publishes stay in flight until PUBREL, which we never send
    for pid in range(1, receive_max + 1):
        conn.send(raw_mqtt.publish("rm/t", b"x", qos=2, pid=pid, version=5))
        conn.expect(raw_mqtt.PUBREC)
    conn.send(raw_mqtt.publish("rm/t", b"x", qos=2, pid=receive_max + 1, version=5))
    seen = conn.wait_closed()
    assert [(p.type, p.body[:1]) for p in seen] == [(raw_mqtt.DISCONNECT, b"\x93")], seen
