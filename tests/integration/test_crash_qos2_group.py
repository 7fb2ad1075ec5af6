# kill -9 while one large QoS 2 PUBLISH is being routed to many offline
# persistent sessions, before its PUBREC: the copies queued for some
# sessions and the publisher's packet id are one group in the store, kept or
# dropped together (store::Log::begin_group). Kept in part, the resend MQTT
# requires (same id, DUP) was taken as a new message and those sessions got
# it twice; exactly once is what QoS 2 promises.

import os
import random
import time

import pytest

import raw_mqtt
from raw_mqtt import PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, RawClient, parse_publish

SUBSCRIBERS = 40
TRIES = 4
PAYLOAD = 100_000
SETTINGS = {
    "storage": {"sync": "always"},
    "limits": {"max_packet_size": 262144, "max_queued_messages": 100000, "max_queued_bytes": 0},
}

pytestmark = pytest.mark.hato_only("kills the broker mid-write and reads its store's recovery")


def _subscriber(b, i):
    c = RawClient(b)
    c.connect(f"s{i}", 4, clean=False)
    return c


def _publish_until_pubrec(b, payload):
    p = RawClient(b)
    p.connect("pub", 4, clean=False)
    p.send(raw_mqtt.publish("f/x", payload, qos=2, pid=7, dup=True))
    assert p.expect(PUBREC)
    p.send(raw_mqtt.pubrel(7))
    p.expect(PUBCOMP)
    p.sock.close()


def _drain(c, expected):
    """Tags of the messages a session holds, a QoS 2 resend of an id still
    waiting for its PUBREL counted once: until `expected` distinct ones came,
    then whatever follows within 0.3 s."""
    tags, waiting = [], set()
    while True:
        try:
            pkt = c.read(0.3 if len(set(tags)) >= expected else 10.0)
        except TimeoutError:
            return tags
        if pkt.type == PUBLISH:
            _, pid, _, payload = parse_publish(pkt)
            if pid not in waiting:
                tags.append(payload[:4])
                waiting.add(pid)
            c.send(raw_mqtt.packet(PUBREC, 0, pid.to_bytes(2, "big")))
        elif pkt.type == PUBREL:
            pid = int.from_bytes(pkt.body[:2], "big")
            waiting.discard(pid)
            c.send(raw_mqtt.packet(PUBCOMP, 0, pid.to_bytes(2, "big")))


def test_a_qos2_message_routed_when_killed_reaches_each_session_once(broker_factory):
    b = broker_factory(SETTINGS)
    for i in range(SUBSCRIBERS):
        c = _subscriber(b, i)
        c.send(raw_mqtt.subscribe(1, "f/#", 2))
        c.expect(SUBACK)
        c.sock.close()
    rng = random.Random(5)
    tags = []
    for t in range(TRIES):
        payload = f"T{t:02d}".encode() + os.urandom(PAYLOAD)
        tags.append(payload[:4])
        p = RawClient(b)
        p.connect("pub", 4, clean=False)
        p.send(raw_mqtt.publish("f/x", payload, qos=2, pid=7))
        time.sleep(rng.uniform(0.0005, 0.015))
        b.kill()
        p.sock.close()
        b.start()
        _publish_until_pubrec(b, payload)   # the resend, with its PUBREL
    twice = {}
    for i in range(SUBSCRIBERS):
        c = _subscriber(b, i)
        got = _drain(c, len(tags))
        c.sock.close()
        assert sorted(set(got)) == sorted(tags), f"s{i} is missing messages: {got}"
        dup = [tag for tag in tags if got.count(tag) > 1]
        if dup:
            twice[f"s{i}"] = dup
    assert not twice, f"delivered twice: {twice}"
