# Answers held until the state they acknowledge is durable (CONNACK, SUBACK,
# PUBACK: src/broker/held_acks.hpp), against a client that keeps the broker
# busy meanwhile: what is queued behind them keeps its order, and what a
# client makes the broker answer while they wait counts against its output
# limit (the broker stops reading it) instead of growing without bound.

import random
import socket
import struct
import threading
import time

import pytest

import raw_mqtt
from build_info import sanitized
from conftest import TARGET
from proc_status import status_bytes
from raw_mqtt import PUBACK, PUBLISH, SUBACK, RawClient, parse_publish, publish, subscribe

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's storage settings")


def _stream(b, stop):
    """Publishes a counter to t (QoS 0) and q (QoS 1) as fast as the broker
    takes it, reading the PUBACKs without waiting for them."""
    p = RawClient(b)
    p.connect("stream")
    p.sock.setblocking(False)
    i = 0
    while not stop.is_set():
        chunk = b""
        for _ in range(20):
            i += 1
            chunk += publish("t", struct.pack("!I", i)) + publish("q", struct.pack("!I", i), 1, pid=i % 60000 + 1)
        try:
            p.sock.sendall(chunk)
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            break
        try:
            p.sock.recv(1 << 20)
        except (BlockingIOError, OSError):
            pass
        time.sleep(0.001)
    p.close()


def test_messages_keep_their_order_behind_a_held_suback_and_a_later_held_puback(broker_factory):
    # A SUBACK holds the subscriber's output; its own QoS 1 PUBLISH right
    # after gets a PUBACK held on a later sync. When a sync covers the
    # SUBACK only, the messages queued behind the PUBACK must still go out
    # before anything routed to the subscriber later (MQTT-4.6.0-6).
    b = broker_factory({"storage": {"sync_window_us": 2000}, "limits": {"max_inflight": 64}})
    s = RawClient(b)
    s.connect("ordered", clean=False)
    s.send(subscribe(1, "t", 0) + subscribe(2, "q", 1) + subscribe(3, "x", 1))
    stop = threading.Event()
    streamer = threading.Thread(target=_stream, args=(b, stop))
    streamer.start()
    last = {"t": 0, "q": 0}
    seen = {"t": 0, "q": 0}
    inversions = {"t": 0, "q": 0}
    subacks = 0
    pid, next_cycle = 100, 0.0
    end = time.monotonic() + 3.0
    try:
        while time.monotonic() < end + 1.0:
            now = time.monotonic()
            if now < end and now >= next_cycle:
                next_cycle = now + 0.004
                pid = pid + 1 if pid < 60000 else 100
                s.send(subscribe(pid, f"u/{pid}", 1))
                time.sleep(random.random() * 0.003)
                s.send(publish("x", b"self", 1, pid=pid))
            elif now >= end:
                stop.set()
            try:
                pk = s.read(0.05)
            except TimeoutError:
                continue
            if pk.type == SUBACK:
                subacks += 1
            elif pk.type == PUBLISH:
                topic, ppid, _, payload = parse_publish(pk)
                if ppid:
                    s.send(raw_mqtt.packet(PUBACK, 0, struct.pack("!H", ppid)))
                if topic in last and not pk.flags & 8:
                    v = struct.unpack("!I", payload[:4])[0]
                    seen[topic] += 1
                    inversions[topic] += v <= last[topic]
                    last[topic] = max(last[topic], v)
    finally:
        stop.set()
        streamer.join(10)
    print(f"subacks {subacks}, received {seen}, out of order {inversions}")
    assert subacks > 50 and seen["q"] > 500, (subacks, seen)
    assert inversions == {"t": 0, "q": 0}
    s.close()


def _flood(sock, chunk, seconds):
    sock.settimeout(0.2)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent += sock.send(chunk)
        except (TimeoutError, BlockingIOError):
            pass
    return sent


@pytest.mark.parametrize("answers", ["pingresp", "v3_puback"])
def test_answers_queued_behind_a_held_suback_count_against_the_output_limit(broker_factory, answers):
    # A sync window of a second holds the SUBACK that long; meanwhile the
    # client pipelines PINGREQs (or v3.1.1 QoS 1 PUBLISHes nobody receives,
    # answered with nothing to wait for) and never reads. Their answers
    # queue behind the SUBACK: at max_output_bytes the broker stops reading
    # the client rather than keep them all.
    b = broker_factory({"storage": {"sync_window_us": 1_000_000}, "limits": {"max_output_bytes": 65536}})
    s = RawClient(b)
    s.connect("flooder", clean=False)
    s.send(subscribe(1, "first", 0))
    s.expect(SUBACK, 5)
    time.sleep(1.2)
    before = status_bytes(b.proc.pid, "VmRSS")
    s.send(subscribe(2, "held/x", 0))   # the SUBACK waits for the next sync
    if answers == "pingresp":
        chunk = raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b"") * 50000
    else:
        chunk = b"".join(publish("nobody", b"", 1, pid=i % 65000 + 1) for i in range(20000))
    sent = _flood(s.sock, chunk, 0.9)
    grown = status_bytes(b.proc.pid, "VmRSS") - before
    print(f"{answers}: the client sent {sent} bytes behind the held SUBACK; broker RSS +{grown // 1024} KiB")
    # Unbounded, this grew by hundreds of MiB within the second. Bounded: the
    # limit, plus what one receive took in (io_uring: its buffer ring).
    assert grown < (48 if sanitized(b) else 24) * 1024 * 1024, grown
    s.sock.settimeout(5)
    first = s.read(5)
    assert first.type == SUBACK and struct.unpack_from("!H", first.body, 0)[0] == 2
    s.close()
    other = RawClient(b)
    other.connect("other")
    other.close()
