# Bridges over TLS (server verification by default, tls.insecure, mutual TLS,
# SNI / server_name), queue_qos0, the connection state on the upstream (the
# bridge's will) and Mosquitto's bridge bit against a hato upstream
# (docs/bridge.md). Upstreams are hato (a TLS listener on a fixed free port)
# and Debian's mosquitto.

import os
import subprocess
import time

import pytest

from conftest import TARGET, Broker, _can_connect, _free_port
from raw_mqtt import PUBACK, PUBLISH, RawClient, parse_publish, publish, subscribe
from security_util import make_certs
from bridge_util import Gateway, Upstream, pub_qos1, receive, sub, upstream_goes_away, wait_for
from bridge_util import pair  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's [[bridge]] configuration")

MOSQUITTO = "/usr/sbin/mosquitto"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


class TlsUpstream(Upstream):
    """A hato with its plain listener on a free port (for the test's clients)
    and a TLS listener on `tls_port` (for the bridge)."""

    def __init__(self, backend, workdir, tls_port, tls):
        super().__init__(backend, workdir, 0)
        self.tls_port = tls_port
        self.tls = tls

    def _hato_config(self):
        kv = ", ".join(f"{k} = {_v(v)}" for k, v in self.tls.items())
        extra = f'[[listener]]\naddress = "127.0.0.1"\nport = {self.tls_port}\ntls = {{ {kv} }}\n\n'
        base = super()._hato_config()
        marker = '[[listener]]\naddress = "127.0.0.1"\nport = 0\n'
        return base.replace(marker, marker + "\n" + extra, 1)


def _v(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return f'"{v}"'


def server_tls(certs, **extra):
    t = {"cert": os.path.join(certs, "server.crt"), "key": os.path.join(certs, "server.key")}
    t.update(extra)
    return t


def bridge_tls(**kv):
    return "try_private = false\ntls = { " + ", ".join(f"{k} = {_v(v)}" for k, v in kv.items()) + " }"


@pytest.fixture
def tls_pair(pair, certs):   # noqa: F811
    """make(upstream_tls, gateway_tls): a TlsUpstream and a gateway whose bridge has `gateway_tls`."""
    return lambda upstream_tls, gateway_tls: pair(extra=gateway_tls, upstream=TlsUpstream, tls=upstream_tls)


def carries(up, gw):
    s = sub(up, "up-sub", "site/gw/#")
    pub_qos1(gw, "plant/t", [b"a", b"b"])
    assert [p for _, p in receive(s, 2, 10)] == [b"a", b"b"]


@pytest.mark.parametrize("server_name", [None, "localhost"])
def test_bridge_tls_verifies_the_upstream(tls_pair, certs, server_name):
    # Without server_name the address (an IP) is checked against the
    # certificate's IP names; with it, the name goes out as SNI and is checked.
    kv = {"ca": os.path.join(certs, "ca.crt")}
    if server_name:
        kv["server_name"] = server_name
    up, gw = tls_pair(server_tls(certs), bridge_tls(**kv))
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected over TLS")
    assert "starting TLS and MQTT session" in gw.log()
    carries(up, gw)


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name"])
def test_bridge_tls_refuses_an_unverifiable_upstream(tls_pair, certs, case):
    kv = {"ca": os.path.join(certs, "rogue-ca.crt" if case == "wrong_ca" else "ca.crt")}
    if case == "wrong_name":
        kv["server_name"] = "broker.elsewhere.example"
    up, gw = tls_pair(server_tls(certs), bridge_tls(**kv))
    up.start()
    gw.start()
    wait_for(lambda: len([l for l in gw.log().splitlines() if "disconnected (TLS:" in l]) >= 2,
             what="refused handshakes, retried")
    assert gw.connected_count() == 0


def test_bridge_tls_insecure_accepts_any_upstream(tls_pair, certs):
    up, gw = tls_pair(server_tls(certs), bridge_tls(ca=os.path.join(certs, "rogue-ca.crt"), insecure=True))
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected without verification")
    assert "tls.insecure = true" in gw.log()
    carries(up, gw)


def test_bridge_mutual_tls(tls_pair, certs):
    up_tls = server_tls(certs, ca=os.path.join(certs, "ca.crt"), require_client_cert=True)
    ca = os.path.join(certs, "ca.crt")
    up, gw = tls_pair(up_tls, bridge_tls(ca=ca, cert=os.path.join(certs, "client.crt"),
                                         key=os.path.join(certs, "client.key")))
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected with its certificate")
    carries(up, gw)
    gw.stop()
    # Without a certificate the upstream refuses the handshake.
    gw.bridge = gw.bridge.replace(bridge_tls(ca=ca, cert=os.path.join(certs, "client.crt"),
                                             key=os.path.join(certs, "client.key")), bridge_tls(ca=ca))
    gw.start()
    wait_for(lambda: "disconnected (" in gw.log(), what="a refused attempt")
    time.sleep(0.5)
    assert gw.connected_count() == 0


@pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="mosquitto not installed")
def test_bridge_mutual_tls_to_mosquitto(backend, tmp_path, certs):
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    plain = _free_port()
    conf.write_text(f"per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\n"
                    f"listener {plain} 127.0.0.1\n"
                    f"listener {port} 127.0.0.1\ncafile {certs}/ca.crt\ncertfile {certs}/server.crt\n"
                    f"keyfile {certs}/server.key\nrequire_certificate true\n")
    mosq = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.makedirs(tmp_path / "gw")
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv311",
                 "try_private = true\n" + bridge_tls(ca=f"{certs}/ca.crt", cert=f"{certs}/client.crt",
                                                     key=f"{certs}/client.key",
                                                     server_name="localhost").replace("try_private = false\n", ""))
    try:
        up = Broker(backend, str(tmp_path), {})
        up.port = plain
        wait_for(lambda: _can_connect("127.0.0.1", plain) and _can_connect("127.0.0.1", port),
                 what="mosquitto listening")
        gw.start()
        wait_for(lambda: gw.connected_count() >= 1, what="bridge connected to mosquitto over mutual TLS")
        carries(up, gw)
    finally:
        gw.stop()
        mosq.terminate()
        mosq.wait(10)


def test_check_config_reports_bridge_tls_files(tmp_path):
    from conftest import _find_hato
    conf = tmp_path / "c.toml"
    conf.write_text('[[bridge]]\nname = "site"\naddress = "127.0.0.1"\n'
                    f'tls = {{ ca = "{tmp_path}/missing-ca.pem" }}\n\n[[bridge.topic]]\npattern = "plant/#"\n')
    r = subprocess.run([_find_hato(), "--check-config", "--config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "bridge site: tls: cannot load CA file" in r.stderr and "missing-ca.pem" in r.stderr


def test_bridge_queue_qos0_across_outage_and_kill(pair):
    up, gw = pair(extra="try_private = false\nqueue_qos0 = true")
    upstream_goes_away(up, gw)
    n = 30
    payloads = [f"z{i:03d}".encode() for i in range(n)]
    c = RawClient(gw)
    c.connect("qos0-pub")
    for p in payloads:
        c.send(publish("plant/q0", p, 0))
    c.send(publish("office/mark", b"", 1, pid=1))   # answered after the QoS 0 ones were taken
    c.expect(PUBACK)
    c.close()
    time.sleep(1.0)
    gw.kill()
    gw.start()
    up.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge reconnected after restart")
    s = RawClient(up)
    s.connect("up-sub", clean=False)
    assert [p for _, p in receive(s, n, 15)] == payloads


def test_bridge_state_on_the_upstream_through_its_will(pair):
    up, gw = pair(extra="try_private = false")
    up.start()
    topic = "$SYS/broker/connection/gw-test/state"
    watcher = sub(up, "watch", topic)
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    assert receive(watcher, 1, 10) == [(topic, b"1")]
    gw.kill()   # the upstream publishes the will
    assert receive(watcher, 1, 10) == [(topic, b"0")]
    assert receive(sub(up, "late", topic), 1, 10) == [(topic, b"0")]   # retained


def test_hato_upstream_takes_the_bridge_bit(pair):
    # try_private = true against hato: accepted, and the bridge's own
    # messages on a "both" rule are not echoed back to it (v3.1.1 has no
    # No Local; the bridge bit asks for it).
    up, gw = pair(extra="try_private = true")
    gw.bridge += '\n[[bridge.topic]]\npattern = "loop/#"\ndirection = "both"\nqos = 1\n'
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge with the bridge bit connected to hato")
    on_up = sub(up, "s-up", "loop/#")
    on_gw = sub(gw, "s-gw", "loop/#")
    pub_qos1(gw, "loop/x", [b"once"])
    assert receive(on_up, 1, 10) == [("loop/x", b"once")]
    assert receive(on_gw, 1, 10) == [("loop/x", b"once")]
    for c in (on_up, on_gw):
        with pytest.raises(TimeoutError):
            while True:
                p = c.read(1.0)
                assert p.type != PUBLISH, parse_publish(p)
