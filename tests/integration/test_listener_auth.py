# Per-listener settings: [[listener]] allow_anonymous (one listener open to
# anonymous clients, the PLC side, another closed, the LAN side, whatever
# [auth] allow_anonymous says for the rest), max_connections and
# password_file.

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import _find_hato, _toml_value
from paho_client import V311, V5
from security_util import SecBroker, client, connack_code, write

NOT_AUTHORIZED = {V311: 5, V5: 0x87}


PER_LISTENER = ("allow_anonymous", "max_connections", "password_file", "acl_file")


class ListenerAuthBroker(SecBroker):
    """SecBroker whose listener dicts may also carry per-listener settings."""

    def _hato_config(self):
        text = super()._hato_config()
        blocks = text.split("[[listener]]\n")
        for i, l in enumerate(self.listeners):
            extra = "".join(f"{k} = {_toml_value(l[k])}\n" for k in PER_LISTENER if k in l)
            blocks[i + 1] = blocks[i + 1].replace("port = 0\n", "port = 0\n" + extra, 1)
        return "[[listener]]\n".join(blocks)


@pytest.fixture
def start_broker(backend, request):
    if not _find_hato():
        pytest.skip("hato binary not found (set HATO_BIN)")
    started = []

    def start(listeners, settings):
        w = tempfile.mkdtemp(prefix="hato-it-")
        s = {"storage": {"enabled": False}}
        s.update(settings)
        b = ListenerAuthBroker(backend, w, s, listeners)
        started.append((b, w))
        return b.start()

    yield start
    rep = getattr(request.node, "rep_call", None)
    for b, w in started:
        try:
            assert b.stop() == 0
        finally:
            b.kill()
            if rep is not None and rep.failed:
                print(f"----- broker log ({b.log_path}) -----\n{b.log()[-6000:]}")
            shutil.rmtree(w, ignore_errors=True)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_listener_opens_anonymous_access_that_auth_closes(start_broker, version):
    b = start_broker([{"allow_anonymous": True}, {}], {"auth": {"allow_anonymous": False}})
    assert connack_code(b.endpoint(0), client_id="plc", version=version) == 0
    assert connack_code(b.endpoint(1), client_id="lan", version=version) == NOT_AUTHORIZED[version]
    # A user name alone (no password file) is still anonymous.
    assert connack_code(b.endpoint(1), username="someone", client_id="lan2", version=version) == \
        NOT_AUTHORIZED[version]


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_listener_closes_anonymous_access_that_auth_opens(start_broker, version):
    b = start_broker([{}, {"allow_anonymous": False}], {"auth": {"allow_anonymous": True}})
    assert connack_code(b.endpoint(0), client_id="open", version=version) == 0
    assert connack_code(b.endpoint(1), client_id="closed", version=version) == NOT_AUTHORIZED[version]


def test_listener_setting_overrides_the_loopback_default(start_broker):
    # No [auth] allow_anonymous: loopback listeners would be open.
    b = start_broker([{"allow_anonymous": False}, {}], {})
    assert connack_code(b.endpoint(0), client_id="a") == NOT_AUTHORIZED[V5]
    assert connack_code(b.endpoint(1), client_id="b") == 0


def test_listener_max_connections(start_broker):
    b = start_broker([{"max_connections": 2}, {}], {"limits": {"max_connections": 10}})
    held = [client(b.endpoint(0), client_id=f"held-{i}") for i in range(2)]
    try:
        # The third is closed at accept: no CONNACK.
        assert connack_code(b.endpoint(0), client_id="third") is None
        assert "the listener's max_connections reached" in b.log()
        # The other listener has no limit of its own.
        others = [client(b.endpoint(1), client_id=f"other-{i}") for i in range(3)]
        for c in others:
            c.disconnect()
        # A closed connection frees its place.
        held.pop().disconnect()
        deadline = time.monotonic() + 5
        while connack_code(b.endpoint(0), client_id="again") != 0:
            assert time.monotonic() < deadline, "no place freed on listener 0"
            time.sleep(0.05)
    finally:
        for c in held:
            c.disconnect()


def passwd_line(user, password, iterations=1000):
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"{user}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"


BAD_CREDENTIALS = {V311: 4, V5: 0x86}


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_listener_password_file(start_broker, version):
    w = tempfile.mkdtemp(prefix="hato-pw-")
    try:
        lan = write(os.path.join(w, "passwd-lan"), passwd_line("alice", "lan-pw"))
        glob = write(os.path.join(w, "passwd"), passwd_line("alice", "global-pw"))
        b = start_broker([{"allow_anonymous": True}, {"password_file": lan}],
                         {"auth": {"allow_anonymous": False, "password_file": glob}})
        plc, lan_ep = b.endpoint(0), b.endpoint(1)
        assert connack_code(plc, client_id="plc", version=version) == 0
        assert connack_code(plc, username="alice", password="global-pw", client_id="a0", version=version) == 0
        assert connack_code(plc, username="alice", password="lan-pw", client_id="a1",
                            version=version) == BAD_CREDENTIALS[version]
        assert connack_code(lan_ep, username="alice", password="lan-pw", client_id="a2", version=version) == 0
        assert connack_code(lan_ep, username="alice", password="global-pw", client_id="a3",
                            version=version) == BAD_CREDENTIALS[version]
        assert connack_code(lan_ep, client_id="anon", version=version) == NOT_AUTHORIZED[version]
        # SIGHUP reads the listener's file again.
        write(lan, passwd_line("alice", "new-lan-pw"))
        b.reload("reloaded the listeners' password files")
        assert connack_code(lan_ep, username="alice", password="new-lan-pw", client_id="a4", version=version) == 0
        assert connack_code(lan_ep, username="alice", password="lan-pw", client_id="a5",
                            version=version) == BAD_CREDENTIALS[version]
    finally:
        shutil.rmtree(w, ignore_errors=True)


def test_listener_password_file_error_is_reported_by_check_config(backend):
    w = tempfile.mkdtemp(prefix="hato-pw-")
    try:
        conf = write(os.path.join(w, "hato.toml"),
                     '[[listener]]\naddress = "127.0.0.1"\npassword_file = "/nonexistent/passwd-missing"\n')
        r = subprocess.run([_find_hato(), "--check-config", "-c", conf], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "/nonexistent/passwd-missing" in r.stdout + r.stderr
    finally:
        shutil.rmtree(w, ignore_errors=True)


def test_listener_acl_file(start_broker):
    w = tempfile.mkdtemp(prefix="hato-acl-")
    try:
        acl = write(os.path.join(w, "acl-plc"), "topic readwrite plc/#\n")
        b = start_broker([{}, {"acl_file": acl}], {})
        lan = client(b.endpoint(0), client_id="lan-watch", version=V311)   # no ACL on listener 0
        lan.subscribe("plc/#", 1)
        lan.subscribe("lan/#", 1)
        plc = client(b.endpoint(1), client_id="plc-dev", version=V311)
        assert plc.subscribe("plc/#", 1) == ((1,),)
        assert plc.subscribe("lan/#", 1) == ((128,),)   # refused by listener 1's ACL
        plc.publish("lan/1", b"denied", 1)   # v3: acknowledged, dropped
        plc.publish("plc/1", b"allowed", 1)
        m = lan.expect()
        assert (m.topic, m.payload) == ("plc/1", b"allowed")
        assert plc.expect().payload == b"allowed"
        lan.expect_none(0.3)
        # SIGHUP reads the listener's ACL again.
        write(acl, "topic readwrite lan/#\n")
        b.reload("reloaded the listeners' acl files")
        plc.publish("lan/2", b"now allowed", 1)
        m = lan.expect()
        assert (m.topic, m.payload) == ("lan/2", b"now allowed")
        for c in (lan, plc):
            c.disconnect()
    finally:
        shutil.rmtree(w, ignore_errors=True)
