#!/usr/bin/python3
"""Writes the seed scripts of tests/fuzz/corpus/broker: short sessions of
valid MQTT 3.1, 3.1.1 and 5.0 traffic in the script format that
broker_script.hpp reads, for the fuzzer to mutate. Run it from anywhere:
/usr/bin/python3 tests/fuzz/make_seeds.py
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import raw_mqtt as raw  # noqa: E402  (the integration tests' packet builders)

OPEN, DATA, DATA16, CLOSE, TICK, PASS, DURABLE, FULL, CONGEST, RESTART = range(10)


def connect(cid, level=4, clean=True, keep_alive=0, will=None, user=None, v5props=b""):
    """raw_mqtt.connect plus user name and password; will = (topic, msg, qos, retain)."""
    w = dict(topic=will[0], payload=will[1], qos=will[2], retain=will[3]) if will else None
    p = raw.connect(cid, level, keep_alive, clean, w, will_props=[(0x18, 2)] if will else None)
    if level == 5 and v5props:
        p = rebuild_connect(p, v5props)
    if user:
        p = add_user(p, user)
    return p


def rebuild_connect(p, v5props):
    """Replaces the empty v5 CONNECT property list of `p` with `v5props`."""
    _, hdr_end = raw.read_varint(p, 1)
    body = p[hdr_end:]
    at = 2 + 4 + 1 + 1 + 2   # "MQTT", level, flags, keep alive
    assert body[at] == 0   # empty properties
    body = body[:at] + raw.varint(len(v5props)) + v5props + body[at + 1:]
    return raw.packet(raw.CONNECT, 0, body)


def add_user(p, user):
    """Sets the user name and password flags of `p` and appends both."""
    _, hdr_end = raw.read_varint(p, 1)
    body = bytearray(p[hdr_end:])
    name_len = struct.unpack_from("!H", body, 0)[0]
    body[2 + name_len + 1] |= 0xC0
    return raw.packet(raw.CONNECT, 0, bytes(body) + raw.mstr(user[0]) + raw.mstr(user[1]))


def subscribe(pid, filters, level=4, sub_id=0):
    """Several filters in one SUBSCRIBE (raw_mqtt.subscribe takes one)."""
    body = struct.pack(">H", pid)
    if level == 5:
        body += raw.encode_props([(0x0B, sub_id)] if sub_id else [])
    for f, opts in filters:
        body += raw.mstr(f) + bytes([opts])
    return raw.packet(raw.SUBSCRIBE, 2, body)


def unsubscribe(pid, filters, level=4):
    body = struct.pack(">H", pid) + (raw.encode_props([]) if level == 5 else b"")
    return raw.packet(raw.UNSUBSCRIBE, 2, body + b"".join(raw.mstr(f) for f in filters))


def publish(topic, msg, qos=0, retain=False, pid=1, level=4, v5props=b"", dup=False):
    """raw_mqtt.publish with pre-encoded v5 properties."""
    p = raw.publish(topic, msg, qos, pid if qos else None, retain, dup, level)
    if level == 5 and v5props:
        _, hdr_end = raw.read_varint(p, 1)
        body = p[hdr_end:]
        at = 2 + len(topic.encode()) + (2 if qos else 0)
        body = body[:at] + raw.varint(len(v5props)) + v5props + body[at + 1:]
        p = raw.packet(raw.PUBLISH, p[0] & 0x0F, body)
    return p


def ack(kind, pid):   # PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70
    return bytes([kind]) + raw.varint(2) + struct.pack(">H", pid)


def packet(first, body):
    return bytes([first]) + raw.varint(len(body)) + body


varint = raw.varint
s = raw.mstr
PINGREQ = packet(0xC0, b"")
DISCONNECT = packet(0xE0, b"")


class Script:
    def __init__(self):
        self.b = bytearray()

    def open(self):
        self.b.append(OPEN)
        return self

    def send(self, conn, data):
        if len(data) < 256:
            self.b += bytes([DATA, conn, len(data)]) + data
        else:
            self.b += bytes([DATA16, conn, len(data) & 0xFF, len(data) >> 8]) + data
        return self

    def op(self, *ops):
        self.b += bytes(ops)
        return self

    def tick(self, quarter_seconds):
        self.b += bytes([TICK, quarter_seconds])
        return self

    def restart(self, damage=0):
        """A crash and restart; damage (log env only): low 2 bits none /
        truncate / zero 64 bytes / flip a byte, high 6 bits where (64ths)."""
        self.b += bytes([RESTART, damage])
        return self

    def close(self, conn):
        self.b += bytes([CLOSE, conn])
        return self


def seeds():
    out = {}
    # QoS 0/1/2 pub/sub, v3.1.1, with durability and passes.
    for level in (3, 4, 5):
        sc = Script().open().open()
        sc.send(0, connect("sub", level)).send(1, connect("pub", level)).op(PASS, DURABLE)
        sc.send(0, subscribe(1, [("a/+", 2), ("#", 1)], level)).op(PASS)
        sc.send(1, publish("a/b", b"zero", 0, level=level))
        sc.send(1, publish("a/b", b"one", 1, pid=1, level=level))
        sc.send(1, publish("a/b", b"two", 2, pid=2, level=level)).op(PASS, DURABLE, PASS)
        sc.send(1, ack(0x62, 2)).send(0, ack(0x40, 1)).send(0, ack(0x50, 2)).send(0, ack(0x70, 2))
        sc.send(0, PINGREQ).send(1, DISCONNECT).op(PASS).tick(200).op(PASS)
        out[f"pubsub_v{level}"] = sc.b
    # Retained set, cleared, delivered on subscribe; unsubscribe.
    sc = Script().open().open()
    sc.send(0, connect("r1")).send(0, publish("r/x", b"keep", 1, True, 7)).op(PASS, DURABLE, PASS)
    sc.send(0, publish("r/y", b"", 0, True)).send(1, connect("r2", 5))
    sc.send(1, subscribe(3, [("r/#", 0x01 | 0x08)], 5, sub_id=9)).op(PASS)
    sc.send(1, unsubscribe(4, ["r/#"], 5)).op(PASS)
    out["retained"] = sc.b
    # Persistent session offline, queue fills past its limit, reconnect and resend.
    sc = Script().open().open()
    sc.send(0, connect("p", 4, clean=False)).send(0, subscribe(1, [("q", 1)])).op(PASS, DURABLE)
    sc.close(0).op(PASS)
    for k in range(10):
        sc.send(0, publish("q", bytes([k]) * 8, 1, pid=k + 1))
    sc.op(PASS, DURABLE, PASS).open().send(1, connect("p", 4, clean=False)).op(PASS, DURABLE, PASS)
    sc.send(1, ack(0x40, 1)).send(1, ack(0x40, 2)).op(PASS)
    out["persistent_queue"] = sc.b
    # Wills (v5 will delay), keep alive expiry, takeover by the same client id.
    sc = Script().open().open().open()
    sc.send(0, connect("w", 5, keep_alive=2, will=("will/t", b"bye", 1, True),
                       v5props=b"\x11" + struct.pack(">I", 60)))
    sc.send(1, connect("watch", 5)).send(1, subscribe(1, [("will/#", 1)], 5)).op(PASS)
    sc.tick(40).op(PASS).tick(40).op(PASS)
    sc.send(2, connect("watch", 5)).op(PASS).tick(255).op(PASS, DURABLE, PASS)
    out["will_keepalive_takeover"] = sc.b
    # v5 topic aliases in, message expiry, shared subscription, request/response.
    sc = Script().open().open().open()
    sc.send(0, connect("a", 5, v5props=b"\x22\x00\x03")).send(1, connect("b", 5)).send(2, connect("c", 5))
    sc.send(1, subscribe(1, [("$share/g/t/#", 1)], 5)).send(2, subscribe(1, [("$share/g/t/#", 1)], 5))
    sc.send(0, publish("t/1", b"m", 1, pid=5, level=5, v5props=b"\x23\x00\x01\x02\x00\x00\x00\x01"))
    sc.send(0, publish("", b"m2", 1, pid=6, level=5, v5props=b"\x23\x00\x01"))
    sc.send(0, publish("t/2", b"rq", 0, level=5, v5props=b"\x08" + s("reply/x") + b"\x09" + s("corr")))
    sc.op(PASS, DURABLE, PASS).tick(20).op(PASS)
    out["v5_alias_expiry_shared"] = sc.b
    # Store full, congested output, QoS 0 drops, restart.
    sc = Script().open().open()
    sc.send(0, connect("f")).send(1, connect("g")).send(1, subscribe(1, [("#", 0)])).op(PASS)
    sc.op(FULL).send(0, publish("x", b"q1", 1, pid=1)).op(PASS, FULL, CONGEST, 1)
    for k in range(6):
        sc.send(0, publish("x", b"y" * 200, 0))
    sc.op(PASS, CONGEST, 1, PASS).restart().open().send(0, connect("f")).op(PASS)
    out["full_congested_restart"] = sc.b
    # Malformed and protocol errors: second CONNECT, bad flags, oversized, split packets.
    sc = Script().open().open().open().open()
    sc.send(0, connect("m")).send(0, connect("m")).op(PASS)
    sc.send(1, connect("n")).send(1, packet(0x82, struct.pack(">H", 1))).op(PASS)
    sc.send(2, connect("o")).send(2, bytes([0x30]) + varint(5000) + b"x" * 300).op(PASS)
    big = connect("s", 4)
    sc.send(3, big[:5]).op(PASS).send(3, big[5:]).op(PASS)
    sc.send(3, packet(0x33, s("a/#") + b"\x00\x01")).op(PASS)
    out["malformed"] = sc.b
    # Crash with a durable persistent session, then with its log tail torn
    # (truncated, zeroed, bit-flipped), reconnect and take the resends.
    for name, damage in (("clean", 0), ("cut", 1 | 40 << 2), ("zeroed", 2 | 50 << 2), ("flipped", 3 | 60 << 2)):
        sc = Script().open().open()
        sc.send(0, connect("dur", 5, clean=False, v5props=b"\x11" + struct.pack(">I", 300)))
        sc.send(0, subscribe(1, [("d/#", 2)], 5)).send(1, connect("src", 4)).op(PASS, DURABLE, PASS)
        sc.send(1, publish("d/r", b"kept", 1, True, 1)).send(1, publish("d/1", b"q1", 1, pid=2))
        sc.send(1, publish("d/2", b"q2", 2, pid=3)).op(PASS, DURABLE, PASS)
        sc.send(1, publish("d/3", b"not synced", 1, pid=4)).op(PASS)
        sc.restart(damage).open().send(0, connect("dur", 5, clean=False)).op(PASS, DURABLE, PASS)
        sc.send(0, ack(0x40, 1)).send(0, ack(0x50, 2)).op(PASS, DURABLE, PASS).send(0, ack(0x70, 2))
        sc.op(PASS).restart(damage).open().send(0, connect("dur", 5, clean=False)).op(PASS)
        out["crash_" + name] = sc.b
    # A message larger than 255 bytes (the 16-bit data opcode).
    sc = Script().open().open()
    sc.send(0, connect("L", 5)).send(0, subscribe(1, [("big", 2)], 5)).send(1, connect("M", 5))
    sc.send(1, publish("big", b"B" * 1500, 2, pid=9, level=5)).op(PASS, DURABLE, PASS)
    sc.send(1, ack(0x62, 9)).send(0, ack(0x50, 1)).op(PASS)
    out["large_qos2"] = sc.b
    # Authentication fields and an empty client id.
    sc = Script().open().open()
    sc.send(0, connect("", 4, user=("u", "p"))).send(1, connect("", 5)).op(PASS)
    out["empty_client_id"] = sc.b
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    corpus = os.path.join(here, "corpus", "broker")
    os.makedirs(corpus, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(corpus, "seed_" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
