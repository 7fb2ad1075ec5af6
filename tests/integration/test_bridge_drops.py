# Messages the other side of a bridge does not take. One larger than it
# takes (docs/bridge.md, "Messages the other side cannot take") is
# dropped and counted instead of closing the connection on every resend:
# what is queued behind it still crosses, and the bridge stays connected.
# One a v5 upstream refuses (here: its ACL) ends there and is counted.
import os
import subprocess
import time

import pytest

from conftest import TARGET, _find_hato
from raw_mqtt import PUBACK, PUBCOMP, PUBREC, RawClient, publish, pubrel
from bridge_util import pub_qos1, receive, sub, wait_for
from bridge_util import pair  # noqa: F401  (fixture)
from metrics_util import find_metrics_port, metric, metrics_settings
from security_util import write

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's [[bridge]] configuration")

LIMIT = 2048
BIG = b"x" * 4096


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_a_message_too_large_for_the_upstream_does_not_block_the_queue(pair, protocol):
    # v5: the upstream's CONNACK says its limit; v3.1.1 cannot, so the
    # bridge is told.
    extra = "try_private = false" + ("" if protocol == "mqttv5" else f"\nmax_packet_size = {LIMIT}")
    up, gw = pair(protocol, extra, gw_settings={"metrics": metrics_settings()},
                  settings={"limits": {"max_packet_size": LIMIT}})
    up.start()
    gw.start()
    find_metrics_port(gw)
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    upstream_sub = sub(up, "up-sub", "site/gw/#")
    pub_qos1(gw, "plant/camera", [BIG])        # acknowledged locally, as any message
    pub_qos1(gw, "plant/line1/temp", [b"21.5", b"21.7"])
    assert receive(upstream_sub, 2) == [("site/gw/plant/line1/temp", b"21.5"),
                                         ("site/gw/plant/line1/temp", b"21.7")]
    with pytest.raises(TimeoutError):
        upstream_sub.read(0.5)                 # the large one never comes
    assert metric(gw, 'hato_bridge_too_large_dropped_total{bridge="site",direction="out"}') == 1
    assert metric(gw, 'hato_bridge_backlog_messages{bridge="site"}') == 0
    assert gw.connected_count() == 1, gw.log()[-2000:]
    assert "more than the upstream takes (2048): dropped" in gw.log()


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_an_upstream_message_too_large_for_this_broker_is_dropped(pair, protocol):
    # v5: the bridge's CONNECT tells the upstream this broker's limit, and
    # the upstream drops the message itself (it never crosses the WAN).
    # v3.1.1 cannot be told: the bridge skips it as it arrives.
    up, gw = pair(protocol, "try_private = false",
                  gw_settings={"metrics": metrics_settings(), "limits": {"max_packet_size": LIMIT}})
    up.start()
    gw.start()
    find_metrics_port(gw)
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    local_sub = sub(gw, "local-sub", "remote/#")
    pub_qos1(up, "cmd/firmware", [BIG])        # the upstream hears the bridge's PUBACK
    pub_qos1(up, "cmd/valve7", [b"open"])
    assert receive(local_sub, 1) == [("remote/cmd/valve7", b"open")]
    with pytest.raises(TimeoutError):
        local_sub.read(0.5)
    dropped_here = metric(gw, 'hato_bridge_too_large_dropped_total{bridge="site",direction="in"}')
    assert dropped_here == (1 if protocol == "mqttv311" else 0)
    time.sleep(0.3)
    assert gw.connected_count() == 1, gw.log()[-2000:]


def test_a_message_the_upstream_refuses_is_counted_and_the_rest_flows(pair, tmp_path):
    os.makedirs(tmp_path / "acl")
    acl = write(str(tmp_path / "acl" / "acl"),
                "topic readwrite $SYS/#\ntopic read site/gw/#\ntopic write site/gw/plant/line1/#\n")
    up, gw = pair("mqttv5", gw_settings={"metrics": metrics_settings()}, settings={"auth": {"acl_file": acl}})
    up.start()
    gw.start()
    find_metrics_port(gw)
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    upstream_sub = sub(up, "up-sub", "site/gw/#")
    pub_qos1(gw, "plant/secret/recipe", [b"r1", b"r2"])   # not writable upstream: PUBACK 0x87
    pub_qos1(gw, "plant/line1/temp", [b"21.5"])
    assert receive(upstream_sub, 1) == [("site/gw/plant/line1/temp", b"21.5")]
    wait_for(lambda: metric(gw, 'hato_bridge_refused_total{bridge="site"}') == 2, what="two refusals counted")
    assert metric(gw, 'hato_bridge_backlog_messages{bridge="site"}') == 0
    assert gw.log().count("the upstream refused a message (reason 0x87, not authorized)") == 1
    assert gw.connected_count() == 1


def test_a_v311_upstream_that_closes_on_a_message_is_reported_and_the_message_kept(pair):
    # Without max_packet_size the bridge cannot know a v3.1.1 upstream's
    # limit: the upstream closes the connection on each resend. The bridge
    # keeps the message (acknowledged to its publisher) and says which one.
    up, gw = pair("mqttv311", "try_private = false",
                  gw_settings={"metrics": metrics_settings()}, settings={"limits": {"max_packet_size": LIMIT}})
    up.start()
    gw.start()
    find_metrics_port(gw)
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    pub_qos1(gw, "plant/camera", [BIG])
    wait_for(lambda: metric(gw, 'hato_bridge_upstream_closes_on_same_message{bridge="site"}') >= 4,
             what="four closes on the same message", timeout=30)
    log = gw.log()
    assert log.count("closed the connection 3 times in a row right after the message on 'site/gw/plant/camera'") == 1, \
        log[-3000:]
    assert metric(gw, 'hato_bridge_backlog_messages{bridge="site"}') == 1


def _rules(port, out_rule, in_rule, extra=""):
    return f"""
[[bridge]]
name = "site"
address = "127.0.0.1"
port = {port}
client_id = "gw-test"
protocol = "mqttv311"
try_private = false
reconnect_min_ms = 100
reconnect_max_ms = 400
{extra}

[[bridge.topic]]
pattern = "plant/#"
direction = "out"
{out_rule}

[[bridge.topic]]
pattern = "cmd/#"
direction = "in"
{in_rule}
"""


def test_a_rule_that_maps_a_topic_to_an_empty_one_drops_that_message_and_the_rest_flows(pair):
    # "cmd/" without remote_prefix "cmd/" is "", no topic at all: published
    # locally, it would close the bridge's local session on every resend.
    up, gw = pair(gw_settings={"metrics": metrics_settings()})
    gw.bridge = _rules(up.fixed_port, 'qos = 1\nlocal_prefix = "plant/"', 'qos = 1\nremote_prefix = "cmd/"')
    up.start()
    gw.start()
    find_metrics_port(gw)
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    upstream_sub = sub(up, "up-sub", "line/#")
    local_sub = sub(gw, "local-sub", "valve/#")
    pub_qos1(up, "cmd/", [b"poison"])
    pub_qos1(up, "cmd/valve/7", [b"open"])
    assert receive(local_sub, 1) == [("valve/7", b"open")]
    pub_qos1(gw, "plant/", [b"poison"])
    pub_qos1(gw, "plant/line/1", [b"21.5"])
    assert receive(upstream_sub, 1) == [("line/1", b"21.5")]
    assert metric(gw, 'hato_bridge_unmappable_dropped_total{bridge="site",direction="in"}') == 1
    assert metric(gw, 'hato_bridge_unmappable_dropped_total{bridge="site",direction="out"}') == 1
    assert metric(gw, 'hato_bridge_backlog_messages{bridge="site"}') == 0
    assert gw.connected_count() == 1, gw.log()[-2000:]


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_an_inbound_burst_beyond_the_local_receive_maximum_waits_and_all_of_it_arrives(pair, protocol):
    # The upstream sends up to 100 unanswered (its max_inflight); this
    # broker takes 8 at once from the bridge's session (receive_maximum).
    n = 200
    up, gw = pair(protocol, gw_settings={"mqtt": {"receive_maximum": 8}},
                  settings={"limits": {"max_inflight": 100}})
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    # Persistent: each message is stored before this broker answers the bridge.
    local_sub = sub(gw, "local-sub", "remote/#", clean=False)
    p = RawClient(up)
    p.connect("burst")
    p.send(b"".join(publish("cmd/x", f"c{i:03d}".encode(), 1, pid=i + 1) for i in range(n)))
    for _ in range(n):
        p.expect(PUBACK, 10)
    p.close()
    got = receive(local_sub, n, 30)
    assert got == [("remote/cmd/x", f"c{i:03d}".encode()) for i in range(n)]
    assert gw.connected_count() == 1 and "disconnecting" not in gw.log(), gw.log()[-2000:]


def test_a_local_broker_without_retain_or_qos_2_still_bridges_both_ways(pair):
    # The bridge's own retained state topic and a QoS 2 in rule were refused
    # by such a broker: the bridge never got going, or looped.
    up, gw = pair(gw_settings={"mqtt": {"retain_available": False, "maximum_qos": 1}})
    gw.bridge = _rules(up.fixed_port, 'qos = 1\nremote_prefix = "site/"', 'qos = 2\nlocal_prefix = "remote/"')
    conf = os.path.join(gw.workdir, "check.conf")
    with open(conf, "w") as f:
        f.write(gw._hato_config())
    check = subprocess.run([_find_hato(), "--check-config", "-c", conf], capture_output=True, text=True, timeout=30)
    assert "more than [mqtt] maximum_qos = 1" in check.stderr and "retain_available = false" in check.stderr
    assert "echoes those messages" not in check.stderr   # plant/# out, cmd/# in: they do not meet
    # An in rule that subscribes upstream to what the out rule sends, over
    # v3.1.1 without the bridge bit: every message would come back.
    with open(conf, "w") as f:
        f.write(gw._hato_config().replace('pattern = "cmd/#"', 'pattern = "site/#"'))
    check = subprocess.run([_find_hato(), "--check-config", "-c", conf], capture_output=True, text=True, timeout=30)
    assert ("out rule 'plant/#' sends upstream to 'site/plant/#', which in rule 'site/#' subscribes to"
            in check.stderr), check.stderr
    assert "held in memory too" not in check.stderr
    # A budget this machine's RAM could not hold.
    with open(conf, "w") as f:
        f.write(gw._hato_config().replace("try_private = false\n", "try_private = false\nmax_queued_bytes = 100000000000000\n", 1))
    check = subprocess.run([_find_hato(), "--check-config", "-c", conf], capture_output=True, text=True, timeout=30)
    assert "a backlog is held in memory too" in check.stderr, check.stderr
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    upstream_sub = sub(up, "up-sub", "site/#")
    local_sub = sub(gw, "local-sub", "remote/#")
    pub_qos1(gw, "plant/t", [b"m1", b"m2"])
    assert receive(upstream_sub, 2) == [("site/plant/t", b"m1"), ("site/plant/t", b"m2")]
    # QoS 2 and retained upstream: here QoS 1 and not retained.
    p = RawClient(up)
    p.connect("q2")
    p.send(publish("cmd/valve", b"open", 2, pid=1, retain=True))
    p.expect(PUBREC)
    p.send(pubrel(1))
    p.expect(PUBCOMP)
    p.close()
    assert receive(local_sub, 1) == [("remote/cmd/valve", b"open")]
    time.sleep(0.5)
    assert gw.connected_count() == 1 and "disconnecting" not in gw.log(), gw.log()[-2000:]
