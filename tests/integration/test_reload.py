# SIGHUP reloads the configuration file (docs/configuration.md, "Reload"):
# listeners added and removed, [sys], [metrics] and bridges follow the file
# while the clients on unchanged listeners keep their connections and their
# messages; a file with errors changes nothing; keys that need a restart
# keep their running value. hato only (Mosquitto's reload covers less).

import os
import re
import signal
import socket
import urllib.request

import pytest

from conftest import TARGET, _free_port
from bridge_util import bridge_toml, wait_for, wait_upstream_subscriptions
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho_client import V311, V5, Client

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's configuration reload")


class Endpoint:
    def __init__(self, port):
        self.host = "127.0.0.1"
        self.port = port


def reload(b, extra="", expect="reload done"):
    """Writes the broker's configuration (its settings plus `extra` TOML),
    sends SIGHUP and waits for the new `expect` log line."""
    with open(os.path.join(b.workdir, "broker.conf"), "w") as f:
        f.write(b._hato_config() + "\n" + extra)
    before = b.log().count(expect)
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b.log().count(expect) > before, f"{expect!r} in the log:\n{b.log()[-2000:]}")


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def listener(port):
    return f'[[listener]]\naddress = "127.0.0.1"\nport = {port}\n\n'


def drain(c, n):
    return [m.payload for m in c.expect_list(n)]


def test_listeners_added_and_removed_under_traffic(broker_factory):
    b = broker_factory()
    sub = Client(b, client_id="sub", clean=False)
    sub.subscribe("r/#", qos=1)
    pub = Client(b, client_id="pub")
    sent = []

    def send(n):
        for _ in range(n):
            payload = str(len(sent)).encode()
            pub.publish("r/x", payload, qos=1, wait=False)
            sent.append(payload)

    send(50)
    port2 = _free_port()
    reload(b, listener(port2))
    send(50)
    assert f"listening on 127.0.0.1:{port2}" in b.log()
    c2 = Client(Endpoint(port2), client_id="on-new")
    c2.publish("r/x", b"from-new", qos=1)
    sent.append(b"from-new")
    send(50)

    # Removing it closes its connections and its port; the first listener's stay.
    reload(b)
    send(50)
    c2.wait_disconnect()
    wait_for(lambda: refused(port2), f"port {port2} refused")
    got = drain(sub, len(sent))
    # Every message once, each publisher's in its order.
    assert sorted(got) == sorted(sent)
    assert [m for m in got if m != b"from-new"] == [m for m in sent if m != b"from-new"]
    sub.expect_none(0.3)
    for c in (sub, pub, c2):
        c.close()


def test_sys_interval_and_metrics_follow_the_file(broker_factory):
    b = broker_factory({"sys": {"interval": 0}})
    mon = Client(b, client_id="mon")
    mon.subscribe("$SYS/broker/uptime", 0)
    mon.expect_none(1.2)   # $SYS off
    b.settings["sys"] = {"interval": 1}
    reload(b)
    assert mon.expect().topic == "$SYS/broker/uptime"

    port = _free_port()
    b.settings["metrics"] = {"address": "127.0.0.1", "port": port}
    reload(b)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        body = resp.read().decode()
    # Counted from the broker's start (over 1.2 s ago), not from this reload.
    uptime = float(re.search(r"^hato_uptime_seconds (\S+)$", body, re.M).group(1))
    assert uptime >= 1.0, uptime
    del b.settings["metrics"]
    reload(b)
    wait_for(lambda: refused(port), "the metrics port closed")
    # The MQTT client was never disconnected.
    b.settings["sys"] = {"interval": 0}
    reload(b)
    while not mon.messages.empty():
        mon.messages.get()
    mon.expect_none(1.5)
    mon.publish("still/here", b"x", qos=1)
    mon.close()
    # Off means off: a new subscriber reads no stale figure retained from before.
    late = Client(b, client_id="late")
    late.subscribe("$SYS/#", 0)
    late.expect_none(0.5)
    late.close()


def bridge(port, remote_prefix=""):
    return bridge_toml(port, "gw-reload", "try_private = false", remote_prefix, in_rule=False)


def test_bridge_added_removed_and_changed(broker_factory):
    up = broker_factory()
    gw = broker_factory()
    far = Client(up, client_id="far")
    far.subscribe("#", qos=1)
    local = Client(gw, client_id="local")
    reload(gw, bridge(up.port))
    wait_for(lambda: "bridge site: connected" in gw.log(), "the bridge to connect")
    local.publish("plant/1", b"one", qos=1)
    assert far.expect().payload == b"one"

    reload(gw)
    assert "bridge site: removed by the reload" in gw.log()
    # Removed: nothing more is queued for it (its backlog is kept: see
    # test_bridge.py, "...removed by reload keeps its backlog...").
    local.publish("plant/2", b"while removed", qos=1)
    far.expect_none(0.7)
    # Back again, on the same local session: what is published now leaves.
    reload(gw, bridge(up.port))
    wait_for(lambda: gw.log().count("bridge site: connected") >= 2, "the bridge to connect again")
    local.publish("plant/2", b"queued", qos=1)
    assert far.expect().payload == b"queued"
    # Changed: it reconnects on the same local session; what is published
    # meanwhile waits in its queue and leaves under the new rule.
    reload(gw, bridge(up.port, remote_prefix="site/"))
    assert "bridge site: changed by the reload, reconnecting" in gw.log()
    local.publish("plant/3", b"renamed", qos=1)
    m = far.expect()
    # At least once: the reconnect may resend "queued" if its PUBACK from
    # the upstream was still on the way when the bridge was changed.
    while m.payload == b"queued":
        m = far.expect()
    assert (m.topic, m.payload) == ("site/plant/3", b"renamed")
    for c in (far, local):
        c.close()


def test_a_removed_out_rule_stops_queueing_for_the_bridge(broker_factory):
    # The bridge's local session is persistent: a rule removed from the
    # file must also leave the session, or its topic keeps filling the
    # store-and-forward queue during every outage.
    up = broker_factory()
    gw = broker_factory()
    far = Client(up, client_id="far")
    far.subscribe("#", qos=1)
    local = Client(gw, client_id="local")
    old_rule = '\n[[bridge.topic]]\npattern = "old/#"\ndirection = "out"\nqos = 1\n'
    reload(gw, bridge(up.port) + old_rule)
    wait_for(lambda: "bridge site: connected" in gw.log(), "the bridge to connect")
    local.publish("old/1", b"before", qos=1)
    assert far.expect().payload == b"before"
    reload(gw, bridge(up.port), expect="bridge site: connected")
    assert "1 local subscription(s) no longer in the configuration removed" in gw.log()
    local.publish("old/2", b"after", qos=1)
    local.publish("plant/1", b"kept", qos=1)
    m = far.expect()
    assert (m.topic, m.payload) == ("plant/1", b"kept")
    far.expect_none(0.5)
    for c in (far, local):
        c.close()


def test_a_removed_in_rule_is_unsubscribed_upstream(broker_factory):
    # The upstream keeps the bridge's session (and its subscriptions) across
    # reconnects: an in rule removed from the file must be unsubscribed
    # there, or its traffic keeps crossing the WAN to be dropped on arrival.
    up = broker_factory({"sys": {"interval": 1}})
    gw = broker_factory()
    in_cmd = '\n[[bridge.topic]]\npattern = "cmd/#"\ndirection = "in"\nqos = 1\nlocal_prefix = "remote/"\n'
    in_old = '\n[[bridge.topic]]\npattern = "old/#"\ndirection = "in"\nqos = 1\n'
    reload(gw, bridge(up.port) + in_cmd + in_old)
    wait_for(lambda: "bridge site: connected" in gw.log(), "the bridge to connect")
    wait_upstream_subscriptions(up, 3)   # cmd/#, old/# and the watcher's
    reload(gw, bridge(up.port) + in_cmd, expect="bridge site: connected")
    wait_upstream_subscriptions(up, 2)
    assert "upstream subscription 'old/#' no longer in the configuration: unsubscribing" in gw.log()
    # The rule left is still served.
    far = Client(up, client_id="far")
    local = Client(gw, client_id="local")
    local.subscribe("remote/#", qos=1)
    far.publish("cmd/1", b"still", qos=1)
    assert local.expect().payload == b"still"
    for c in (far, local):
        c.close()


def test_broken_configuration_keeps_the_running_one(broker_factory):
    b = broker_factory()
    c = Client(b, client_id="stays")
    c.subscribe("k/#", qos=1)
    port2 = _free_port()
    reload(b, listener(port2) + '[limits]\nmax_packet_size = "big"\n', expect="reload refused")
    assert "broker.conf:" in b.log() and "max_packet_size" in b.log()
    assert refused(port2)
    c.publish("k/1", b"after", qos=1)
    assert c.expect().payload == b"after"

    # A key that needs a restart is named and keeps its running value.
    b.settings["storage"] = {"dir": os.path.join(b.workdir, "elsewhere")}
    reload(b, listener(port2))
    assert "[storage] dir changed, which needs a restart" in b.log()
    assert not os.path.exists(os.path.join(b.workdir, "elsewhere"))
    c2 = Client(Endpoint(port2), client_id="new-port")
    c.publish("k/2", b"still", qos=1)
    assert c.expect().payload == b"still"
    for x in (c, c2):
        x.close()


def test_limits_and_sparkplug_follow_the_file(broker_factory):
    b = broker_factory()
    c = Client(b, client_id="big")
    c.publish("t/1", b"x" * 5000, qos=1)   # under the default max_packet_size
    late = Client(b, client_id="late")
    late.subscribe("$sparkplug/certificates/#", 1)
    c.publish("spBv1.0/g/NBIRTH/n1", b"birth-1", qos=0)
    late.expect_none(0.5)   # not Sparkplug aware yet

    b.settings["sparkplug"] = {"aware": True}
    b.settings["limits"] = {"max_packet_size": 1000}
    reload(b)
    c.publish("spBv1.0/g/NBIRTH/n1", b"birth-2", qos=0)
    m = late.expect()
    assert (m.topic, m.payload) == ("$sparkplug/certificates/spBv1.0/g/NBIRTH/n1", b"birth-2")
    # The new limit applies to connected clients: a larger packet closes the connection.
    c.paho.publish("t/2", b"x" * 5000, qos=1)
    c.wait_disconnect()
    late.publish("t/3", b"small", qos=1)
    late.close()


def test_a_removed_bridge_warns_its_upstream_subscriptions_remain(broker_factory):
    # Nothing connects for a bridge gone from the file: its persistent
    # upstream session keeps the in rules, and the operator is told how many.
    up = broker_factory()
    gw = broker_factory()
    in_cmd = '\n[[bridge.topic]]\npattern = "cmd/#"\ndirection = "in"\nqos = 1\n'
    reload(gw, bridge(up.port) + in_cmd)
    # Removed only once the bridge has remembered what the upstream accepted.
    watch = Client(gw, client_id="filters-watch")
    watch.subscribe("$bridge/site/upstream_filters", qos=1)
    assert watch.expect().payload == b"cmd/#\n"
    watch.close()
    reload(gw, "", expect="bridge site is not configured")
    assert "1 filter(s) of its in rules may remain subscribed" in gw.log()


def test_bridge_sys_topics_go_on_after_sys_is_reloaded(broker_factory):
    # The $SYS publisher is rebuilt when [sys] changes: the bridges' topics
    # must come with it, or monitoring keeps showing a dead bridge as up.
    up = broker_factory()
    gw = broker_factory({"sys": {"interval": 1}})
    reload(gw, bridge(up.port))
    wait_for(lambda: "bridge site: connected" in gw.log(), "the bridge to connect")
    gw.settings["sys"] = {"interval": 2}
    reload(gw, bridge(up.port))
    mon = Client(gw, client_id="mon")
    mon.subscribe("$SYS/broker/hato/bridge/site/state", 0)
    m = mon.expect(timeout=6)
    while m.payload != b"1":   # the retained copy may predate the connection
        m = mon.expect(timeout=6)
    up.stop()
    m = mon.expect(timeout=6)
    while m.payload == b"1":   # a publication before the upstream went
        m = mon.expect(timeout=6)
    assert m.payload == b"0"
    mon.close()


@pytest.mark.parametrize("version", [V311, V5])
def test_bridge_ids_and_topics_are_the_bridges_even_before_one_is_configured(broker_factory, version):
    # A client that took "$bridge/site" (or wrote its filters) before a bridge
    # of that name is added would hand the bridge its session and filters.
    gw = broker_factory()
    c = Client(gw, client_id="$bridge/site", version=version, auto_connect=False)
    with pytest.raises(AssertionError, match="connection refused"):
        c.connect()
    assert c.connack[1] == (0x87 if version == V5 else 5)
    other = Client(gw, client_id="other", version=version)
    other.publish("$bridge/site/upstream_filters", b"cmd/#\n", qos=1, retain=True)
    watch = Client(gw, client_id="watch", version=version)
    watch.subscribe("$bridge/#", qos=1)
    watch.expect_none(0.5)
    for x in (other, watch):
        x.close()


def test_a_tls_listener_added_after_one_that_failed_to_open_is_tls(broker_factory, tmp_path):
    # A listener a reload added and that could not bind kept its settings in
    # the table, and its files were loaded again at every reload. With its
    # certificate gone, the next reload's certificates failed to load, and a
    # TLS listener added by that reload opened without TLS: plain MQTT,
    # passwords in the clear. (Such a reload is now refused whole: nothing
    # of it may stay behind either.)
    from security_util import connack_code, make_certs, tls_kwargs
    import shutil
    certs = make_certs(str(tmp_path / "certs"))
    old = tmp_path / "old"
    os.makedirs(old)
    for f in ("server.crt", "server.key"):
        shutil.copy(os.path.join(certs, f), old / f)

    def tls_listener(port, directory):
        return (listener(port) + f'tls = {{ cert = "{directory}/server.crt", key = "{directory}/server.key" }}\n\n')

    b = broker_factory()
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    try:
        reload(b, tls_listener(taken, old), expect="reload refused")
        assert f"127.0.0.1:{taken}" in b.log()   # the bind failure, logged
    finally:
        busy.close()
    shutil.rmtree(old)
    port = _free_port()
    reload(b, tls_listener(port, certs))
    assert "reload of TLS certificates failed" not in b.log().split("reload requested")[-1], b.log()[-2000:]
    wait_for(lambda: not refused(port), f"port {port} open")
    # Plain MQTT gets no CONNACK; TLS with the test CA does.
    assert connack_code(Endpoint(port)) is None
    assert connack_code(Endpoint(port), certs=certs) == 0


def test_a_listener_moved_to_another_address_on_its_port_opens_there(broker_factory):
    # The old socket (io_uring: held open by its pending accept until the
    # cancel completes) still listened when the new one was bound: "Address
    # already in use", and the broker was left without that listener.
    b = broker_factory()
    port = _free_port()
    reload(b, f'[[listener]]\naddress = "0.0.0.0"\nport = {port}\nallow_anonymous = true\n\n')
    Client(Endpoint(port), client_id="before").close()
    reload(b, listener(port))
    assert f"listening on 127.0.0.1:{port}" in b.log(), b.log()[-2000:]
    Client(Endpoint(port), client_id="after").close()


def test_a_listener_removed_by_reload_publishes_its_clients_wills_under_its_acl(broker_factory, tmp_path):
    # The removed listener's ACL allows what the global one does not: its
    # client's will (with a delay) still goes out, judged by that ACL.
    glob = tmp_path / "acl-global"
    glob.write_text("topic readwrite lan/#\ntopic read plc/#\n")
    plc = tmp_path / "acl-plc"
    plc.write_text("topic readwrite plc/#\n")
    b = broker_factory({"auth": {"acl_file": str(glob), "allow_anonymous": True}})
    port2 = _free_port()
    reload(b, listener(port2) + f'acl_file = "{plc}"\n')
    watch = Client(b, client_id="watch", version=V5)
    watch.subscribe("plc/#", qos=1)
    props = Properties(PacketTypes.WILLMESSAGE)
    props.WillDelayInterval = 5
    dev = Client(Endpoint(port2), client_id="dev", version=V5, session_expiry=60,
                 will={"topic": "plc/dead", "payload": b"gone", "qos": 1, "properties": props})
    dev.publish("plc/live", b"x", qos=1)
    assert watch.expect().topic == "plc/live"
    reload(b)
    dev.wait_disconnect()
    m = watch.expect()
    assert (m.topic, m.payload) == ("plc/dead", b"gone")
    for c in (watch, dev):
        c.close()


def test_a_listener_moved_to_a_busy_port_refuses_the_reload_and_keeps_the_old_one(broker_factory):
    # The old listener was closed before the new one failed to bind: the
    # gateway was left with no listener until the next reload.
    b = broker_factory()
    port = _free_port()
    reload(b, listener(port))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy = squatter.getsockname()[1]
        reload(b, listener(busy), expect="reload refused")
        assert f"new listener 127.0.0.1:{busy} cannot open" in b.log(), b.log()[-2000:]
        Client(Endpoint(port), client_id="still-there").close()
