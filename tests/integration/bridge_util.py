# What the bridge tests share: an upstream hato on a fixed port, a gateway
# hato bridged to it (docs/bridge.md), the `pair` fixture that makes both,
# and raw MQTT steps to feed and read them.

import os
import re
import socket
import struct
import time

import pytest

from conftest import Broker, _free_port
from raw_mqtt import PUBACK, PUBLISH, SUBACK, RawClient, parse_publish, publish, subscribe

CONNECTED = re.compile(r"bridge site: connected$", re.M)


def bridge_toml(port, client_id, extra="", remote_prefix="site/gw/", in_rule=True):
    """A [[bridge]] "site" to 127.0.0.1:`port` with an out rule for plant/#
    (to `remote_prefix`) and, with `in_rule`, an in rule for cmd/# (to
    remote/); `extra` is more TOML for the bridge table."""
    text = f"""
[[bridge]]
name = "site"
address = "127.0.0.1"
port = {port}
client_id = "{client_id}"
{extra}
reconnect_min_ms = 100
reconnect_max_ms = 400

[[bridge.topic]]
pattern = "plant/#"
direction = "out"
qos = 1
remote_prefix = "{remote_prefix}"
"""
    if in_rule:
        text += '\n[[bridge.topic]]\npattern = "cmd/#"\ndirection = "in"\nqos = 1\nlocal_prefix = "remote/"\n'
    return text


def closed_port():
    """(port, socket): a port nothing listens on, kept so by the returned
    socket (bound, not listening: connects are refused) until it is closed;
    a broker of a test running in parallel cannot take it meanwhile."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1], s


class Upstream(Broker):
    """A hato that listens on a fixed port across restarts."""

    def __init__(self, backend, workdir, port, settings=None):
        super().__init__(backend, workdir, settings or {})
        self.fixed_port = port
        self._hold = None
        self._reserve()

    def _reserve(self):
        # While this upstream is down, a socket bound to its port (not
        # listening: connects are refused) keeps a broker of a test running
        # in parallel from taking the port, and the gateway from reaching it.
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", self.fixed_port))
        except OSError:
            s.close()   # in TIME_WAIT after a stop: best effort only
            return
        self._hold = s

    def start(self):
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        return super().start()

    def stop(self, timeout=10.0):
        rc = super().stop(timeout)
        self._reserve()
        return rc

    def kill(self):
        super().kill()
        self._reserve()

    def release(self):
        if self._hold is not None:
            self._hold.close()
            self._hold = None

    def _hato_config(self):
        return super()._hato_config().replace("port = 0", f"port = {self.fixed_port}", 1)


class Gateway(Broker):
    """A hato with one [[bridge]] named "site" to 127.0.0.1:`up_port`."""

    def __init__(self, backend, workdir, up_port, protocol="mqttv311", extra="try_private = false", settings=None):
        super().__init__(backend, workdir, settings or {})
        self.bridge = bridge_toml(up_port, "gw-test", f'protocol = "{protocol}"\nkeep_alive = 30\n{extra}')

    def _hato_config(self):
        return super()._hato_config() + self.bridge

    def connected_count(self):
        return len(CONNECTED.findall(self.log()))


def wait_for(pred, what="condition", timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pair(backend, tmp_path):
    """make(...) -> (upstream, gateway): an upstream on a free port (an
    `upstream` class, Upstream unless given, made with `up_args` too) and a
    Gateway bridged to it; both stopped at the end."""
    made = []

    def make(protocol="mqttv311", extra="try_private = false", gw_settings=None, upstream=Upstream, **up_args):
        port = _free_port()
        os.makedirs(tmp_path / "up")
        os.makedirs(tmp_path / "gw")
        up = upstream(backend, str(tmp_path / "up"), port, **up_args)
        gw = Gateway(backend, str(tmp_path / "gw"), port, protocol, extra, gw_settings)
        made.extend([gw, up])
        return up, gw

    yield make
    for b in made:
        b.stop()
        if isinstance(b, Upstream):
            b.release()


def sub(broker, client_id, topic, clean=True, version=4):
    c = RawClient(broker)
    c.connect(client_id, version, clean=clean)
    c.send(subscribe(1, topic, 1, version))
    c.expect(SUBACK)
    return c


def pub_qos1(broker, topic, payloads, version=4):
    c = RawClient(broker)
    c.connect("", version)
    for i, p in enumerate(payloads):
        c.send(publish(topic, p, 1, pid=i + 1, version=version))
        ack = c.expect(PUBACK)
        assert struct.unpack_from("!H", ack.body, 0)[0] == i + 1
    c.close()


def receive(client, n, timeout=20.0):
    """Payloads of the next PUBLISHes (acknowledged), first copies only, until n distinct."""
    seen, order = set(), []
    deadline = time.monotonic() + timeout
    while len(order) < n:
        p = client.read(max(deadline - time.monotonic(), 0.01))
        if p.type != PUBLISH:
            continue
        topic, pid, _, payload = parse_publish(p)
        if pid is not None:
            client.send(bytes([PUBACK << 4, 2]) + struct.pack("!H", pid))
        if payload not in seen:
            seen.add(payload)
            order.append((topic, payload))
    return order


def upstream_goes_away(up, gw):
    """The upstream with a persistent subscriber "up-sub" on site/gw/# (it
    keeps what arrives while it is away), the gateway's bridge connected to
    it, then the upstream stopped and the gateway aware of it: what the
    gateway takes now waits in its bridge queue."""
    up.start()
    s = sub(up, "up-sub", "site/gw/#", clean=False)
    s.close()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    up.stop()
    wait_for(lambda: "bridge site: disconnected" in gw.log(), what="bridge disconnect noticed")


def wait_upstream_subscriptions(up, want, timeout=15.0):
    """Waits until `up`'s $SYS subscriptions/count (its [sys] interval set)
    reads `want`; the watching client's own subscription counts as one."""
    from paho_client import Client
    c = Client(up, client_id="sys-watch")
    c.subscribe("$SYS/broker/subscriptions/count", qos=0)
    last = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                m = c.messages.get(timeout=0.2)
            except Exception:
                continue
            last = int(m.payload.decode().split()[0])
            if last == want:
                return
        raise AssertionError(f"upstream subscriptions/count is {last}, expected {want}")
    finally:
        c.close()
