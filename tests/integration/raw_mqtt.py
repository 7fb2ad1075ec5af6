# Hand-built MQTT packets over a plain socket, for what paho cannot do:
# malformed packets, going silent, closing without DISCONNECT, QoS 2 flows
# left half-done, exact property bytes.

import socket
import struct
import time

WAIT = 10.0

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# v5 property identifiers and their wire types
PROP_TYPES = {
    0x01: "byte",    # payload format indicator
    0x02: "u32",     # message expiry interval
    0x08: "str",     # response topic
    0x09: "bin",     # correlation data
    0x0B: "varint",  # subscription identifier
    0x11: "u32",     # session expiry interval
    0x12: "str",     # assigned client identifier
    0x13: "u16",     # server keep alive
    0x18: "u32",     # will delay interval
    0x1F: "str",     # reason string
    0x21: "u16",     # receive maximum
    0x22: "u16",     # topic alias maximum
    0x23: "u16",     # topic alias
    0x24: "byte",    # maximum qos
    0x25: "byte",    # retain available
    0x26: "pair",    # user property
    0x27: "u32",     # maximum packet size
    0x28: "byte",    # wildcard subscription available
    0x29: "byte",    # subscription identifiers available
    0x2A: "byte",    # shared subscription available
}
TOPIC_ALIAS = 0x23
SESSION_EXPIRY = 0x11
RECEIVE_MAXIMUM = 0x21
MAXIMUM_PACKET_SIZE = 0x27


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def encode_props(plist):
    """plist: list of (id, value); value is a (k, v) tuple for user properties."""
    body = bytearray()
    for pid, val in plist:
        kind = PROP_TYPES[pid]
        body += bytes([pid])
        if kind == "byte":
            body += bytes([val])
        elif kind == "u16":
            body += struct.pack("!H", val)
        elif kind == "u32":
            body += struct.pack("!I", val)
        elif kind == "varint":
            body += varint(val)
        elif kind in ("str", "bin"):
            body += mstr(val)
        else:
            body += mstr(val[0]) + mstr(val[1])
    return varint(len(body)) + bytes(body)


def decode_props(data, pos):
    """Returns (list of (id, value), new position)."""
    length, pos = read_varint(data, pos)
    end = pos + length
    out = []
    while pos < end:
        pid = data[pos]
        pos += 1
        kind = PROP_TYPES.get(pid)
        if kind == "byte":
            val, pos = data[pos], pos + 1
        elif kind == "u16":
            val, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif kind == "u32":
            val, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif kind == "varint":
            val, pos = read_varint(data, pos)
        elif kind in ("str", "bin"):
            n = struct.unpack_from("!H", data, pos)[0]
            val, pos = bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n
        elif kind == "pair":
            n = struct.unpack_from("!H", data, pos)[0]
            k = bytes(data[pos + 2:pos + 2 + n])
            pos += 2 + n
            n = struct.unpack_from("!H", data, pos)[0]
            val, pos = (k, bytes(data[pos + 2:pos + 2 + n])), pos + 2 + n
        else:
            raise ValueError(f"unknown property 0x{pid:02x}")
        out.append((pid, val))
    return out, end


def read_varint(data, pos):
    mult, value = 1, 0
    while True:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect(client_id="", version=4, keepalive=60, clean=True, will=None, props=None,
            will_props=None):
    """will: dict(topic, payload, qos=0, retain=False). version 3 = MQTT 3.1."""
    flags = 0x02 if clean else 0
    name = "MQIsdp" if version == 3 else "MQTT"
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    body = mstr(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += encode_props(props or [])
    body += mstr(client_id)
    if will:
        if version == 5:
            body += encode_props(will_props or [])
        body += mstr(will["topic"]) + mstr(will["payload"])
    return packet(CONNECT, 0, body)


def publish(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, version=4, props=None):
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = mstr(topic)
    if qos:
        body += struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props or [])
    return packet(PUBLISH, flags, body + (payload.encode() if isinstance(payload, str) else payload))


def subscribe(pid, topic, qos=0, version=4, options=None, props=None):
    body = struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props or [])
    opts = qos if options is None else options
    return packet(SUBSCRIBE, 2, body + mstr(topic) + bytes([opts]))


def unsubscribe(pid, topic, version=4):
    body = struct.pack("!H", pid) + (encode_props([]) if version == 5 else b"")
    return packet(UNSUBSCRIBE, 2, body + mstr(topic))


def pubrel(pid):
    return packet(PUBREL, 2, struct.pack("!H", pid))


def disconnect(version=4, reason=0):
    return packet(DISCONNECT, 0, bytes([reason, 0]) if version == 5 else b"")


class Packet:
    def __init__(self, first, body):
        self.type = first >> 4
        self.flags = first & 0x0F
        self.body = body

    def __repr__(self):
        return f"Packet(type={self.type}, flags={self.flags:#x}, body={self.body[:40]!r})"


class RawClient:
    def __init__(self, broker, timeout=WAIT):
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet from the broker in time")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("connection closed by the broker")
        self.buf += chunk

    def read(self, timeout=WAIT):
        """The next packet; EOFError when the broker closed, TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                pos = 1
                try:
                    length, pos = read_varint(self.buf, 1)
                except IndexError:
                    length = None
                if length is not None and len(self.buf) >= pos + length:
                    p = Packet(self.buf[0], self.buf[pos:pos + length])
                    self.buf = self.buf[pos + length:]
                    return p
            self._fill(deadline)

    def expect(self, ptype, timeout=WAIT):
        p = self.read(timeout)
        assert p.type == ptype, f"expected packet type {ptype}, got {p}"
        return p

    def connect(self, client_id="", version=4, **kw):
        self.send(connect(client_id, version, **kw))
        ack = self.expect(CONNACK)
        reason = ack.body[1]
        assert reason == 0, f"CONNACK refused: {reason:#x}"
        return ack

    def wait_closed(self, timeout=WAIT):
        """Reads until the broker closes; returns the packets seen before."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen.append(self.read(max(deadline - time.monotonic(), 0.001)))
            except EOFError:
                return seen
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; packets: {seen}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connack_props(ack):
    """Properties of a v5 CONNACK as a dict (user properties ignored)."""
    plist, _ = decode_props(ack.body, 2)
    return {pid: val for pid, val in plist}


def parse_publish(p, version=4):
    """(topic, pid or None, properties list, payload) of a PUBLISH."""
    b = p.body
    n = struct.unpack_from("!H", b, 0)[0]
    topic = bytes(b[2:2 + n]).decode()
    pos = 2 + n
    pid = None
    if (p.flags >> 1) & 3:
        pid = struct.unpack_from("!H", b, pos)[0]
        pos += 2
    plist = []
    if version == 5:
        plist, pos = decode_props(b, pos)
    return topic, pid, plist, bytes(b[pos:])
