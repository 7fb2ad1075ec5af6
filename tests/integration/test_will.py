# Last Will and keep alive: an abrupt close publishes the will, a normal
# DISCONNECT does not (a v5 one with any reason but 0x00 does); the will
# retain flag is honoured; a silent client is closed after 1.5 x its keep
# alive and its will goes out.

import time

import pytest

import raw_mqtt
from paho_client import V5, VERSIONS, VERSION_IDS


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_will_on_abrupt_close(clients, version):
    watcher = clients("will-watch", version=version)
    watcher.subscribe("will/#", 1)
    dying = clients("will-dying", version=version,
                    will={"topic": "will/dying", "payload": b"gone", "qos": 1})
    dying.drop()
    m = watcher.expect()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/dying", b"gone", 1, False)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_no_will_on_normal_disconnect(clients, version):
    watcher = clients("will-watch2", version=version)
    watcher.subscribe("will/#", 1)
    polite = clients("will-polite", version=version,
                     will={"topic": "will/polite", "payload": b"should not", "qos": 1})
    polite.disconnect()
    watcher.expect_none(1.0)


# MQTT-3.1.2-10, MQTT-3.14.4-3: only reason 0x00 discards the will; 0x04
# asks for it, and an error reason is no normal disconnection (3.1.2.5).
@pytest.mark.parametrize("reason", [
    0x00, 0x04,
    *(pytest.param(r, marks=pytest.mark.mosquitto_fails("2.0 discards the will unless the reason is 0x04"))
      for r in (0x80, 0x83)),
], ids=["0x00", "0x04", "0x80", "0x83"])
def test_v5_disconnect_reason_decides_the_will(clients, raw, reason):
    watcher = clients(f"will-watch-{reason:x}", version=V5)
    watcher.subscribe("will/reason", 1)
    conn = raw()
    conn.connect(f"will-reason-{reason:x}", version=5,
                 will={"topic": "will/reason", "payload": b"reason %d" % reason, "qos": 1})
    conn.send(raw_mqtt.disconnect(version=5, reason=reason))
    assert conn.wait_closed(timeout=3) == []
    if reason == 0x00:
        watcher.expect_none(1.0)
    else:
        m = watcher.expect(timeout=3)
        assert (m.topic, m.payload) == ("will/reason", b"reason %d" % reason)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_raw_will_retained(clients, raw, version):
    conn = raw()
    conn.connect("will-raw", version=version,
                 will={"topic": "will/raw", "payload": b"bye", "qos": 1, "retain": True})
    conn.close()   # no DISCONNECT
    # the will is retained: a client subscribing afterwards still gets it
    deadline = time.monotonic() + 10
    while True:
        late = clients(f"will-late-{time.monotonic_ns()}", version=V5 if version == 5 else 4)
        late.subscribe("will/raw", 1)
        try:
            m = late.expect(timeout=1.0)
            break
        except AssertionError:
            late.close()
            assert time.monotonic() < deadline, "retained will never appeared"
    assert (m.topic, m.payload, m.retain) == ("will/raw", b"bye", True)


@pytest.mark.mosquitto_fails("checks keep alive only every ~5 s")
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_keep_alive_timeout_closes_and_publishes_will(clients, raw, version):
    watcher = clients("ka-watch")
    watcher.subscribe("ka/#", 1)
    silent = raw()
    silent.connect("ka-silent", version=version, keepalive=1,
                   will={"topic": "ka/silent", "payload": b"timed out", "qos": 1})
    t0 = time.monotonic()
    seen = silent.wait_closed(timeout=6)
    elapsed = time.monotonic() - t0
    # 1.5 x keep alive = 1.5 s; allow scheduling slack on a loaded machine
    assert 1.0 <= elapsed <= 3.5, f"closed after {elapsed:.2f}s"
    if version == 5:
        # a v5 server may send DISCONNECT 0x8D (keep alive timeout) first
        assert all(p.type == raw_mqtt.DISCONNECT and p.body[:1] == b"\x8d" for p in seen), seen
    else:
        assert seen == []
    m = watcher.expect()
    assert (m.topic, m.payload) == ("ka/silent", b"timed out")


def test_keep_alive_pings_keep_connection(raw):
    conn = raw()
    conn.connect("ka-pinger", keepalive=1)
    for _ in range(4):
        time.sleep(0.6)
        conn.send(raw_mqtt.packet(raw_mqtt.PINGREQ, 0, b""))
        conn.expect(raw_mqtt.PINGRESP)
