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


def _retained_under(broker, filt, wait=1.5):
    """{topic: payload} of the retained messages a new subscriber to filt gets."""
    c = raw_mqtt.RawClient(broker)
    c.connect(f"will-reader-{time.monotonic_ns()}")
    c.send(raw_mqtt.subscribe(1, filt, qos=0))
    c.expect(raw_mqtt.SUBACK)
    got = {}
    while True:
        try:
            p = c.read(timeout=wait)
        except TimeoutError:
            break
        topic, _, _, body = raw_mqtt.parse_publish(p)
        got[topic] = bytes(body)
    c.close()
    return got


# The connections of clients connected when the broker crashed ended with it,
# without a DISCONNECT: their wills are stored while they are connected and
# published at the next start. A client whose will has a delay, and that
# comes back within it, cancels it; one that disconnected normally left none.
def test_wills_of_clients_connected_at_a_crash_are_published_at_the_next_start(broker_factory, raw):
    b = broker_factory({"storage": {"enabled": True, "sync": "always"}})
    v311 = raw(b)
    v311.connect("will-crash-v311", version=4,
                 will={"topic": "crash/v311", "payload": b"offline", "qos": 1, "retain": True})
    v5 = raw(b)
    v5.connect("will-crash-v5", version=5,
               will={"topic": "crash/v5", "payload": b"offline", "qos": 1, "retain": True})
    back = raw(b)
    back.connect("will-crash-back", version=5, clean=False, props=[(raw_mqtt.SESSION_EXPIRY, 300)],
                 will={"topic": "crash/back", "payload": b"offline", "qos": 1, "retain": True},
                 will_props=[(0x18, 3)])
    away = raw(b)
    away.connect("will-crash-away", version=5, clean=False, props=[(raw_mqtt.SESSION_EXPIRY, 300)],
                 will={"topic": "crash/away", "payload": b"offline", "qos": 1, "retain": True},
                 will_props=[(0x18, 2)])
    polite = raw(b)
    polite.connect("will-crash-polite", version=4,
                   will={"topic": "crash/polite", "payload": b"offline", "qos": 1, "retain": True})
    polite.send(raw_mqtt.disconnect())
    polite.wait_closed()
    # A PUBACK waits for everything written before it to be synced.
    fence = raw(b)
    fence.connect("will-crash-fence")
    fence.send(raw_mqtt.publish("crash-fence", b"x", qos=1, pid=1))
    fence.expect(raw_mqtt.PUBACK)
    b.kill()
    b.start()

    again = raw(b)
    again.connect("will-crash-back", version=5, clean=False, props=[(raw_mqtt.SESSION_EXPIRY, 300)])
    got = _retained_under(b, "crash/#")
    assert got == {"crash/v311": b"offline", "crash/v5": b"offline"}, got
    time.sleep(3.5)   # past both delays: "away" did not come back, "back" did
    got = _retained_under(b, "crash/#")
    assert got == {"crash/v311": b"offline", "crash/v5": b"offline", "crash/away": b"offline"}, got

    # Published once: a second restart finds no will left to publish.
    b.stop()
    b.start()
    reader = raw(b)
    reader.connect("will-crash-reader", version=4)
    reader.send(raw_mqtt.subscribe(1, "crash/#", qos=1))
    reader.expect(raw_mqtt.SUBACK)
    retained = []
    while True:
        try:
            retained.append(reader.read(timeout=1.0))
        except TimeoutError:
            break
    assert len(retained) == 3, retained
