# $SYS topics: published retained every [sys] interval with Mosquitto's
# names, values that follow a known scenario, never matched by # or +,
# readable only where the ACL allows, and kept out of the store. hato only
# (Mosquitto's values and version differ), once per event backend.

import os
import shutil
import tempfile
import time

import pytest

from conftest import TARGET, _find_hato
from paho_client import V311, V5, WAIT, Client
from security_util import SecBroker, mosquitto_passwd, write
from build_info import sanitized

pytestmark = pytest.mark.hato_only("[sys] interval and hato's own values")

SYS = {"sys": {"interval": 1}}
B = "$SYS/broker/"


class SysView:
    """The latest value of every $SYS topic a client received."""

    def __init__(self, client):
        self.client = client
        self.values = {}
        self.history = {}

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                m = self.client.messages.get(timeout=0.05)
            except Exception:
                continue
            v = m.payload.decode()
            self.values[m.topic] = v
            self.history.setdefault(m.topic, []).append(v)

    def wait_for(self, topic, pred, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if topic in self.values and pred(self.values[topic]):
                return self.values[topic]
            self.pump(0.1)
        raise AssertionError(f"{topic}: {self.values.get(topic)!r} never satisfied the check; "
                             f"seen {self.history.get(topic)}")


def num(v):
    return int(v.split()[0])


def test_sys_values_follow_a_known_scenario(broker_factory, clients):
    b = broker_factory(SYS)
    # The monitor first: the scenario then falls after the first publication,
    # which only takes the counters as the load averages' starting point.
    mon = clients(client_id="monitor", broker=b, version=V5)
    mon.subscribe("$SYS/#", 0)
    view = SysView(mon)
    view.wait_for(B + "version", lambda v: True)

    n_clients, m_messages, k_retained = 3, 5, 2
    made = [clients(client_id=f"c{i}", broker=b) for i in range(n_clients)]
    sub = made[1]
    sub.subscribe("app/#", 1)
    for i in range(m_messages):
        made[0].publish("app/data", f"m{i}", qos=1)
    for i in range(k_retained):
        made[0].publish(f"app/retained/{i}", f"r{i}", qos=1, retain=True)
    sub.expect_list(m_messages + k_retained)

    connected = n_clients + 1
    view.wait_for(B + "clients/connected", lambda v: num(v) == connected)
    assert view.wait_for(B + "version", lambda v: True).startswith("hato version ")
    view.wait_for(B + "clients/total", lambda v: num(v) >= connected)
    view.wait_for(B + "clients/maximum", lambda v: num(v) >= connected)
    view.wait_for(B + "publish/messages/received", lambda v: num(v) >= m_messages + k_retained)
    view.wait_for(B + "publish/messages/sent", lambda v: num(v) >= m_messages + k_retained)
    view.wait_for(B + "messages/received", lambda v: num(v) >= m_messages + k_retained + connected)
    view.wait_for(B + "publish/bytes/received", lambda v: num(v) >= 2 * (m_messages + k_retained))
    view.wait_for(B + "bytes/received", lambda v: num(v) > 0)
    view.wait_for(B + "bytes/sent", lambda v: num(v) > 0)
    view.wait_for(B + "retained messages/count", lambda v: num(v) == k_retained)
    view.wait_for(B + "subscriptions/count", lambda v: num(v) == 2)
    view.wait_for(B + "load/publish/received/1min", lambda v: float(v) > 0)
    view.wait_for(B + "load/connections/1min", lambda v: float(v) > 0)
    for w in ("1min", "5min", "15min"):
        assert B + f"load/bytes/sent/{w}" in view.values
    if not sanitized(b):   # ASan's allocator has no mallinfo2
        assert num(view.values[B + "heap/current"]) > 0
    assert float(view.values[B + "hato/store/fill_percent"]) >= 0
    assert num(view.values[B + "hato/store/refused/total"]) == 0
    assert num(view.values[B + "hato/publish/dropped/qos0_slow_consumer"]) == 0
    # app/data and the k retained topics are kept, each with its one match
    # (sub); the $SYS topics too, each with the monitor.
    view.wait_for(B + "hato/route_cache/topics", lambda v: 1 + k_retained <= num(v) <= 1024)
    view.wait_for(B + "hato/route_cache/matches", lambda v: 1 + k_retained <= num(v) <= 16384)

    # Uptime grows from one publication to the next (every second).
    first = num(view.wait_for(B + "uptime", lambda v: v.endswith(" seconds")))
    view.wait_for(B + "uptime", lambda v: num(v) > first, timeout=5)

    # A client leaves: the next publication says so.
    made[2].disconnect()
    view.wait_for(B + "clients/connected", lambda v: num(v) == connected - 1)


def test_wildcards_never_match_sys(broker_factory, clients):
    b = broker_factory(SYS)
    c = clients(client_id="everything", broker=b, version=V311)
    c.subscribe("#", 0)
    c.subscribe("+/broker/#", 0)
    p = clients(client_id="pub", broker=b)
    p.publish("plant/line1", "1", qos=1)
    assert c.expect().topic == "plant/line1"
    c.expect_none(2.2)   # two $SYS publications go by unseen
    late = clients(client_id="late", broker=b)
    late.subscribe("#", 0)   # retained $SYS messages are not sent either
    late.expect_none(1.2)


def test_sys_publications_do_not_write_the_store(broker_factory, clients):
    b = broker_factory(SYS)
    mon = clients(client_id="monitor", broker=b)
    mon.subscribe("$SYS/broker/hato/store/bytes", 0)
    view = SysView(mon)
    view.pump(3.3)
    sizes = view.history.get(B + "hato/store/bytes", [])
    assert len(sizes) >= 3, sizes
    assert len(set(sizes)) == 1, f"the store grew while only $SYS was published: {sizes}"
    mon.subscribe("$SYS/broker/uptime", 0)
    before = num(view.wait_for(B + "uptime", lambda v: num(v) >= 2))
    b.restart()   # the old values do not come back from the store: uptime starts again
    after = clients(client_id="after", broker=b)
    after.subscribe("$SYS/broker/uptime", 0)
    got = after.expect()
    assert num(got.payload.decode()) < before


def test_sys_off(broker_factory, clients):
    b = broker_factory({"sys": {"interval": 0}})
    c = clients(client_id="mon", broker=b)
    c.subscribe("$SYS/#", 0)
    c.expect_none(1.2)


ACL = """\
topic readwrite app/#

user monitor
topic read $SYS/#
topic deny $SYS/broker/hato/#

user plain
topic readwrite app/#
"""


@pytest.fixture
def acl_broker(backend, request):
    if not _find_hato():
        pytest.skip("hato binary not found (set HATO_BIN)")
    w = tempfile.mkdtemp(prefix="hato-sys-")
    pw = os.path.join(w, "passwd")
    mosquitto_passwd(pw, "monitor", "monitor-pw", create=True)
    mosquitto_passwd(pw, "plain", "plain-pw")
    auth = {"password_file": pw, "acl_file": write(os.path.join(w, "acl"), ACL)}
    b = SecBroker(backend, w, {"storage": {"enabled": False}, "auth": auth, **SYS}, [{}])
    b.start()
    yield b
    rep = getattr(request.node, "rep_call", None)
    try:
        b.stop()
    finally:
        b.kill()
        if rep is not None and rep.failed:
            print(f"----- broker log ({b.log_path}) -----\n{b.log()[-6000:]}")
        shutil.rmtree(w, ignore_errors=True)


def login(b, name, version):
    c = Client(b.endpoint(0), client_id=name, version=version, auto_connect=False)
    c.paho.username_pw_set(name, name + "-pw")
    c.connect()
    return c


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_acl_decides_who_reads_sys(acl_broker, version):
    made = []
    try:
        plain = login(acl_broker, "plain", version)
        made.append(plain)
        granted = plain.subscribe("$SYS/#", 0)
        code = granted[0][0]
        assert int(getattr(code, "value", code)) in (0x80, 0x87)
        plain.subscribe("#", 0)   # allowed (app/#), yet no $SYS arrives
        monitor = login(acl_broker, "monitor", version)
        made.append(monitor)
        monitor.subscribe("$SYS/#", 0)
        view = SysView(monitor)
        view.wait_for(B + "uptime", lambda v: True)
        view.pump(1.2)
        assert B + "version" in view.values
        assert not [t for t in view.values if t.startswith(B + "hato/")], "denied by the ACL"
        plain.expect_none(0.3)
    finally:
        for c in made:
            c.close()
