# Access rights that hold at every delivery: a persistent session belongs to
# the user that created it (another user is refused, or with
# allow_session_takeover_by_other_user starts afresh without its queue), a
# shared group only hands a message to a member that may read it, and a
# queued message keeps its subscription identifiers and its session's rights
# across a SIGKILL restart. hato only (password and ACL files), once per
# event backend.

import os
import shutil
import struct
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes

import raw_mqtt
from conftest import TARGET, _find_hato
from paho_client import V311, V5, WAIT, Client, props, publish_props
from security_util import SecBroker, mosquitto_passwd, write

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's [auth] configuration")

RC_NOT_AUTHORIZED = {V5: 0x87, V311: 5}
RC_NO_MATCHING_SUBSCRIBERS = 0x10

ACL = """\
user alice
topic read secret/#
topic read public/#

user bob
topic read public/#

user pub
topic write #

user worker
topic read +/tasks

user mallory
topic read public/tasks
"""

USERS = ["alice", "bob", "pub", "worker", "mallory"]


@pytest.fixture
def rights_broker(backend, request):
    """start(auth=None, storage=False) -> SecBroker with the users above
    (password = name + "-pw") and ACL; stopped at the end."""
    if not _find_hato():
        pytest.skip("hato binary not found (set HATO_BIN)")
    started = []

    def start(auth=None, storage=False):
        w = tempfile.mkdtemp(prefix="hato-rights-")
        pw = os.path.join(w, "passwd")
        for i, u in enumerate(USERS):
            mosquitto_passwd(pw, u, u + "-pw", create=(i == 0))
        a = {"password_file": pw, "acl_file": write(os.path.join(w, "acl"), ACL)}
        a.update(auth or {})
        b = SecBroker(backend, w, {"storage": {"enabled": storage}, "auth": a}, [{}])
        started.append((b, w))
        return b.start()

    yield start
    rep = getattr(request.node, "rep_call", None)
    for b, w in started:
        try:
            b.stop()
        finally:
            b.kill()
            if rep is not None and rep.failed:
                print(f"----- broker log ({b.log_path}) -----\n{b.log()[-6000:]}")
            shutil.rmtree(w, ignore_errors=True)


def user_client(b, name, client_id, version=V5, clean=True, session_expiry=3600):
    """A connected paho_client.Client logged in as `name`."""
    c = Client(b.endpoint(0), client_id=client_id, version=version, clean=clean,
               session_expiry=session_expiry if version == V5 else None, auto_connect=False)
    c.paho.username_pw_set(name, name + "-pw")
    c.connect()
    return c


def try_connect(b, name, client_id, version, clean, quiet=0.7):
    """CONNECTs as `name`; returns (CONNACK code, messages received within
    `quiet` seconds after it)."""
    kw = {"protocol": version, "reconnect_on_failure": False}
    if version != V5:
        kw["clean_session"] = clean
    c = mqtt.Client(client_id=client_id, **kw)
    c.username_pw_set(name, name + "-pw")
    got = {}
    msgs = []
    done = threading.Event()

    def on_connect(cl, userdata, flags, rc, properties=None):
        got["rc"] = rc.value if hasattr(rc, "value") else rc
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = lambda *a: done.set()
    c.on_message = lambda cl, u, m: msgs.append((m.topic, m.payload))
    ep = b.endpoint(0)
    ckw = {}
    if version == V5:
        ckw["clean_start"] = clean
        p = props(PacketTypes.CONNECT)
        p.SessionExpiryInterval = 3600
        ckw["properties"] = p
    c.connect(ep.host, ep.port, 60, **ckw)
    c.loop_start()
    try:
        assert done.wait(WAIT), "no CONNACK"
        if got.get("rc") == 0:
            time.sleep(quiet)
        return got.get("rc"), list(msgs)
    finally:
        c.disconnect()
        c.loop_stop()


def alice_offline_with_three(b, version):
    """alice-dev: persistent session on secret/#, offline, three QoS 1 messages queued."""
    alice = user_client(b, "alice", "alice-dev", version=version, clean=False)
    alice.subscribe("secret/#", qos=1)
    alice.disconnect()
    pub = user_client(b, "pub", "pub-1")
    for i in range(3):
        pub.publish("secret/plan", f"m{i}".encode(), qos=1)
    pub.disconnect()


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_takeover_by_another_user_is_refused(rights_broker, version):
    b = rights_broker()
    alice_offline_with_three(b, version)
    rc, got = try_connect(b, "bob", "alice-dev", version, clean=False)
    assert rc == RC_NOT_AUTHORIZED[version]
    assert got == []
    # alice's session and queue are untouched.
    alice = user_client(b, "alice", "alice-dev", version=version, clean=False)
    assert alice.session_present
    assert [m.payload for m in alice.expect(3)] == [b"m0", b"m1", b"m2"]
    alice.disconnect()


def test_takeover_by_another_user_discards_the_session_when_allowed(rights_broker):
    b = rights_broker(auth={"allow_session_takeover_by_other_user": True})
    alice_offline_with_three(b, V5)
    bob = user_client(b, "bob", "alice-dev", clean=False)
    assert not bob.session_present
    bob.expect_none()
    # alice's subscription went with her session.
    pub = user_client(b, "pub", "pub-1")
    pub.publish("secret/plan", b"later", qos=1)
    pub.publish("public/news", b"news", qos=1)
    bob.expect_none()
    bob.disconnect()
    pub.disconnect()


def test_shared_group_delivers_only_to_members_that_may_read(rights_broker):
    b = rights_broker()
    worker = user_client(b, "worker", "worker-1", session_expiry=0)
    mallory = user_client(b, "mallory", "mallory-1", session_expiry=0)
    worker.subscribe("$share/w/+/tasks", qos=1)
    mallory.subscribe("$share/w/+/tasks", qos=1)   # allowed: the filters overlap
    pub = user_client(b, "pub", "pub-1", session_expiry=0)
    infos = [pub.publish("plant1/tasks", f"t{i}".encode(), qos=1) for i in range(10)]
    assert all(i.is_published() for i in infos)
    got = worker.expect(10)
    assert sorted(m.payload for m in got) == sorted(f"t{i}".encode() for i in range(10))
    mallory.expect_none()
    for c in (worker, mallory, pub):
        c.disconnect()


def raw_login(b, name, client_id):
    """A raw v5 connection logged in as `name` (CONNACK checked)."""
    c = raw_mqtt.RawClient(b.endpoint(0))
    body = (raw_mqtt.mstr("MQTT") + bytes([5, 0xC2]) + struct.pack("!H", 60) + raw_mqtt.encode_props([])
            + raw_mqtt.mstr(client_id) + raw_mqtt.mstr(name) + raw_mqtt.mstr(name + "-pw"))
    c.send(raw_mqtt.packet(raw_mqtt.CONNECT, 0, body))
    ack = c.expect(raw_mqtt.CONNACK)
    assert ack.body[1] == 0, f"CONNACK refused: {ack.body[1]:#x}"
    return c


def test_shared_group_nobody_may_read_is_no_matching_subscriber(rights_broker):
    b = rights_broker()
    mallory = user_client(b, "mallory", "mallory-1", session_expiry=0)
    mallory.subscribe("$share/w/+/tasks", qos=1)
    pub = raw_login(b, "pub", "pub-raw")
    try:
        pub.send(raw_mqtt.publish("plant1/tasks", b"t", qos=1, pid=1, version=5))
        ack = pub.expect(raw_mqtt.PUBACK)
        assert ack.body[:3] == struct.pack("!HB", 1, RC_NO_MATCHING_SUBSCRIBERS)
        # public/tasks is hers to read.
        pub.send(raw_mqtt.publish("public/tasks", b"p", qos=1, pid=2, version=5))
        ack = pub.expect(raw_mqtt.PUBACK)
        assert ack.body[:2] == struct.pack("!H", 2) and ack.body[2:3] in (b"", b"\x00")
    finally:
        pub.close()
    assert mallory.expect().payload == b"p"
    mallory.expect_none(quiet=0.3)
    mallory.disconnect()


def test_queued_message_keeps_sub_id_and_rights_across_sigkill(rights_broker):
    b = rights_broker(storage=True)
    alice = user_client(b, "alice", "alice-dev", clean=True)
    p = props(PacketTypes.SUBSCRIBE)
    p.SubscriptionIdentifier = 42
    alice.subscribe("secret/#", qos=1, properties=p)
    alice.disconnect()
    pub = user_client(b, "pub", "pub-1", session_expiry=0)
    pub.publish("secret/plan", b"before", qos=1, properties=publish_props(MessageExpiryInterval=600))
    pub.disconnect()

    b.kill()
    b.start()

    # Published while alice is still offline: queued under her rights, not
    # the anonymous ones.
    pub = user_client(b, "pub", "pub-1", session_expiry=0)
    pub.publish("secret/plan", b"after", qos=1)
    pub.disconnect()
    # Still alice's session.
    rc, _ = try_connect(b, "bob", "alice-dev", V5, clean=False)
    assert rc == RC_NOT_AUTHORIZED[V5]

    alice = user_client(b, "alice", "alice-dev", clean=False)
    assert alice.session_present
    got = alice.expect(2)
    assert [(m.topic, m.payload, m.qos) for m in got] == [("secret/plan", b"before", 1),
                                                          ("secret/plan", b"after", 1)]
    for m in got:
        assert m.properties.SubscriptionIdentifier == [42]
    assert 0 < got[0].properties.MessageExpiryInterval <= 600
    assert not hasattr(got[1].properties, "MessageExpiryInterval")
    alice.disconnect()
