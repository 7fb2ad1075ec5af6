# MQTT over WebSockets with raw sockets: a good client works, and malformed
# WebSocket input (unmasked, text, reserved bits, bad opcodes, oversized
# frames, slow, oversized or refused upgrades) closes only that connection,
# with the right close code or HTTP status, while other clients keep working.
# hato only (the listener keys are hato's), once per event backend.

import base64
import os
import shutil
import socket
import struct
import tempfile
import time

import pytest

import raw_mqtt as rm
from conftest import TARGET, _find_hato, _toml_value
from security_util import SecBroker
from proc_status import status_bytes

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's listener configuration")

WAIT = 5.0
CONNECT_TIMEOUT_MS = 1000
MAX_PACKET = 2000
ORIGIN = "http://hmi.plant"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="   # RFC 6455 section 1.3


class WsBroker(SecBroker):
    """SecBroker whose listeners may carry protocol, path and allowed_origins."""

    def _hato_config(self):
        base = super(SecBroker, self)._hato_config()
        default = '[[listener]]\naddress = "127.0.0.1"\nport = 0\n'
        ours = []
        for l in self.listeners:
            ours += ["[[listener]]", 'address = "127.0.0.1"', "port = 0"]
            for k in ("protocol", "path"):
                if k in l:
                    ours.append(f"{k} = {_toml_value(l[k])}")
            for k in ("allowed_origins", "trusted_proxies"):
                if k in l:
                    ours.append(f"{k} = [" + ", ".join(_toml_value(o) for o in l[k]) + "]")
        return base.replace(default, "\n".join(ours) + "\n")


@pytest.fixture
def ws_broker(backend, request):
    """Listeners: 0 plain MQTT, 1 ws on /mqtt, 2 ws on any path with an origin
    list, behind a trusted proxy at 127.0.0.1."""
    if not _find_hato():
        pytest.skip("hato binary not found (set HATO_BIN)")
    w = tempfile.mkdtemp(prefix="hato-it-")
    settings = {"storage": {"enabled": False},
                "limits": {"connect_timeout_ms": CONNECT_TIMEOUT_MS, "max_packet_size": MAX_PACKET}}
    listeners = [{}, {"protocol": "websockets"},
                 {"protocol": "websockets", "path": "", "allowed_origins": [ORIGIN],
                  "trusted_proxies": ["127.0.0.1"]}]
    b = WsBroker(backend, w, settings, listeners)
    b.start()
    yield b
    rep = getattr(request.node, "rep_call", None)
    try:
        code = b.stop()
        assert code == 0, f"broker exited with {code}"
    finally:
        b.kill()
        if rep is not None and rep.failed:
            print(f"----- broker log ({b.log_path}) -----\n{b.log()[-6000:]}")
        shutil.rmtree(w, ignore_errors=True)


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    m = 0x80 if masked else 0
    if n < 126:
        head += bytes([m | n])
    elif n <= 0xFFFF:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def request(path="/mqtt", origin=None, protocol="mqtt", extra=""):
    r = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n")
    if protocol:
        r += f"Sec-WebSocket-Protocol: {protocol}\r\n"
    if origin:
        r += f"Origin: {origin}\r\n"
    return (r + extra + "\r\n").encode()


class WsClient:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing from the broker in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("nothing from the broker in time")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("closed by the broker")
        self.buf += chunk

    def http_response(self, timeout=WAIT):
        """(status, headers as a lower-case dict) of the broker's answer."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), headers

    def upgrade(self, **kw):
        self.sock.sendall(request(**kw))
        status, headers = self.http_response()
        assert status == 101, (status, headers)
        assert headers["sec-websocket-accept"] == ACCEPT
        assert headers["sec-websocket-protocol"] == kw.get("protocol", "mqtt")
        return self

    def read_frame(self, timeout=WAIT):
        """(opcode, payload) of the next server frame."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert b1 & 0x80 == 0, "server frames are never masked"
                n, pos = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
                if (b1 & 0x7F) < 126 or pos > 2:
                    if len(self.buf) >= pos + n:
                        payload = self.buf[pos:pos + n]
                        self.buf = self.buf[pos + n:]
                        assert b0 & 0x80, "server frames are not fragmented"
                        return b0 & 0x0F, payload
            self._fill(deadline)

    def mqtt(self, timeout=WAIT):
        """The next MQTT packet (binary frames only)."""
        op, payload = self.read_frame(timeout)
        assert op == 2, f"expected a binary frame, got opcode {op}: {payload!r}"
        length, pos = rm.read_varint(payload, 1)
        return rm.Packet(payload[0], payload[pos:pos + length])

    def send_mqtt(self, data):
        self.sock.sendall(frame(2, data))

    def expect_close(self, code, timeout=WAIT):
        """The broker's close frame carries `code`, then the TCP connection ends."""
        deadline = time.monotonic() + timeout
        while True:
            op, payload = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if op == 8:
                break
        assert struct.unpack("!H", payload[:2])[0] == code, payload
        self.expect_eof(deadline - time.monotonic())

    def expect_eof(self, timeout=WAIT):
        deadline = time.monotonic() + max(timeout, 0.5)
        with pytest.raises(EOFError):
            while True:
                self._fill(deadline)
                self.buf = b""

    def close(self):
        self.sock.close()


@pytest.fixture
def others(ws_broker):
    """A plain MQTT client and a WebSocket one, both connected; check() asserts
    both still answer a PINGREQ."""
    plain = rm.RawClient(rm_endpoint(ws_broker, 0))
    plain.connect("plain-bystander")
    ws = WsClient(ws_broker.ports[1]).upgrade()
    ws.send_mqtt(rm.connect("ws-bystander"))
    assert ws.mqtt().type == rm.CONNACK

    class Others:
        def check(self):
            plain.send(bytes([0xC0, 0]))
            plain.expect(rm.PINGRESP)
            ws.send_mqtt(bytes([0xC0, 0]))
            assert ws.mqtt().type == rm.PINGRESP

    yield Others()
    plain.close()
    ws.close()


def rm_endpoint(b, i):
    return b.endpoint(i)


def upgraded(b, i=1):
    c = WsClient(b.ports[i]).upgrade()
    c.send_mqtt(rm.connect(""))
    assert c.mqtt().type == rm.CONNACK
    return c


def test_publish_subscribe_over_ws_split_and_batched(ws_broker, others):
    c = WsClient(ws_broker.ports[1])
    # The request, and the CONNECT split across two frames sent right behind it.
    con = rm.connect("raw-ws")
    c.sock.sendall(request() + frame(2, con[:3]))
    status, _ = c.http_response()
    assert status == 101
    c.sock.sendall(frame(2, con[3:]))
    assert c.mqtt().type == rm.CONNACK
    # SUBSCRIBE and a PUBLISH in one frame; a plain client's message arrives too.
    c.send_mqtt(rm.subscribe(1, "ws/t") + rm.publish("ws/t", b"self"))
    assert c.mqtt().type == rm.SUBACK
    p = c.mqtt()
    assert p.type == rm.PUBLISH and p.body.endswith(b"self")
    plain = rm.RawClient(ws_broker.endpoint(0))
    plain.connect("plain-pub")
    plain.send(rm.publish("ws/t", b"from-tcp", qos=1, pid=7))
    plain.expect(rm.PUBACK)
    p = c.mqtt()
    assert p.type == rm.PUBLISH and p.body.endswith(b"from-tcp")
    # Ping with a payload between the fragments of one message.
    c.sock.sendall(frame(2, bytes([0xC0]), fin=False) + frame(9, b"hi") + frame(0, bytes([0]), fin=True))
    assert c.read_frame() == (10, b"hi")
    assert c.mqtt().type == rm.PINGRESP
    # The close handshake: the code is echoed, then the connection ends.
    c.sock.sendall(frame(8, struct.pack("!H", 1000)))
    c.expect_close(1000)
    plain.close()
    others.check()


@pytest.mark.parametrize("bad,code", [
    (frame(2, bytes([0xC0, 0]), masked=False), 1002),
    (frame(1, b"hello"), 1003),
    (frame(2, bytes([0xC0, 0]), rsv=0x40), 1002),
    (frame(2, bytes([0xC0, 0]), rsv=0x10), 1002),
    (frame(3, b""), 1002),
    (frame(11, b""), 1002),
    (frame(9, b"x", fin=False), 1002),
    (frame(0, b"x"), 1002),
], ids=["unmasked", "text", "rsv1", "rsv3", "opcode3", "opcode11", "fragmented-ping", "stray-continuation"])
def test_bad_frames_close_that_connection_with_the_code(ws_broker, others, bad, code):
    c = upgraded(ws_broker)
    c.sock.sendall(bad)
    c.expect_close(code)
    others.check()


def test_frames_are_not_packets_only_each_mqtt_packet_is_bounded(ws_broker, others):
    # MQTT-6.0.0-2: a frame may carry several packets, a message may go on
    # for ever; max_packet_size bounds each MQTT packet, not the frames.
    c = upgraded(ws_broker)
    c.send_mqtt(rm.subscribe(1, "ws/big"))
    assert c.mqtt().type == rm.SUBACK
    body = b"b" * 1500
    c.sock.sendall(frame(2, rm.publish("ws/big", body) + rm.publish("ws/big", body)))   # one frame over the limit
    for _ in range(2):
        p = c.mqtt()
        assert p.type == rm.PUBLISH and p.body.endswith(body)
    c.sock.sendall(frame(2, rm.publish("ws/big", body)[:1000], fin=False) +
                   frame(0, rm.publish("ws/big", body)[1000:] + rm.publish("ws/big", body)))   # a fragmented message over it
    for _ in range(2):
        p = c.mqtt()
        assert p.type == rm.PUBLISH and p.body.endswith(body)
    # One MQTT packet over max_packet_size: that connection ends.
    c.sock.sendall(frame(2, rm.publish("ws/big", b"x" * (MAX_PACKET + 10))))
    c.expect_close(1000)
    others.check()


def test_bad_frame_before_connect(ws_broker, others):
    c = WsClient(ws_broker.ports[1]).upgrade()
    c.sock.sendall(frame(1, b"{}"))
    c.expect_close(1003)
    others.check()


def test_broker_closing_sends_a_close_frame(ws_broker, others):
    c = upgraded(ws_broker)
    c.send_mqtt(rm.connect("again"))   # a second CONNECT: the broker closes
    c.expect_close(1000)
    others.check()


@pytest.mark.parametrize("how", ["truncated", "slow"])
def test_unfinished_upgrade_is_closed_after_connect_timeout(ws_broker, others, how):
    c = WsClient(ws_broker.ports[1])
    req = request()
    start = time.monotonic()
    if how == "truncated":
        c.sock.sendall(req[:30])
    else:
        # A byte every 100 ms: activity does not extend the deadline.
        for i in range(25):
            try:
                c.sock.sendall(req[i:i + 1])
            except OSError:
                break
            time.sleep(0.1)
    status, _ = c.http_response(timeout=CONNECT_TIMEOUT_MS / 1000 + 3)
    elapsed = time.monotonic() - start
    assert status == 408
    assert CONNECT_TIMEOUT_MS / 1000 - 0.2 <= elapsed < CONNECT_TIMEOUT_MS / 1000 + 2
    c.expect_eof()
    others.check()


@pytest.mark.parametrize("req,status", [
    (request(path="/other"), 404),
    (request(protocol="chat"), 400),
    (request(protocol=None), 400),
    (request().replace(b"Version: 13", b"Version: 8"), 426),
    (request().replace(b"GET", b"PUT"), 405),
    (request(extra="X-Pad: " + "a" * 9000 + "\r\n"), 431),
    (b"GET /mqtt HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000, 431),
    (rm.connect("tcp-on-ws-port"), 400),
], ids=["wrong-path", "no-mqtt-subprotocol", "no-subprotocol", "version-8", "put", "big-headers",
        "endless-headers", "mqtt-on-ws-port"])
def test_refused_upgrades(ws_broker, others, req, status):
    c = WsClient(ws_broker.ports[1])
    c.sock.sendall(req)
    got, headers = c.http_response()
    assert got == status
    assert headers.get("connection") == "close"
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    c.expect_eof()
    others.check()


def test_allowed_origins_and_any_path(ws_broker, others):
    port = ws_broker.ports[2]
    for origin in (None, "http://evil.example"):
        c = WsClient(port)
        c.sock.sendall(request(origin=origin))
        assert c.http_response()[0] == 403
        c.expect_eof()
    c = WsClient(port).upgrade(origin=ORIGIN, path="/anything", protocol="mqttv3.1")
    c.send_mqtt(rm.connect("origin-ok"))
    assert c.mqtt().type == rm.CONNACK
    others.check()


def test_forwarded_for_logged_only_from_trusted_proxies(ws_broker):
    untrusted = WsClient(ws_broker.ports[1]).upgrade(extra="X-Forwarded-For: 10.9.9.9\r\n")
    trusted = WsClient(ws_broker.ports[2]).upgrade(origin=ORIGIN, extra="X-Forwarded-For: 10.1.2.3\r\n")
    for c in (untrusted, trusted):
        c.send_mqtt(rm.connect(""))
        assert c.mqtt().type == rm.CONNACK
    assert "X-Forwarded-For: 10.1.2.3" in ws_broker.log()
    assert "10.9.9.9" not in ws_broker.log()


def test_a_ping_flood_that_never_reads_its_pongs_holds_no_memory(ws_broker, others):
    # Pongs are not answered while the client's output is over max_output_bytes
    # (RFC 6455 5.5.3 lets a pong answer only the latest ping): without that,
    # each ping queued a pong the client never read, without bound.
    c = WsClient(ws_broker.ports[1])
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.upgrade()
    c.send_mqtt(rm.connect("pinger"))
    assert c.mqtt().type == rm.CONNACK
    before = status_bytes(ws_broker.proc.pid, "VmRSS")
    pings = frame(9, b"P" * 125) * 512
    c.sock.setblocking(False)
    sent, off, deadline = 0, 0, time.monotonic() + 4
    while time.monotonic() < deadline and sent < 256 << 20:
        try:
            n = c.sock.send(pings[off:])   # whole frames only: a partial send resumes where it stopped
        except BlockingIOError:
            time.sleep(0.005)
            continue
        sent += n
        off = (off + n) % len(pings)
    grown = status_bytes(ws_broker.proc.pid, "VmRSS") - before
    print(f"[ping flood] {sent >> 20} MiB of pings in {time.monotonic() - deadline + 4:.1f} s, broker RSS +{grown >> 20} MiB")
    assert sent > 16 << 20, "the broker stopped reading the pings"
    assert grown < 32 << 20
    others.check()
    c.close()


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"], ids=["crlf", "bare-lf"])
def test_an_upgrade_split_anywhere_is_answered_the_same(ws_broker, others, line_end):
    # The head is parsed again only once its end may have arrived: that
    # check must see a bare-LF end too, wherever the request is split.
    req = request().replace(b"\r\n", line_end)
    for cut in (len(req) - 1, len(req) - len(line_end), len(req) // 2):
        c = WsClient(ws_broker.ports[1])
        c.sock.sendall(req[:cut])
        time.sleep(0.05)
        c.sock.sendall(req[cut:])
        status, headers = c.http_response()
        assert status == 101, (cut, status, headers)
        c.sock.close()
    others.check()
