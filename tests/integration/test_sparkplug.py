# Sparkplug B 3.0 against a Sparkplug Aware hato ([sparkplug] aware = true):
# a scripted edge node (NBIRTH, DBIRTH, an NDEATH will) and host application
# (spBv1.0/STATE/<host_id>, QoS 1, retained, also as its will). Births are
# delivered as published and kept retained on $sparkplug/certificates/...;
# a death by keep-alive timeout delivers the NDEATH will; a rebirth replaces
# the certificate; a host that connects late reads the certificates; they
# survive a SIGKILL. Payloads are opaque bytes: the broker never parses them.

import time

import pytest

from paho_client import V5

AWARE = {"sparkplug": {"aware": True}}
GROUP, NODE, DEVICE, HOST = "G1", "E1", "D1", "scada1"
NBIRTH = f"spBv1.0/{GROUP}/NBIRTH/{NODE}"
DBIRTH = f"spBv1.0/{GROUP}/DBIRTH/{NODE}/{DEVICE}"
NDEATH = f"spBv1.0/{GROUP}/NDEATH/{NODE}"
NDATA = f"spBv1.0/{GROUP}/NDATA/{NODE}"
STATE = f"spBv1.0/STATE/{HOST}"
CERTS = "$sparkplug/certificates/spBv1.0/#"
CERT_NBIRTH = "$sparkplug/certificates/" + NBIRTH
CERT_DBIRTH = "$sparkplug/certificates/" + DBIRTH


# Stand-ins for protobuf payloads, with a NUL and high bytes to show they pass untouched.
def payload(kind, bd_seq):
    return b"\x08\x00" + f"{kind}:bdSeq={bd_seq}".encode() + b"\xff"


def abandon(c):
    """Closes a client's socket without DISCONNECT, and tells the wrapper so
    its cleanup does not wait for a DISCONNECT that cannot happen."""
    c.drop()
    c._connected.clear()


def edge_node(clients, broker, bd_seq, keepalive=60):
    """An edge node session: NDEATH will, then NBIRTH and DBIRTH (QoS 0, as
    Sparkplug publishes them)."""
    edge = clients(f"edge-{NODE}", broker=broker, keepalive=keepalive,
                   will={"topic": NDEATH, "payload": payload("NDEATH", bd_seq), "qos": 1})
    edge.publish(NBIRTH, payload("NBIRTH", bd_seq), 0)
    edge.publish(DBIRTH, payload("DBIRTH", bd_seq), 0)
    return edge


def host_app(clients, broker, host_id=HOST, **kw):
    """A host application: STATE offline as its will, online once connected,
    both QoS 1 and retained."""
    state = f"spBv1.0/STATE/{host_id}"
    host = clients(f"host-{host_id}", broker=broker,
                   will={"topic": state, "payload": b'{"online":false}', "qos": 1, "retain": True}, **kw)
    host.publish(state, b'{"online":true}', 1, retain=True)
    return host


def expect_topics(c, n):
    return [(m.topic, m.payload, m.retain) for m in c.expect_list(n)]


def read_retained(clients, broker, topic_filter, n, client_id="reader"):
    """Connects a fresh client, subscribes, returns the n retained messages
    by topic (and checks no more arrive)."""
    r = clients(client_id, broker=broker)
    r.subscribe(topic_filter, 1)
    got = {m.topic: (m.payload, m.retain) for m in r.expect_list(n)}
    r.expect_none(0.3)
    r.disconnect()
    return got


def test_birth_keepalive_death_rebirth_and_late_host(broker_factory, clients):
    broker = broker_factory(AWARE)
    host = host_app(clients, broker)
    host.subscribe(f"spBv1.0/{GROUP}/#", 1)
    host.subscribe(CERTS, 1)

    # Birth: the originals as published, and their certificates.
    edge = edge_node(clients, broker, 0, keepalive=1)
    got = expect_topics(host, 4)
    assert sorted(got) == sorted([
        (NBIRTH, payload("NBIRTH", 0), False), (CERT_NBIRTH, payload("NBIRTH", 0), False),
        (DBIRTH, payload("DBIRTH", 0), False), (CERT_DBIRTH, payload("DBIRTH", 0), False)])
    # Data is not a birth: no certificate for it.
    edge.publish(NDATA, b"data", 0)
    assert expect_topics(host, 1) == [(NDATA, b"data", False)]
    host.expect_none(0.3)

    # Death by keep-alive timeout: the edge stops talking (1 s keep alive,
    # closed after 1.5 s), its NDEATH will is delivered; the certificates stay.
    edge.paho.loop_stop()
    t0 = time.monotonic()
    m = host.expect(timeout=8)
    assert (m.topic, m.payload, m.qos) == (NDEATH, payload("NDEATH", 0), 1)
    assert time.monotonic() - t0 < 6
    abandon(edge)
    host.expect_none(0.3)

    # Rebirth with the next bdSeq replaces both certificates.
    edge = edge_node(clients, broker, 1)
    assert sorted(expect_topics(host, 4)) == sorted([
        (NBIRTH, payload("NBIRTH", 1), False), (CERT_NBIRTH, payload("NBIRTH", 1), False),
        (DBIRTH, payload("DBIRTH", 1), False), (CERT_DBIRTH, payload("DBIRTH", 1), False)])

    # A host that connects late reads the current certificates, retained,
    # and the first host's STATE (retained).
    late = host_app(clients, broker, host_id="late")
    late.subscribe(CERTS, 1)
    got = {m.topic: (m.payload, m.retain) for m in late.expect_list(2)}
    assert got == {CERT_NBIRTH: (payload("NBIRTH", 1), True), CERT_DBIRTH: (payload("DBIRTH", 1), True)}
    late.subscribe("spBv1.0/STATE/+", 1)
    got = {m.topic: (m.payload, m.retain) for m in late.expect_list(2)}
    assert got == {STATE: (b'{"online":true}', True), "spBv1.0/STATE/late": (b'{"online":true}', True)}
    late.expect_none(0.3)
    edge.disconnect()


@pytest.mark.parametrize("version", [4, V5], ids=["v311", "v5"])
def test_host_state_retained_and_will(broker_factory, clients, version):
    broker = broker_factory(AWARE)
    watcher = clients("watcher", broker=broker, version=version)
    watcher.subscribe("spBv1.0/STATE/+", 1)
    host = host_app(clients, broker, version=version)
    m = watcher.expect()
    assert (m.topic, m.payload, m.qos) == (STATE, b'{"online":true}', 1)
    # The host dies: its offline STATE will goes out and replaces the retained one.
    abandon(host)
    m = watcher.expect()
    assert (m.topic, m.payload, m.qos) == (STATE, b'{"online":false}', 1)
    assert read_retained(clients, broker, "spBv1.0/STATE/+", 1) == {STATE: (b'{"online":false}', True)}
    # STATE is no birth: no certificate for it.
    r = clients("no-certs", broker=broker)
    r.subscribe("$sparkplug/#", 1)
    r.expect_none(0.3)


def test_certificates_survive_sigkill(broker_factory, clients):
    broker = broker_factory(AWARE)
    # A clean DISCONNECT: the births before it are handled before the
    # rebirth below takes over the client id.
    edge_node(clients, broker, 0).disconnect()
    edge2 = clients("edge-second", broker=broker)
    edge2.publish(f"spBv1.0/{GROUP}/NBIRTH/E2", b"e2-birth", 0)
    # A rebirth of E1 before the crash: only the newest survives.
    clients(f"edge-{NODE}", broker=broker).publish(NBIRTH, payload("NBIRTH", 7), 1)
    # Its STATE is a retained QoS 1 PUBLISH: acknowledged once stored, and
    # with sync = "always" everything written before it is stored too.
    host_app(clients, broker)

    broker.kill()
    for c in list(clients.made):
        abandon(c)
    broker.start()

    got = read_retained(clients, broker, CERTS, 3)
    assert got == {CERT_NBIRTH: (payload("NBIRTH", 7), True),
                   CERT_DBIRTH: (payload("DBIRTH", 0), True),
                   f"$sparkplug/certificates/spBv1.0/{GROUP}/NBIRTH/E2": (b"e2-birth", True)}
    # The host application was connected when the broker died: its
    # connection ended without a DISCONNECT, so its will (STATE offline)
    # is published at the restart, as Sparkplug hosts and edge nodes expect.
    assert read_retained(clients, broker, "spBv1.0/#", 1, "reader2") == {STATE: (b'{"online":false}', True)}
    # Still aware after the restart: a new birth replaces the recovered certificate.
    clients("edge-again", broker=broker).publish(NBIRTH, payload("NBIRTH", 8), 1)
    got = read_retained(clients, broker, CERT_NBIRTH, 1, "reader3")
    assert got == {CERT_NBIRTH: (payload("NBIRTH", 8), True)}


def test_not_aware_by_default(broker_factory, clients):
    broker = broker_factory()
    watcher = clients("watcher", broker=broker)
    watcher.subscribe("$sparkplug/#", 1)
    edge = edge_node(clients, broker, 0)
    edge.publish(NDATA, b"data", 1)
    watcher.expect_none(0.3)
    r = clients("late", broker=broker)
    r.subscribe("$sparkplug/#", 1)
    r.expect_none(0.3)
