# Security: TLS listeners (wolfSSL), mutual TLS, password files, anonymous
# access, ACLs and their reload on SIGHUP. hato only (the listener and [auth]
# settings are hato's TOML), once per event backend.

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import raw_mqtt

from conftest import TARGET, _find_hato
from paho_client import V311, V5, WAIT
from security_util import (SecBroker, client, connack_code, make_certs, mosquitto, mosquitto_passwd,
                           write)

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's TLS/[auth] configuration")

RC_BAD_USER_OR_PASSWORD = {V5: 0x86, V311: 4}
RC_NOT_AUTHORIZED = {V5: 0x87, V311: 5}


@pytest.fixture(scope="session")
def certs():
    d = tempfile.mkdtemp(prefix="hato-certs-")
    make_certs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="hato-sec-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sec_broker(backend, request):
    """start(listeners, settings=None) -> SecBroker (stopped at the end)."""
    if not _find_hato():
        pytest.skip("hato binary not found (set HATO_BIN)")
    started = []

    def start(listeners, settings=None):
        w = tempfile.mkdtemp(prefix="hato-it-")
        s = {"storage": {"enabled": False}}
        s.update(settings or {})
        b = SecBroker(backend, w, s, listeners)
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


def server_tls(certs, **extra):
    t = {"cert": os.path.join(certs, "server.crt"), "key": os.path.join(certs, "server.key"),
         "ca": os.path.join(certs, "ca.crt")}
    t.update(extra)
    return t


def mutual_tls(certs, **extra):
    return server_tls(certs, require_client_cert=True, **extra)


def round_trip(pub, sub, topic, payload=b"x", qos=1):
    sub.publish(topic, payload, qos=qos) if pub is None else pub.publish(topic, payload, qos=qos)
    m = sub.expect()
    assert (m.topic, m.payload) == (topic, payload)


# -- TLS ---------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
@pytest.mark.parametrize("resumed_by", ["ticket", "session_id"])
def test_a_tls12_session_of_another_listener_does_not_skip_the_client_certificate(sec_broker, certs, tmp_path, resumed_by):
    # wolfSSL keeps one session cache for the process: a TLS 1.2 session
    # made on one listener resumed on another skips that listener's check
    # of the client certificate. Resumed by session id (no ticket), a client
    # with no certificate got past require_client_cert, and one with a
    # certificate from a CA only the other listener trusts came in with
    # that certificate's CN as its identity.
    plain_tls = {"cert": os.path.join(certs, "server.crt"), "key": os.path.join(certs, "server.key")}
    rogue_trusted = mutual_tls(certs, ca=os.path.join(certs, "rogue-ca.crt"))
    b = sec_broker([{"tls": plain_tls}, {"tls": mutual_tls(certs, identity_as_username=True)},
                    {"tls": rogue_trusted}])
    sess = str(tmp_path / "session.pem")
    no_ticket = ["-no_ticket"] if resumed_by == "session_id" else []

    def s_client(ep, *extra):
        return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ep.port}", "-tls1_2",
                               "-CAfile", os.path.join(certs, "ca.crt"), *no_ticket, *extra],
                              input="", capture_output=True, text=True, timeout=20).stdout

    first = s_client(b.endpoint(0), "-sess_out", sess)
    assert "New, TLSv1.2" in first, first
    assert os.path.exists(sess)
    again = s_client(b.endpoint(1), "-sess_in", sess)
    assert "Reused" not in again, again
    # The same session on its own listener still resumes: only the check is new.
    assert "Reused" in s_client(b.endpoint(0), "-sess_in", sess)

    # A certificate the rogue CA signed, verified on the listener that trusts
    # that CA, is not taken on the one that trusts only the test CA.
    rogue = ["-cert", os.path.join(certs, "rogue.crt"), "-key", os.path.join(certs, "rogue.key")]
    first = s_client(b.endpoint(2), "-sess_out", sess, *rogue)
    assert "New, TLSv1.2" in first, first
    again = s_client(b.endpoint(1), "-sess_in", sess, *rogue)
    assert "Reused" not in again, again
    with pytest.raises(Exception):
        client(b.endpoint(1), certs, cert="rogue")


def test_tls_round_trip_with_mosquitto_clients(sec_broker, certs):
    b = sec_broker([{"tls": server_tls(certs)}])
    ep = b.endpoint(0)
    r = mosquitto("mosquitto_pub", ep, ["-t", "tls/retained", "-m", "over tls", "-r", "-q", "1"], certs=certs)
    assert r.returncode == 0, r.stderr
    r = mosquitto("mosquitto_sub", ep, ["-t", "tls/#", "-C", "1", "-W", "10", "-v"], certs=certs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "tls/retained over tls"


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_tls_round_trip_with_paho(sec_broker, certs, version):
    b = sec_broker([{"tls": server_tls(certs)}])
    sub = client(b.endpoint(0), certs, client_id="tls-sub", version=version)
    pub = client(b.endpoint(0), certs, client_id="tls-pub", version=version)
    sub.subscribe("a/+", qos=1)
    # Large enough to span several TLS records.
    big = bytes(range(256)) * 400
    round_trip(pub, sub, "a/big", big)
    round_trip(pub, sub, "a/small", b"hello", qos=0)
    sub.close()
    pub.close()


def test_mutual_tls_with_and_without_a_certificate(sec_broker, certs):
    b = sec_broker([{"tls": mutual_tls(certs)}])
    ep = b.endpoint(0)
    assert connack_code(ep, certs) is None                  # no certificate: handshake refused
    assert connack_code(ep, certs, cert="rogue") is None    # signed by another CA
    assert connack_code(ep, certs, cert="client") == 0
    r = mosquitto("mosquitto_pub", ep, ["-t", "m/t", "-m", "x"], certs=certs)
    assert r.returncode != 0
    r = mosquitto("mosquitto_pub", ep, ["-t", "m/t", "-m", "x"], certs=certs, cert="client")
    assert r.returncode == 0, r.stderr


def _handshake_with(port, *args):
    """openssl s_client output of a handshake forced to the given options."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       input="", capture_output=True, text=True, timeout=WAIT)
    return r.returncode, r.stdout + r.stderr


def test_tls_1_1_refused_and_min_version_1_3(sec_broker, certs):
    b = sec_broker([{"tls": server_tls(certs)}, {"tls": server_tls(certs, min_version="1.3")}])
    # SECLEVEL=0 so the refusal comes from the broker, not from the client's own policy.
    rc, out = _handshake_with(b.ports[0], "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0 and "Cipher is (NONE)" in out, out
    rc, out = _handshake_with(b.ports[0], "-tls1_2")
    assert rc == 0 and "Protocol  : TLSv1.2" in out, out
    rc, out = _handshake_with(b.ports[1], "-tls1_2")
    assert rc != 0 and "Cipher is (NONE)" in out, out
    rc, out = _handshake_with(b.ports[1], "-tls1_3")
    assert rc == 0 and "TLSv1.3" in out, out
    # ALPN "mqtt" is accepted.
    rc, out = _handshake_with(b.ports[0], "-alpn", "mqtt")
    assert rc == 0, out


def test_plain_client_on_tls_port_is_closed_quickly(sec_broker, certs):
    b = sec_broker([{"tls": server_tls(certs)}])
    ep = b.endpoint(0)
    sub = client(ep, certs, client_id="keeps-working")
    sub.subscribe("k/#", qos=1)
    connect_v311 = bytes([0x10, 16, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 4]) + b"abcd"
    for _ in range(5):
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", ep.port), timeout=WAIT) as s:
            s.sendall(connect_v311)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        assert time.monotonic() - start < 2.0
        assert not data.startswith(b"\x20")   # never a CONNACK in clear text
    round_trip(None, sub, "k/still", b"alive")
    # Logged once at info, not once per connection.
    log = b.log()
    assert log.count("TLS handshake with") == 1, log
    sub.close()


def test_identity_as_username(sec_broker, certs, workdir):
    acl = write(os.path.join(workdir, "acl"), "user sensor-1\ntopic readwrite sensors/sensor-1/#\n")
    b = sec_broker([{"tls": mutual_tls(certs, identity_as_username=True)}],
                   {"auth": {"allow_anonymous": False, "acl_file": acl}})
    ep = b.endpoint(0)
    # No user name, no password: the certificate's CN (sensor-1) is the identity.
    c = client(ep, certs, cert="client", client_id="dev")
    granted = c.subscribe("sensors/sensor-1/#", qos=1)
    assert granted[0][0].value == 1
    round_trip(None, c, "sensors/sensor-1/temp", b"21.5")
    # Another sensor's topics are not this identity's: subscription refused.
    granted = c.subscribe("sensors/sensor-2/#", qos=1)
    assert granted[0][0].value == 0x87
    c.close()


# -- authentication ------------------------------------------------------------

@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_password_file_from_mosquitto_passwd(sec_broker, workdir, version):
    pw = os.path.join(workdir, "passwd")
    mosquitto_passwd(pw, "alice", "s3cret", create=True)
    mosquitto_passwd(pw, "bob", "hunter2")
    b = sec_broker([{}], {"auth": {"allow_anonymous": False, "password_file": pw}})
    ep = b.endpoint(0)
    assert connack_code(ep, username="alice", password="s3cret", version=version) == 0
    assert connack_code(ep, username="bob", password="hunter2", version=version) == 0
    # Wrong password and unknown user look the same.
    assert connack_code(ep, username="alice", password="wrong", version=version) == RC_BAD_USER_OR_PASSWORD[version]
    assert connack_code(ep, username="carol", password="s3cret", version=version) == RC_BAD_USER_OR_PASSWORD[version]
    assert connack_code(ep, version=version) == RC_NOT_AUTHORIZED[version]
    r = mosquitto("mosquitto_pub", ep, ["-u", "alice", "-P", "wrong", "-t", "t", "-m", "x"])
    assert r.returncode != 0
    assert "s3cret" not in b.log() and "wrong" not in b.log()


def test_anonymous_defaults_follow_the_listener_address(sec_broker):
    # No [auth] table: the loopback listener lets anonymous clients in, the
    # one on every interface does not.
    b = sec_broker([{"address": "127.0.0.1"}, {"address": "0.0.0.0"}])
    assert connack_code(b.endpoint(0)) == 0
    assert connack_code(b.endpoint(1)) == RC_NOT_AUTHORIZED[V5]
    assert connack_code(b.endpoint(1), version=V311) == RC_NOT_AUTHORIZED[V311]
    assert "anonymous access is open" not in b.log()


def test_explicit_allow_anonymous_warns_on_open_listener(sec_broker):
    b = sec_broker([{"address": "0.0.0.0"}], {"auth": {"allow_anonymous": True}})
    assert connack_code(b.endpoint(0)) == 0
    assert "anonymous access is open on 0.0.0.0" in b.log()


# -- SIGHUP reload ---------------------------------------------------------------

def test_reload_passwords_keeps_clients(sec_broker, workdir, certs):
    pw = os.path.join(workdir, "passwd")
    mosquitto_passwd(pw, "alice", "old", create=True)
    b = sec_broker([{"tls": server_tls(certs)}], {"auth": {"allow_anonymous": False, "password_file": pw}})
    ep = b.endpoint(0)
    c = client(ep, certs, username="alice", password="old", client_id="stays")
    c.subscribe("r/#", qos=1)
    mosquitto_passwd(pw, "alice", "new")
    b.reload("reloaded password file")
    assert connack_code(ep, certs, username="alice", password="old") == 0x86
    assert connack_code(ep, certs, username="alice", password="new") == 0
    round_trip(None, c, "r/after-reload")
    # A broken file is reported with its line and the old one stays in force.
    with open(pw, "a") as f:
        f.write("no hash on this line\n")
    b.reload("keeping the previous one")
    assert f"{pw}:2" in b.log()
    assert connack_code(ep, certs, username="alice", password="new") == 0
    round_trip(None, c, "r/after-bad-reload")
    c.close()


def test_reload_certificates_keeps_clients(sec_broker, workdir, certs):
    # The broker's certificate files live in workdir, so the test can replace them.
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(os.path.join(certs, name), os.path.join(workdir, name))
    b = sec_broker([{"tls": server_tls(workdir)}])
    ep = b.endpoint(0)
    c = client(ep, certs, client_id="old-ctx")
    c.subscribe("c/#", qos=1)
    new_certs = make_certs(os.path.join(workdir, "new"))
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(os.path.join(new_certs, name), os.path.join(workdir, name))
    b.reload("reloaded TLS certificates")
    # New connections get the new certificate: the old CA no longer verifies it.
    assert connack_code(ep, certs) is None
    assert connack_code(ep, new_certs) == 0
    # The client connected before the reload still works on the old context.
    round_trip(None, c, "c/after-reload")
    # A key that does not load keeps the previous context.
    write(os.path.join(workdir, "server.key"), "not a key\n")
    b.reload("keeping the previous one")
    assert connack_code(ep, new_certs) == 0
    c.close()


# -- ACL -------------------------------------------------------------------------

ACL = """\
# anonymous clients
topic read public/#
topic write anon/out

user alice
topic readwrite plant/#
topic deny plant/secret/#
topic read feeds/#
topic write cmd/+/set
topic alice/all

user bob
topic read plant/#

user spy
topic readwrite #

pattern readwrite devices/%c/#
pattern read users/%u/inbox/#
"""


@pytest.fixture
def acl_broker(sec_broker, workdir):
    pw = os.path.join(workdir, "passwd")
    mosquitto_passwd(pw, "alice", "a-pw", create=True)
    mosquitto_passwd(pw, "bob", "b-pw")
    mosquitto_passwd(pw, "spy", "s-pw")
    acl = write(os.path.join(workdir, "acl"), ACL)
    # Loopback listener, no allow_anonymous: anonymous clients get the
    # rules before the first `user` line.
    b = sec_broker([{}], {"auth": {"password_file": pw, "acl_file": acl}})
    b.acl_path = acl
    return b


def _user(b, name, version=V5, client_id=None, **kw):
    return client(b.endpoint(0), username=name, password=name[0] + "-pw",
                  client_id=client_id or f"{name}-dev", version=version, **kw)


def _expect_only(c, topic, payload=b"marker"):
    """The next message is `topic`: everything published before it was dropped."""
    m = c.expect()
    assert (m.topic, m.payload) == (topic, payload), (m.topic, m.payload)


def _granted(result):
    codes = result[0]
    return [getattr(q, "value", q) for q in codes]


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_acl_publish_rules_of_every_kind(acl_broker, version):
    b = acl_broker
    spy = _user(b, "spy", version=version)
    spy.subscribe("#", qos=1)
    alice = _user(b, "alice", version=version)
    bob = _user(b, "bob", version=version)
    anon = client(b.endpoint(0), client_id="anon-1", version=version)
    # alice: readwrite, deny beats readwrite, read-only is not write, write
    # with +, no keyword = readwrite, pattern %c.
    for topic, allowed in [("plant/a", True), ("plant/secret/x", False), ("feeds/x", False),
                           ("cmd/7/set", True), ("alice/all", True), ("devices/alice-dev/t", True),
                           ("devices/bob-dev/t", False), ("users/alice/inbox/1", False)]:
        alice.publish(topic, b"denied", qos=1)
        alice.publish("plant/marker", b"marker", qos=1)
        if allowed:
            m = spy.expect()
            assert (m.topic, m.payload) == (topic, b"denied"), topic
        _expect_only(spy, "plant/marker")
    # bob may only read; anonymous clients may write anon/out only; QoS 0 alike.
    bob.publish("plant/b", b"denied", qos=1)
    bob.publish("devices/bob-dev/t", b"marker", qos=0)
    _expect_only(spy, "devices/bob-dev/t")
    anon.publish("public/x", b"denied", qos=0)
    anon.publish("anon/out", b"marker", qos=1)
    _expect_only(spy, "anon/out")
    for c in (spy, alice, bob, anon):
        c.close()


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_acl_subscribe_rules(acl_broker, version):
    b = acl_broker
    refused = 0x80 if version == V311 else 0x87
    alice = _user(b, "alice", version=version)
    bob = _user(b, "bob", version=version)
    anon = client(b.endpoint(0), client_id="anon-2", version=version)
    assert _granted(alice.subscribe("plant/secret/#", qos=1)) == [refused]
    assert _granted(alice.subscribe("cmd/+/set", qos=1)) == [refused]          # write only
    assert _granted(alice.subscribe("users/alice/inbox/#", qos=1)) == [1]      # pattern %u
    assert _granted(alice.subscribe("users/bob/inbox/#", qos=1)) == [refused]
    assert _granted(bob.subscribe("plant/#", qos=1)) == [1]
    assert _granted(anon.subscribe("public/#", qos=1)) == [1]
    assert _granted(anon.subscribe("plant/#", qos=1)) == [refused]
    alice.publish("plant/a", b"x", qos=1)
    m = bob.expect()
    assert (m.topic, m.payload) == ("plant/a", b"x")
    for c in (alice, bob, anon):
        c.close()


def test_acl_on_delivery_to_a_wildcard_subscriber(acl_broker):
    b = acl_broker
    alice = _user(b, "alice")
    assert _granted(alice.subscribe("#", qos=1)) == [1]
    spy = _user(b, "spy")
    # Published by a client that may write everywhere; alice reads only some.
    for topic, readable in [("plant/secret/x", False), ("users/bob/inbox/1", False), ("public/p", False),
                            ("cmd/1/set", False), ("users/alice/inbox/1", True), ("feeds/f", True),
                            ("devices/alice-dev/cfg", True), ("devices/other/cfg", False)]:
        spy.publish(topic, b"m", qos=1)
        spy.publish("plant/marker", b"marker", qos=1)
        if readable:
            m = alice.expect()
            assert m.topic == topic
        _expect_only(alice, "plant/marker")
    # Retained messages sent on SUBSCRIBE are filtered the same way.
    spy.publish("plant/secret/r", b"r", qos=1, retain=True)
    spy.publish("plant/r", b"r", qos=1, retain=True)
    late = _user(b, "alice", client_id="alice-late")
    late.subscribe("plant/#", qos=1)
    m = late.expect()
    assert m.topic == "plant/r"
    late.expect_none(0.5)
    for c in (alice, spy, late):
        c.close()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_acl_denied_publish_is_acknowledged_not_delivered(acl_broker, raw, version):
    from raw_mqtt import PUBACK, PUBREC, publish
    b = acl_broker
    spy = _user(b, "spy")
    spy.subscribe("#", qos=1)
    c = raw(b.endpoint(0))
    c.connect("anon-raw", version=version)
    c.send(publish("public/denied", b"x", qos=1, pid=1, version=version))
    ack = c.expect(PUBACK)
    assert ack.body[:2] == b"\x00\x01"
    if version == 5:
        assert ack.body[2] == 0x87
    c.send(publish("public/denied2", b"x", qos=2, pid=2, version=version))
    rec = c.expect(PUBREC)
    if version == 5:
        assert rec.body[2] == 0x87
    c.send(publish("anon/out", b"marker", qos=1, pid=3, version=version))
    c.expect(PUBACK)
    _expect_only(spy, "anon/out")
    spy.close()


def test_acl_on_wills(acl_broker):
    b = acl_broker
    spy = _user(b, "spy")
    spy.subscribe("#", qos=1)
    denied = client(b.endpoint(0), client_id="will-denied",
                    will={"topic": "public/will", "payload": b"denied", "qos": 1})
    allowed = client(b.endpoint(0), client_id="will-allowed",
                     will={"topic": "anon/out", "payload": b"marker", "qos": 1})
    denied.drop()
    time.sleep(0.3)
    allowed.drop()
    _expect_only(spy, "anon/out")
    spy.close()


def test_reload_acl_keeps_clients(acl_broker):
    b = acl_broker
    bob = _user(b, "bob")
    bob.subscribe("plant/#", qos=1)
    alice = _user(b, "alice")
    alice.publish("plant/1", b"before", qos=1)
    assert bob.expect().payload == b"before"
    # bob loses read access to plant/, alice gains write access to feeds/.
    write(b.acl_path, ACL.replace("user bob\ntopic read plant/#", "user bob\ntopic read feeds/#")
          .replace("topic read feeds/#\ntopic write", "topic readwrite feeds/#\ntopic write"))
    b.reload("reloaded acl file")
    alice.publish("plant/2", b"hidden", qos=1)
    alice.publish("feeds/1", b"marker", qos=1)
    # bob's old plant/# subscription no longer delivers; feeds/ is not subscribed.
    bob.expect_none(0.7)
    bob.subscribe("feeds/#", qos=1)
    alice.publish("feeds/2", b"marker", qos=1)
    _expect_only(bob, "feeds/2")
    # A broken ACL keeps the current rules.
    write(b.acl_path, ACL + "frobnicate plant/#\n")
    b.reload("keeping the previous one")
    assert f"{b.acl_path}:" in b.log()
    alice.publish("feeds/3", b"marker", qos=1)
    _expect_only(bob, "feeds/3")
    for c in (alice, bob):
        c.close()


# A peer's close_notify, even in the middle of a packet, is answered with
# the broker's (RFC 8446 6.1; wolfSSL sends it as it reads the peer's): a
# client that checks for truncation (Python's unwrap) sees a clean end.
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_a_close_notify_from_the_client_is_answered(sec_broker, certs, version):
    import ssl
    b = sec_broker([{"tls": server_tls(certs)}])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(certs, "ca.crt"))
    ctx.check_hostname = False
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    raw_sock = socket.create_connection(("127.0.0.1", b.ports[0]), timeout=WAIT)
    tls = ctx.wrap_socket(raw_sock)
    tls.sendall(raw_mqtt.connect("close-notify", version=4))
    assert tls.recv(4)[0] == 0x20   # CONNACK
    tls.sendall(raw_mqtt.publish("t", b"x" * 40, qos=1, pid=1)[:20])   # part of a packet
    tls.unwrap()   # raises if the broker closes without its close_notify
    raw_sock.close()
