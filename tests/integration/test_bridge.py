# Bridge to an upstream broker (docs/bridge.md): local messages on "out"
# rules reach the upstream, upstream messages on "in" rules reach local
# subscribers, and the outbound queue is the durable session
# "$bridge/<name>": messages acknowledged locally while the upstream is down
# survive a SIGKILL of the gateway and arrive upstream, in order, once the
# upstream is back. The upstream is a second hato on a fixed free port (so it
# can be restarted where the gateway expects it).

import contextlib
import os
import re
import signal
import subprocess
import struct
import time

import pytest

from conftest import TARGET, Broker, _can_connect, _free_port
from raw_mqtt import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, RawClient, parse_publish, publish, pubrel, subscribe
from build_info import sanitized
from metrics_util import find_metrics_port, metric, metrics_settings
from bridge_util import Gateway, Upstream, bridge_toml, closed_port, pub_qos1, receive, sub, upstream_goes_away, wait_for, wait_upstream_subscriptions
from bridge_util import pair  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's [[bridge]] configuration")

@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_bridge_out_and_in(pair, protocol):
    up, gw = pair(protocol)
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    upstream_sub = sub(up, "up-sub", "site/gw/#")
    pub_qos1(gw, "plant/line1/temp", [b"21.5", b"21.7"])
    assert receive(upstream_sub, 2) == [("site/gw/plant/line1/temp", b"21.5"),
                                         ("site/gw/plant/line1/temp", b"21.7")]
    # Not matching an out rule: stays local.
    pub_qos1(gw, "office/temp", [b"x"])

    local_sub = sub(gw, "local-sub", "remote/#")
    pub_qos1(up, "cmd/valve7", [b"open"])
    assert receive(local_sub, 1) == [("remote/cmd/valve7", b"open")]
    # What came in is not sent back out (the upstream subscriber sees only plant data).
    with pytest.raises(TimeoutError):
        upstream_sub.read(0.5)


def test_bridge_store_and_forward_across_outage_and_kill(pair):
    # max_session_expiry does not cut the bridge's queue short.
    up, gw = pair(gw_settings={"mqtt": {"max_session_expiry": 1}})
    upstream_goes_away(up, gw)
    n = 50
    payloads = [f"m{i:03d}".encode() for i in range(n)]
    pub_qos1(gw, "plant/counter", payloads)   # every one acknowledged by the gateway
    time.sleep(2.5)
    gw.kill()
    gw.start()
    time.sleep(1.5)
    up.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge reconnected after restart")
    s = RawClient(up)
    s.connect("up-sub", clean=False)   # its subscription is kept upstream
    got = receive(s, n)
    assert [p for _, p in got] == payloads
    assert all(t == "site/gw/plant/counter" for t, _ in got)


def receive_until_quiet(client, quiet=1.5, timeout=20.0):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got += receive(client, 1, quiet)
        except TimeoutError:
            break
    return [p for _, p in got]


@pytest.mark.parametrize("when_full", ["drop_oldest", "drop_new"])
def test_bridge_queue_budget(pair, when_full):
    up, gw = pair(extra=f'try_private = false\nmax_queued_bytes = 6000\nwhen_full = "{when_full}"',
                  gw_settings={"metrics": metrics_settings()})
    upstream_goes_away(up, gw)
    find_metrics_port(gw)
    n = 20
    payloads = [f"{i:03d}".encode() + b"x" * 1000 for i in range(n)]
    pub_qos1(gw, "plant/big", payloads)   # local publishers are never refused
    local = sub(gw, "local-sub", "plant/#")
    pub_qos1(gw, "plant/big", [b"live"])
    assert receive(local, 1) == [("plant/big", b"live")]   # local delivery unaffected
    up.start()
    s = RawClient(up)
    s.connect("up-sub", clean=False)
    got = receive_until_quiet(s)
    assert 2 <= len(got) < n
    # Every drop counted, with either policy, by bridge and in the total.
    assert metric(gw, 'hato_bridge_backlog_dropped_total{bridge="site"}') == n + 1 - len(got)
    assert metric(gw, "hato_queued_dropped_total") == n + 1 - len(got)
    if when_full == "drop_oldest":
        assert got[-1] == b"live" and got[:-1] == payloads[n - len(got) + 1:]
    else:
        # The newest give way; "live" is small enough to fit what is left.
        if got[-1] == b"live":
            got = got[:-1]
        assert got == payloads[:len(got)]
    wait_for(lambda: "dropped (when_full)" in gw.log(), what="the drop report")
    assert re.search(r"bridge messages dropped since the last report, by bridge: site \d+\n", gw.log()), gw.log()


@contextlib.contextmanager
def _mosquitto_upstream(backend, tmp_path):
    """A Mosquitto with its defaults on a free port (as a Broker to connect
    clients to), and a gateway bridging to it over 3.1.1 with the bridge bit,
    started once Mosquitto listens; both stopped after."""
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    mosq = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.makedirs(tmp_path / "gw")
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv311", "try_private = true")
    try:
        up = Broker(backend, str(tmp_path), {})
        up.port = port
        wait_for(lambda: _can_connect("127.0.0.1", port), what="mosquitto listening")
        yield up, gw
    finally:
        gw.stop()
        mosq.terminate()
        mosq.wait(10)


@pytest.mark.skipif(not os.access("/usr/sbin/mosquitto", os.X_OK), reason="mosquitto not installed")
def test_bridge_to_mosquitto_with_bridge_bit(backend, tmp_path):
    with _mosquitto_upstream(backend, tmp_path) as (up, gw):
        gw.start()
        wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
        s = sub(up, "up-sub", "site/gw/#")
        pub_qos1(gw, "plant/m", [b"1", b"2", b"3"])
        assert [p for _, p in receive(s, 3)] == [b"1", b"2", b"3"]


@pytest.mark.skipif(not os.access("/usr/sbin/mosquitto", os.X_OK), reason="mosquitto not installed")
def test_a_qos2_burst_over_mqtt311_reaches_a_default_mosquitto_whole(backend, tmp_path):
    # Mosquitto takes max_inflight_messages (20 by default) QoS 2 messages
    # in flight from a client; past that it answers PUBREC 0x97 and drops
    # the message, which over 3.1.1 reads as a plain PUBREC. With a window
    # of 100 the bridge completed and lost about a third of a burst.
    n = 300
    with _mosquitto_upstream(backend, tmp_path) as (up, gw):
        gw.bridge = gw.bridge.replace("qos = 1\nremote_prefix", "qos = 2\nremote_prefix", 1)
        gw.start()
        wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
        s = sub(up, "up-sub", "site/gw/#")
        c = RawClient(gw)
        c.connect("burst", 4)
        c.send(b"".join(publish("plant/q", str(i).encode(), 2, pid=i + 1) for i in range(n)))
        completed = 0
        while completed < n:
            p = c.read()
            if p.type == PUBREC:
                c.send(pubrel(struct.unpack_from("!H", p.body, 0)[0]))
            elif p.type == PUBCOMP:
                completed += 1
        got = receive(s, n, timeout=30.0)
        assert sorted(int(payload) for _, payload in got) == list(range(n))


def test_bridge_connection_state_topic(pair):
    up, gw = pair()
    gw.start()   # upstream not there yet
    state = "$SYS/broker/connection/site/state"
    wait_for(lambda: "bridge site: connect to" in gw.log(), what="a failed attempt")
    assert receive(sub(gw, "s0", state), 1) == [(state, b"0")]
    up.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    assert receive(sub(gw, "s1", state), 1) == [(state, b"1")]
    up.stop()
    wait_for(lambda: "bridge site: disconnected" in gw.log(), what="bridge disconnect noticed")
    assert receive(sub(gw, "s2", state), 1) == [(state, b"0")]


def test_bridge_reconnect_backoff_bounds_attempts(backend, tmp_path):
    # Nothing listens upstream: attempts follow the backoff (delays of at
    # least reconnect_min_ms, growing to reconnect_max_ms), not a busy loop.
    port, nobody = closed_port()
    os.makedirs(tmp_path / "gw")
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv311",
                 "try_private = false\nreconnect_min_ms = 200\nreconnect_max_ms = 800")
    gw.bridge = gw.bridge.replace("reconnect_min_ms = 100\nreconnect_max_ms = 400\n", "")
    try:
        gw.start()
        time.sleep(4.0)
        attempts = len(re.findall(r"bridge site: connect to .* failed", gw.log()))
        # 4 s / 200 ms = 20 is the most any backoff allows; delays of up to
        # 800 ms make at least 4 likely, 3 certain.
        assert 3 <= attempts <= 21, gw.log()
        assert "attempt 1)" in gw.log()
    finally:
        gw.stop()
        nobody.close()


def _upstream_that_drops_each_session(port, hold_s, stop):
    """Takes each bridge session (CONNACK, SUBACK), sends a command on cmd/x
    once it is set up, keeps it `hold_s`, then closes it: an overloaded
    upstream, or one where another gateway with the same client id takes
    the session over. Returns its accepting thread and a count of the
    sessions taken; it stops once `stop` is set."""
    import socket, threading
    taken = [0]

    def serve(s):
        s.settimeout(0.05)
        buf, until, command_at = b"", time.monotonic() + hold_s, None
        try:
            while time.monotonic() < until:
                if command_at and time.monotonic() >= command_at:
                    s.sendall(publish("cmd/x", b"c"))
                    command_at = None
                try:
                    data = s.recv(4096)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
                while len(buf) >= 2:
                    n, mul, i = 0, 1, 1
                    while i < len(buf) and buf[i] & 0x80:
                        n += (buf[i] & 0x7F) * mul
                        mul *= 128
                        i += 1
                    if i >= len(buf):
                        break
                    n += buf[i] * mul
                    if len(buf) < i + 1 + n:
                        break
                    kind, body, buf = buf[0] >> 4, buf[i + 1:i + 1 + n], buf[i + 1 + n:]
                    if kind == 1:
                        s.sendall(bytes([0x20, 2, 0, 0]))
                        taken[0] += 1
                    elif kind == 8:
                        s.sendall(bytes([0x90, 3]) + body[:2] + bytes([1]))
                        command_at = time.monotonic() + 0.1
                    elif kind == 12:
                        s.sendall(bytes([0xD0, 0]))
        except OSError:
            pass
        finally:
            s.close()

    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    ls.settimeout(0.1)
    threads = []

    def accept():
        while not stop.is_set():
            try:
                s, _ = ls.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=serve, args=(s,), daemon=True)
            t.start()
            threads.append(t)
        ls.close()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    return acceptor, taken


def test_an_upstream_that_drops_each_session_at_once_is_retried_ever_more_slowly(backend, tmp_path):
    # The backoff is reset only by a connection that stayed up (30 s): one
    # the upstream drops right after the session is set up counts as a
    # failed attempt, so the delays grow to reconnect_max_ms instead of
    # hitting the upstream every reconnect_min_ms (docs/bridge.md).
    import threading
    port = _free_port()
    os.makedirs(tmp_path / "gw")
    stop = threading.Event()
    acceptor, taken = _upstream_that_drops_each_session(port, 0.3, stop)
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv311", "try_private = false\nnotifications = false")
    gw.bridge = gw.bridge.replace("reconnect_max_ms = 400", "reconnect_max_ms = 3200")
    try:
        gw.start()
        time.sleep(6.0)
        log = gw.log()
        attempts = [int(a) for a in re.findall(r"bridge site: disconnected .*\(attempt (\d+)\)", log)]
        # Every session reached the ready state before it was dropped.
        assert gw.connected_count() >= 3, log
        assert len(attempts) >= 3, log
        # Counted, not reset: 1, 2, 3, ... (before, every retry was attempt 1,
        # about 15 sessions in these 6 s).
        assert attempts[:3] == [1, 2, 3], log
        assert taken[0] <= 10, (taken[0], log)
    finally:
        gw.stop()
        stop.set()
        acceptor.join(5)


def test_bridge_qos2_exactly_once_across_kill(pair):
    up, gw = pair()
    gw.bridge += '\n[[bridge.topic]]\npattern = "q2/#"\ndirection = "out"\nqos = 2\nremote_prefix = "site/gw/"\n'
    up.start()
    s = RawClient(up)
    s.connect("up-sub2", clean=False)
    s.send(subscribe(1, "site/gw/q2/#", 2))
    s.expect(SUBACK)
    s.close()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    up.stop()
    wait_for(lambda: "bridge site: disconnected" in gw.log(), what="bridge disconnect noticed")
    n = 20
    payloads = [f"q{i:03d}".encode() for i in range(n)]
    c = RawClient(gw)
    c.connect("pub2")
    for i, p in enumerate(payloads):
        c.send(publish("q2/x", p, 2, pid=i + 1))
        c.expect(PUBREC)
        c.send(pubrel(i + 1))
        c.expect(PUBCOMP)
    c.close()
    gw.kill()
    gw.start()
    up.start()
    s = RawClient(up)
    s.connect("up-sub2", clean=False)
    got = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            p = s.read(1.5 if len(got) >= n else 5.0)
        except TimeoutError:
            break
        if p.type == PUBLISH:
            _, pid, _, payload = parse_publish(p)
            s.send(bytes([PUBREC << 4, 2]) + struct.pack("!H", pid))
            got.append(payload)
        elif p.type == PUBREL:
            s.send(bytes([PUBCOMP << 4, 2]) + p.body[:2])
    assert got == payloads   # each once, in order


def _password_pair(backend, tmp_path, secret_text):
    """An upstream hato that takes gw-17 with password s3cret, and a gateway
    whose bridge logs in as gw-17 with `secret_text` in its password file."""
    port = _free_port()
    os.makedirs(tmp_path / "up")
    os.makedirs(tmp_path / "gw")
    passwd = tmp_path / "up" / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "gw-17", "s3cret"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secret = tmp_path / "gw" / "site.secret"
    secret.write_text(secret_text)
    up = Upstream(backend, str(tmp_path / "up"), port,
                  {"auth": {"password_file": str(passwd), "allow_anonymous": False}})
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv5",
                 f'try_private = false\nusername = "gw-17"\npassword_file = "{secret}"')
    return up, gw, secret


def test_bridge_logs_in_with_password_file(backend, tmp_path):
    up, gw, secret = _password_pair(backend, tmp_path, "s3cret\n")
    try:
        up.start()
        gw.start()
        wait_for(lambda: gw.connected_count() >= 1, what="bridge connected with its password")
        assert "s3cret" not in gw.log()
        # A wrong password, read on SIGHUP, is refused at the next connection.
        secret.write_text("wrong\n")
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload requested" in gw.log(), what="reload")
        up.stop()
        up.start()
        wait_for(lambda: "upstream refused the connection: reason 0x86" in gw.log(), what="refusal logged")
        assert "wrong" not in gw.log()
    finally:
        gw.stop()
        up.stop()


# A reload is often the fix for why a bridge is down: the bridge tries
# again at once, not after the backoff its refusals have grown.
def test_a_reload_that_fixes_the_password_reconnects_at_once(backend, tmp_path):
    up, gw, secret = _password_pair(backend, tmp_path, "wrong\n")
    gw.bridge = gw.bridge.replace("reconnect_min_ms = 100\nreconnect_max_ms = 400",
                                  "reconnect_min_ms = 60000\nreconnect_max_ms = 120000")
    try:
        up.start()
        gw.start()
        wait_for(lambda: "upstream refused the connection: reason 0x86" in gw.log(), what="refusal logged")
        secret.write_text("s3cret\n")
        t0 = time.monotonic()
        gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gw.connected_count() >= 1, what="bridge connected after the reload", timeout=20)
        assert time.monotonic() - t0 < 20   # the backoff alone would have waited 60 s or more
    finally:
        gw.stop()
        up.stop()


def test_check_config_reports_bridge_problems(tmp_path):
    from conftest import _find_hato
    conf = tmp_path / "c.toml"
    conf.write_text('[storage]\nmax_bytes_mb = 1\n\n[[bridge]]\nname = "site"\naddress = "127.0.0.1"\n'
                    f'password_file = "{tmp_path}/missing.secret"\ntls = {{ ca = "ca.pem", cert = "c.pem" }}\n\n'
                    '[[bridge.topic]]\npattern = "plant/#"\n')
    r = subprocess.run([_find_hato(), "--check-config", "--config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "c.toml:8:7: bridge[0].tls.key: cert and key go together" in r.stderr
    conf.write_text(conf.read_text().replace('tls = { ca = "ca.pem", cert = "c.pem" }\n', ""))
    r = subprocess.run([_find_hato(), "--check-config", "--config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "bridge site: password_file" in r.stderr and "missing.secret" in r.stderr
    assert "more than [storage] max_bytes" in r.stderr


def test_two_gateways_both_ways_do_not_loop(backend, tmp_path):
    # Two gateways bridged "both" on "#" to one upstream (v5: No Local
    # upstream, No Local on the local sessions): a message published on one
    # reaches the upstream and the other gateway once, and nothing returns.
    port = _free_port()
    for d in ("up", "a", "b"):
        os.makedirs(tmp_path / d)
    up = Upstream(backend, str(tmp_path / "up"), port)
    gws = []
    for name in ("a", "b"):
        g = Gateway(backend, str(tmp_path / name), port, "mqttv5", "try_private = false")
        g.bridge = g.bridge.split("[[bridge.topic]]")[0].replace('client_id = "gw-test"', f'client_id = "gw-{name}"')
        g.bridge += '[[bridge.topic]]\npattern = "#"\ndirection = "both"\nqos = 1\n'
        gws.append(g)
    try:
        up.start()
        for g in gws:
            g.start()
        for g in gws:
            wait_for(lambda: g.connected_count() >= 1, what="bridge connected")
        on_up = sub(up, "s-up", "data/#")
        on_a = sub(gws[0], "s-a", "data/#")
        on_b = sub(gws[1], "s-b", "data/#")
        pub_qos1(gws[0], "data/x", [b"hello"])
        for c in (on_up, on_a, on_b):
            p = c.read(10)
            while p.type != PUBLISH:
                p = c.read(10)
            topic, pid, _, payload = parse_publish(p)
            assert (topic, payload) == ("data/x", b"hello")
            c.send(bytes([PUBACK << 4, 2]) + struct.pack("!H", pid))
        time.sleep(1.0)
        for c in (on_up, on_a, on_b):
            with pytest.raises(TimeoutError):
                c.read(0.3)
    finally:
        for g in gws:
            g.stop()
        up.stop()


def test_an_in_rule_removed_while_stopped_is_unsubscribed_upstream(pair):
    # What the upstream session holds is remembered in the gateway's log: a
    # restart with the rule gone from the file still unsubscribes it.
    up, gw = pair(settings={"sys": {"interval": 1}})
    with_old = gw.bridge
    gw.bridge = with_old + '\n[[bridge.topic]]\npattern = "old/#"\ndirection = "in"\nqos = 1\n'
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    wait_upstream_subscriptions(up, 3)   # cmd/#, old/# and the watcher's
    gw.stop()
    gw.bridge = with_old
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected again")
    wait_upstream_subscriptions(up, 2)
    assert "upstream subscription 'old/#' no longer in the configuration: unsubscribing" in gw.log()
    # Forgotten once done: the next start has nothing to unsubscribe.
    gw.stop()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected a third time")
    wait_upstream_subscriptions(up, 2)
    assert "no longer in the configuration: unsubscribing" not in gw.log()


def test_check_config_warns_of_a_both_rule_over_v311_without_try_private(tmp_path):
    # The upstream sends each message back (no No Local, no bridge bit): every
    # local message would be published here twice.
    from conftest import _find_hato
    conf = tmp_path / "c.toml"
    rule = '[[bridge]]\nname = "site"\naddress = "127.0.0.1"\n{}\n\n[[bridge.topic]]\npattern = "plant/#"\ndirection = "both"\n'
    for extra, warned in (("try_private = false", True), ("try_private = true", False),
                          ('try_private = false\nprotocol = "mqttv5"', False)):
        conf.write_text(rule.format(extra))
        r = subprocess.run([_find_hato(), "--check-config", "--config", str(conf)], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0, r.stderr
        assert ("each arrives here twice" in r.stdout + r.stderr) == warned, (extra, r.stdout, r.stderr)
    # One pattern with two prefixes names only one side: it still loads (it
    # did before), with a warning that says how to write it.
    conf.write_text(rule.format("try_private = true") + 'local_prefix = "plant/"\nremote_prefix = "site/plant/"\n')
    r = subprocess.run([_find_hato(), "--check-config", "--config", str(conf)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    assert "is \"both\" with two different prefixes" in r.stdout + r.stderr, (r.stdout, r.stderr)


def _reload(gw, bridge, n):
    gw.bridge = bridge
    with open(os.path.join(gw.workdir, "broker.conf"), "w") as f:
        f.write(gw._hato_config())
    gw.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: gw.log().count("reload done") >= n, what="reload")


def test_a_bridge_removed_by_reload_keeps_its_backlog_but_queues_nothing_more(pair):
    # Its local session would otherwise keep its subscriptions and queue
    # every matching message for ever. A session expiry cap must not reach
    # the kept backlog either (a transient local CONNECT would give it one).
    up, gw = pair(gw_settings={"mqtt": {"max_session_expiry": 1}})
    upstream_goes_away(up, gw)
    pub_qos1(gw, "plant/a", [b"before-1", b"before-2"])
    configured = gw.bridge
    _reload(gw, "", 1)
    assert ("bridge site is not configured: its 1 local subscription(s) are removed, so nothing more is "
            "queued for it; its 2 queued message(s) stay") in gw.log()
    pub_qos1(gw, "plant/a", [b"after-1", b"after-2"])
    time.sleep(2.5)   # past the expiry cap
    up.start()
    s = sub(up, "up-sub", "site/gw/#", clean=False)
    _reload(gw, configured, 2)
    assert receive(s, 2) == [("site/gw/plant/a", b"before-1"), ("site/gw/plant/a", b"before-2")]
    with pytest.raises(Exception):   # nothing queued while it was removed
        receive(s, 1, timeout=1.5)
    pub_qos1(gw, "plant/a", [b"live"])   # subscribed again
    assert receive(s, 1) == [("site/gw/plant/a", b"live")]


def test_a_bridge_removed_while_stopped_keeps_its_backlog_but_queues_nothing_more(pair):
    # The same for a $bridge/<name> session recovered from the store with
    # no [[bridge]] at all configured.
    up, gw = pair()
    upstream_goes_away(up, gw)
    pub_qos1(gw, "plant/a", [b"before-1", b"before-2"])
    gw.stop()
    configured, gw.bridge = gw.bridge, ""
    gw.start()
    assert "bridge site is not configured: its 1 local subscription(s) are removed" in gw.log()
    pub_qos1(gw, "plant/a", [b"after-1", b"after-2"])
    gw.stop()
    up.start()
    s = sub(up, "up-sub", "site/gw/#", clean=False)
    gw.bridge = configured
    gw.start()
    assert receive(s, 2) == [("site/gw/plant/a", b"before-1"), ("site/gw/plant/a", b"before-2")]
    with pytest.raises(Exception):   # nothing queued while it was removed
        receive(s, 1, timeout=1.5)


def test_bridge_warnings_reach_the_log_at_start_and_at_reload(pair):
    # A service is started and reloaded without --check-config: what it
    # would have warned of is logged instead.
    up, gw = pair(gw_settings={"mqtt": {"retain_available": False}})
    gw.start()
    wait_for(lambda: "[mqtt] retain_available = false: upstream retained messages arrive here" in gw.log(),
             what="start-up warning")
    both = gw.bridge + '\n[[bridge.topic]]\npattern = "sync/#"\ndirection = "both"\n'
    _reload(gw, both, 1)
    assert "reload: bridge \"site\": rule 'sync/#' is \"both\" over v3.1.1 with try_private = false" in gw.log()


def test_a_reload_lowering_maximum_qos_and_turning_retain_off_keeps_the_bridge_flowing(pair):
    # The bridge's local session was allowed QoS 1 and retain by its CONNACK:
    # the reload applies to connections made after it, so nothing it sends is
    # refused (once, the refusal dropped the session and lost the message).
    up, gw = pair(gw_settings={"mqtt": {}})
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    local = sub(gw, "local-sub", "remote/#")
    state = sub(gw, "state-sub", "$SYS/broker/connection/site/state")
    pub_qos1(up, "cmd/x", [b"before"])
    assert receive(local, 1) == [("remote/cmd/x", b"before")]
    gw.settings["mqtt"].update({"maximum_qos": 0, "retain_available": False})
    _reload(gw, gw.bridge, 1)
    pub_qos1(up, "cmd/x", [b"after-1", b"after-2"])
    assert receive(local, 2) == [("remote/cmd/x", b"after-1"), ("remote/cmd/x", b"after-2")]
    assert "local broker closed" not in gw.log()
    receive(state, 1)   # "1", retained from before the reload
    up.stop()
    assert receive(state, 1) == [("$SYS/broker/connection/site/state", b"0")]


def _upstream_that_stops_reading(port):
    """Accepts one bridge session, answers its CONNECT and then never reads
    again: a WAN link that has stalled with the TCP connection still open.
    Returns (listening socket, list that receives the accepted socket)."""
    import socket, threading
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited: a small window
    ls.bind(("127.0.0.1", port))
    ls.listen(1)
    taken = []

    def serve():
        s, _ = ls.accept()
        taken.append(s)
        s.recv(4096)                      # CONNECT
        s.sendall(bytes([0x20, 2, 0, 0]))  # CONNACK, then silence

    threading.Thread(target=serve, daemon=True).start()
    return ls, taken


def test_a_stalled_upstream_holds_the_bridge_like_a_slow_client_memory_stays_bounded(backend, tmp_path):
    # QoS 0 for the bridge went onto the upstream socket's queue without any
    # bound: a stalled WAN link grew the gateway's memory with every message.
    # Now the bridge's output counts like a client's (max_output_bytes), and
    # past slow_consumer_ms its QoS 0 is dropped and counted.
    port = _free_port()
    ls, taken = _upstream_that_stops_reading(port)
    os.makedirs(tmp_path / "gw")
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv311", "try_private = false\nnotifications = false",
                 {"limits": {"max_output_bytes": 1024 * 1024}})
    gw.bridge = bridge_toml(port, "gw-test", 'protocol = "mqttv311"\nkeep_alive = 60\ntry_private = false\n'
                            'notifications = false', in_rule=False)
    try:
        gw.start()
        wait_for(lambda: "bridge site: connected" in gw.log(), "the bridge to connect", 10)
        time.sleep(0.3)
        with open(f"/proc/{gw.proc.pid}/status") as f:
            before = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        c = RawClient(gw)
        c.connect("telemetry")
        payload = b"x" * 16384
        packet = publish("plant/line1/vib", payload)
        sent, deadline = 0, time.monotonic() + 15
        while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:
            c.sock.sendall(packet * 16)
            sent += 16 * len(packet)
        # The publisher was never blocked for good: it is not the slow one.
        assert sent >= 64 * 1024 * 1024, sent
        c.send(bytes([0xC0, 0]))   # PINGREQ: everything before it was taken in
        c.expect(13)   # PINGRESP
        with open(f"/proc/{gw.proc.pid}/status") as f:
            after = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        grown_mb = (after - before) / 1024
        # Before: about the 64 MiB sent. Now: max_output_bytes and one
        # pass's worth of input, with room for allocator slack. Not under
        # AddressSanitizer: its quarantine keeps freed blocks resident, so RSS
        # grows with what passed through, not with what is held.
        if not sanitized(gw):
            assert grown_mb < 24, grown_mb
        wait_for(lambda: "'$bridge/site': the upstream link is slower" in gw.log(), "the slow-link report", 5)
        assert gw.log().count("the upstream link is slower") == 1, gw.log()   # once a minute at most
        c.close()
    finally:
        gw.stop()
        for s in taken:
            s.close()
        ls.close()


def _accept_upstream_session(ls, conns, session_present):
    """Accepts the bridge's next connection on `ls` and answers its CONNECT
    (v3.1.1) with or without a session; returns it as a RawClient."""
    s, _ = ls.accept()
    conns.append(s)
    peer = RawClient.__new__(RawClient)
    peer.sock, peer.buf = s, b""
    peer.expect(1)   # CONNECT
    peer.send(bytes([0x20, 2, 1 if session_present else 0, 0]))
    return peer


def test_an_outbound_qos2_message_past_pubrec_is_published_again_to_an_upstream_that_lost_its_session(backend, tmp_path):
    # An upstream that delivers QoS 2 at PUBREL (Mosquitto does) and comes
    # back without the bridge's session (restarted without persistence, or
    # the session expired) has forgotten a message whose PUBREL it had not
    # answered. The bridge sent the PUBREL again, the upstream answered
    # PUBCOMP, and the message was lost. Now the PUBLISH goes again.
    import socket
    port = _free_port()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(2)
    ls.settimeout(15)
    os.makedirs(tmp_path / "gw")
    gw = Gateway(backend, str(tmp_path / "gw"), port)
    gw.bridge = bridge_toml(port, "gw-test", 'protocol = "mqttv311"\nkeep_alive = 60\ntry_private = false\n'
                            'notifications = false', in_rule=False).replace("qos = 1", "qos = 2", 1)
    conns = []
    try:
        gw.start()
        up = _accept_upstream_session(ls, conns, False)
        c = RawClient(gw)
        c.connect("p")
        c.send(publish("plant/x", b"m1", qos=2, pid=1))
        c.expect(PUBREC)
        c.send(pubrel(1))
        c.expect(PUBCOMP)
        p = up.expect(PUBLISH, 10)
        assert (p.flags >> 1) & 3 == 2
        topic, pid, _, payload = parse_publish(p)
        assert (topic, payload) == ("site/gw/plant/x", b"m1")
        up.send(bytes([0x50, 2]) + struct.pack("!H", pid))   # PUBREC
        assert up.expect(PUBREL, 10).body == struct.pack("!H", pid)
        up.close()   # lost before its PUBCOMP, and the session with it

        up = _accept_upstream_session(ls, conns, False)
        p = up.expect(PUBLISH, 10)   # not the PUBREL
        assert p.flags & 0x08, "sent again: DUP"
        assert parse_publish(p)[3] == b"m1"
        pid = parse_publish(p)[1]
        up.send(bytes([0x50, 2]) + struct.pack("!H", pid))
        up.expect(PUBREL, 10)
        up.send(bytes([0x70, 2]) + struct.pack("!H", pid))   # PUBCOMP: the flow ends
        assert "1 QoS 2 message(s) it had not completed are sent again" in gw.log()
        up.close()   # the PUBCOMP is read before the close

        # Completed: a connection with the session kept gets nothing again.
        up = _accept_upstream_session(ls, conns, True)
        with pytest.raises(TimeoutError):
            up.read(1.0)
        c.close()
    finally:
        gw.stop()
        for s in conns:
            s.close()
        ls.close()
