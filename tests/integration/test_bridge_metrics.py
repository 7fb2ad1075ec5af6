# A bridge's state and store-and-forward backlog where monitoring reads it:
# /metrics (label bridge="<name>", promtool still content), status.json and
# the status page, and $SYS/broker/hato/bridge/<name>/... (docs/monitoring.md).
# Scenario: the upstream is down while N QoS 1 messages are acknowledged
# locally; then it comes back and the backlog drains to 0.

import json
import shutil
import subprocess
import time

import pytest

from raw_mqtt import SUBACK, RawClient, subscribe
from bridge_util import pair, pub_qos1, receive, wait_for  # noqa: F401  (pair: fixture)
from metrics_util import find_metrics_port, metrics_settings
from test_metrics import _get, _samples

N = 25
LABEL = 'bridge="site"'


def _start_gw(gw):
    find_metrics_port(gw.start())


def _metric(gw, name):
    return _samples(_get(gw, "/metrics")[2]).get(f"{name}{{{LABEL}}}")


def _sys(gw, leaf):
    c = RawClient(gw)
    c.connect("")
    topic = f"$SYS/broker/hato/bridge/site/{leaf}"
    c.send(subscribe(1, topic, 0))
    c.expect(SUBACK)
    got = receive(c, 1, 5)
    c.close()
    return got[0][1].decode()


def test_bridge_backlog_in_metrics_status_and_sys(pair):  # noqa: F811
    up, gw = pair(gw_settings={"metrics": metrics_settings(), "sys": {"interval": 1}})
    _start_gw(gw)   # the upstream is not there
    wait_for(lambda: "bridge site: connect to" in gw.log(), what="a failed attempt")
    payloads = [f"b{i:03d}".encode() + b"x" * 96 for i in range(N)]
    pub_qos1(gw, "plant/backlog", payloads)
    time.sleep(1.2)

    assert _metric(gw, "hato_bridge_connected") == 0
    assert _metric(gw, "hato_bridge_backlog_messages") == N
    assert _metric(gw, "hato_bridge_backlog_bytes") >= N * 100
    age = _metric(gw, "hato_bridge_backlog_oldest_age_seconds")
    # Counted from when the first message was queued, about 1.2 s ago.
    assert 1.0 <= age < 30, age
    promtool = shutil.which("promtool")
    if promtool:
        text = _get(gw, "/metrics")[2]
        res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"promtool check metrics:\n{res.stdout}{res.stderr}"

    status = json.loads(_get(gw, "/status.json")[2])
    [b] = status["bridges"]
    assert b["name"] == "site" and b["connected"] is False and b["backlog_messages"] == N
    page = _get(gw, "/")[2]
    assert "<h2>Bridges</h2>" in page and ">site<" in page

    wait_for(lambda: _sys(gw, "backlog/messages") == str(N), timeout=5, what="$SYS backlog")
    assert _sys(gw, "state") == "0"
    assert int(_sys(gw, "backlog/bytes")) >= N * 100

    up.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    wait_for(lambda: _metric(gw, "hato_bridge_backlog_messages") == 0, timeout=10, what="backlog drained")
    assert _metric(gw, "hato_bridge_connected") == 1
    assert _metric(gw, "hato_bridge_backlog_oldest_age_seconds") == 0
    assert _samples(_get(gw, "/metrics")[2])[f'hato_bridge_forwarded_messages_total{{{LABEL},direction="out"}}'] >= N
    wait_for(lambda: _sys(gw, "state") == "1" and _sys(gw, "backlog/messages") == "0", timeout=5,
             what="$SYS after the drain")
    assert json.loads(_get(gw, "/status.json")[2])["bridges"][0]["connected"] is True


def test_bridge_backlog_age_survives_a_restart_and_a_crash(pair):  # noqa: F811
    # A gateway whose WAN has been down for hours and which reboots must
    # still report its backlog as hours old (an alert on the age fires).
    up, gw = pair(gw_settings={"metrics": metrics_settings()})
    _start_gw(gw)   # the upstream is not there
    wait_for(lambda: "bridge site: connect to" in gw.log(), what="a failed attempt")
    pub_qos1(gw, "plant/backlog", [b"old"])
    time.sleep(2.5)
    pub_qos1(gw, "plant/backlog", [b"new"])
    before = _metric(gw, "hato_bridge_backlog_oldest_age_seconds")
    assert 2.0 <= before < 30, before

    gw.stop()
    _start_gw(gw)
    assert _metric(gw, "hato_bridge_backlog_messages") == 2
    after_stop = _metric(gw, "hato_bridge_backlog_oldest_age_seconds")
    assert before <= after_stop < before + 30, (before, after_stop)

    gw.kill()
    _start_gw(gw)
    assert _metric(gw, "hato_bridge_backlog_messages") == 2
    after_crash = _metric(gw, "hato_bridge_backlog_oldest_age_seconds")
    assert after_stop <= after_crash < before + 30, (after_stop, after_crash)

    up.start()
    wait_for(lambda: _metric(gw, "hato_bridge_backlog_messages") == 0, timeout=15, what="backlog drained")
    assert _metric(gw, "hato_bridge_backlog_oldest_age_seconds") == 0
