# Durability: with [storage] sync = "always", every message the
# broker acknowledged (PUBACK / PUBCOMP received by the publisher) survives a
# SIGKILL in the middle of a publishing burst, and acknowledged QoS 2
# messages reach the persistent subscriber exactly once. Retained messages
# set before the kill are still there after the restart.
#
# The SIGKILL variant needs hato's append log. The SIGTERM variant (clean
# shutdown, same checks) also runs against Mosquitto, which validates the
# test's own bookkeeping.

import queue
import random
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from paho_client import Client

N_QOS1 = 2000
N_QOS2 = 1000
ROUND_DEADLINE = 120.0   # publishing + kill + restart + draining, per round
QUIET = 1.5              # extra wait after the last expected message, for duplicates

SETTINGS = {"storage": {"enabled": True, "sync": "always"},
            "limits": {"max_queued_messages": 20000, "max_inflight": 100}}


def _publish_burst(broker, rnd, rng, crash):
    """Publishes the round's messages, interrupted by the crash (SIGKILL) or
    a clean stop once a random share is acknowledged. Returns (payload ->
    qos of every message published, set of acknowledged payloads)."""
    pub = mqtt.Client(f"crash-pub-{rnd}", clean_session=True, reconnect_on_failure=False)
    pub.max_inflight_messages_set(100)
    pub.max_queued_messages_set(0)
    acked_mids = set()
    lock = threading.Lock()
    connected = threading.Event()

    def on_publish(client, userdata, mid):
        with lock:
            acked_mids.add(mid)

    pub.on_publish = on_publish
    pub.on_connect = lambda *a: connected.set()
    pub.connect(broker.host, broker.port, 60)
    pub.loop_start()
    try:
        assert connected.wait(10), "publisher not connected"
        total = N_QOS1 + N_QOS2
        stop_at = int(total * rng.uniform(0.25, 0.75))
        mid_payload = {}
        published = {}
        for i in range(total):
            qos = 2 if i % 3 == 2 else 1
            payload = f"{rnd}:{qos}:{i}".encode()
            info = pub.publish(f"crash/q{qos}", payload, qos)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
            mid_payload[info.mid] = payload
            published[payload] = qos
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(acked_mids) >= stop_at:
                    break
            time.sleep(0.005)
        if crash:
            broker.kill()
        else:
            broker.stop()
        # acknowledgements the broker sent before dying still count: read
        # them until the publisher sees the connection end
        end = time.monotonic() + 10
        while pub.is_connected() and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        pub.loop_stop()
        try:
            pub.socket() and pub.socket().close()
        except OSError:
            pass
    with lock:
        acked = {mid_payload[m] for m in acked_mids}
    return published, acked


def _drain(sub, expected, deadline):
    """Messages until every expected payload came, then QUIET more seconds."""
    got = []
    seen = set()
    quiet_until = None
    while True:
        now = time.monotonic()
        if quiet_until is None and expected <= seen:
            quiet_until = now + QUIET
        end = min(deadline, quiet_until or deadline)
        if now >= end:
            return got
        try:
            m = sub.messages.get(timeout=end - now)
        except queue.Empty:
            return got
        got.append(m)
        seen.add(m.payload)


def _run_rounds(broker_factory, rounds, crash):
    b = broker_factory(SETTINGS)
    sub = Client(b, "crash-sub", clean=False)
    sub.subscribe("crash/q1", 1)
    sub.subscribe("crash/q2", 2)
    sub.disconnect()
    retained = {}
    qos2_count = {}    # payload -> deliveries, over all rounds
    acked_qos2 = set()
    try:
        for rnd in range(rounds):
            round_deadline = time.monotonic() + ROUND_DEADLINE
            setter = Client(b, f"crash-ret-{rnd}")
            topic = f"crash/retained/{rnd % 2}"   # round 2 replaces round 0's
            setter.publish(topic, f"retained-{rnd}".encode(), qos=1, retain=True)
            setter.disconnect()
            retained[topic] = f"retained-{rnd}".encode()

            published, acked = _publish_burst(b, rnd, random.Random(rnd), crash)
            print(f"round {rnd}: {len(acked)} of {len(published)} acknowledged before the "
                  f"{'kill' if crash else 'stop'}")
            b.start()   # same data directory, maybe another port

            sub.connect()
            assert sub.session_present, f"round {rnd}: persistent session lost"
            got = _drain(sub, acked, round_deadline)
            payloads = [m.payload for m in got]
            missing = acked - set(payloads)
            assert not missing, (f"round {rnd}: {len(missing)} of {len(acked)} acknowledged "
                                 f"messages lost, e.g. {sorted(missing)[:5]}")
            for p in payloads:
                # nothing invented; older rounds' QoS 1 may legitimately come again
                assert int(p.split(b":")[0]) < rnd or p in published, f"unknown message {p!r}"
            acked_qos2 |= {p for p in acked if published[p] == 2}
            for m in got:
                if m.topic == "crash/q2":
                    qos2_count[m.payload] = qos2_count.get(m.payload, 0) + 1
            dup2 = sorted(p for p, n in qos2_count.items() if n > 1 and p in acked_qos2)
            assert not dup2, (f"round {rnd}: {len(dup2)} acknowledged QoS 2 messages "
                              f"delivered more than once, e.g. {dup2[:5]}")
            sub.disconnect()

            checker = Client(b, f"crash-check-{rnd}")
            checker.subscribe("crash/retained/#", 1)
            got_ret = {m.topic: m.payload for m in checker.expect_list(len(retained))}
            assert got_ret == retained, f"round {rnd}: retained after restart {got_ret}"
            checker.disconnect()
    finally:
        sub.close()


@pytest.mark.hato_only("SIGKILL recovery of hato's append log")
def test_acknowledged_messages_survive_sigkill(broker_factory):
    _run_rounds(broker_factory, rounds=3, crash=True)


def test_acknowledged_messages_survive_clean_restart(broker_factory):
    _run_rounds(broker_factory, rounds=1, crash=False)
