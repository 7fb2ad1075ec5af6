# A full disk is a normal operating condition: on a small tmpfs the test
# mounts itself (ENOSPC from fallocate), and likewise with [storage]
# max_bytes_mb reached, QoS 1/2 publishes go in until the store refuses them; every
# refused one got the refusal (v5 PUBACK/PUBREC 0x97, v3.1.1 disconnect
# without an ack), never a success. After a SIGKILL and a restart on the full
# store, the persistent subscriber gets in (its session is stored), receives
# every message that was acknowledged, and its acknowledgements free the
# space: new publishes are accepted again without a restart.
# Also: a configuration whose largest packet cannot fit in one segment is
# refused by --check-config, naming both keys with their positions.

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import raw_mqtt as r
from conftest import _find_hato

pytestmark = pytest.mark.hato_only("the append log's disk-full handling")

PAYLOAD = 100_000
SETTINGS_LIMITS = {"max_packet_size": 150_000, "max_queued_messages": 1000}


@pytest.fixture(params=["enospc", "max_bytes"])
def small_fs(request):
    """Storage settings of a store that fills up after about twenty messages
    of 100 KB. enospc: a 4 MiB tmpfs on a fresh directory, where the first
    segment, the two spare segments (the reserve) and one more fit. max_bytes:
    [storage] max_bytes_mb = 2 on the ordinary file system."""
    if request.param == "max_bytes":
        base = tempfile.mkdtemp(prefix="hato-maxbytes-")
        settings = _settings(base)
        settings["storage"]["max_bytes_mb"] = 2
        yield settings
        shutil.rmtree(base, ignore_errors=True)
        return
    base = tempfile.mkdtemp(prefix="hato-diskfull-")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", base],
                         capture_output=True, text=True)
    if res.returncode != 0:
        os.rmdir(base)
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield _settings(base)
    finally:
        subprocess.run(["umount", "-l", base], capture_output=True)
        os.rmdir(base)


def _settings(mnt):
    return {"storage": {"dir": os.path.join(mnt, "data"), "segment_size_mb": 1, "sync": "always"},
            "limits": dict(SETTINGS_LIMITS)}


def _payload(tag):
    head = tag.encode() + b"|"
    return head + b"x" * (PAYLOAD - len(head))


def _tag(payload):
    return payload.split(b"|", 1)[0].decode()


def _publish_v5(c, pid, tag, qos):
    """Returns the reason code of the PUBACK / PUBREC (and ends a QoS 2 flow)."""
    c.send(r.publish("t/m", _payload(tag), qos=qos, pid=pid, version=5))
    ack = c.expect(r.PUBACK if qos == 1 else r.PUBREC)
    assert int.from_bytes(ack.body[:2], "big") == pid
    reason = ack.body[2] if len(ack.body) > 2 else 0
    if qos == 2 and reason < 0x80:
        c.send(r.pubrel(pid))
        c.expect(r.PUBCOMP)
    return reason


def _fill_until_refused(broker, prefix, max_messages=80):
    """v5 publisher: alternating QoS 1 / QoS 2 until three refusals in a row.
    Returns (accepted tags, refused tags)."""
    c = r.RawClient(broker)
    c.connect(prefix, version=5)
    accepted, refused = [], []
    in_a_row = 0
    for i in range(max_messages):
        tag = f"{prefix}-{i}"
        reason = _publish_v5(c, i + 1, tag, 1 if i % 2 == 0 else 2)
        assert reason in (0x00, 0x97), f"{tag}: unexpected reason {reason:#x}"
        if reason == 0x97:
            refused.append(tag)
            in_a_row += 1
            if in_a_row == 3:
                break
        else:
            accepted.append(tag)
            in_a_row = 0
    c.close()
    return accepted, refused


def _v3_refused(broker, tag, qos, accepted, refused):
    """A v3.1.1 publisher on a full store is disconnected without an ack.
    Compaction on the broker's tick can free room after the store filled
    (the QoS 2 states and the session that ended leave dead records): a
    publish acknowledged then is one the store took, so it joins `accepted`
    and the store is filled again first (what that refuses joins `refused`).
    Returns the tag that was refused."""
    for attempt in range(4):
        t = f"{tag}-{attempt}"
        c = r.RawClient(broker)
        c.connect(t, version=4)
        c.send(r.publish("t/m", _payload(t), qos=qos, pid=1))
        try:
            p = c.read(timeout=10)   # TimeoutError: neither acknowledged nor closed
        except EOFError:
            c.close()
            return t
        assert p.type in (r.PUBACK, r.PUBREC), f"{t}: unexpected {p}"
        if p.type == r.PUBREC:
            c.send(r.packet(r.PUBREL, 2, (1).to_bytes(2, "big")))
            c.expect(r.PUBCOMP)
        c.close()
        accepted.append(t)
        more, more_refused = _fill_until_refused(broker, f"{t}-fill")
        accepted += more
        refused += more_refused
    raise AssertionError(f"{tag}: the store kept taking messages")


def _drain(broker, want, timeout=20):
    """The persistent v3.1.1 subscriber comes back and acknowledges what it
    gets until `want` (a set of tags) arrived; returns every tag received."""
    c = r.RawClient(broker)
    ack = c.connect("sub", version=4, clean=False)
    assert ack.body[0] & 1, "session not present after the restart"
    got = []
    deadline = time.monotonic() + timeout
    while not want.issubset(got):
        left = deadline - time.monotonic()
        assert left > 0, f"missing after the restart: {sorted(want - set(got))}"
        try:
            p = c.read(timeout=left)
        except TimeoutError:
            raise AssertionError(f"missing after the restart: {sorted(want - set(got))}")
        if p.type == r.PUBLISH:
            _, pid, _, payload = r.parse_publish(p)
            got.append(_tag(payload))
            qos = (p.flags >> 1) & 3
            if qos == 1:
                c.send(r.packet(r.PUBACK, 0, pid.to_bytes(2, "big")))
            elif qos == 2:
                c.send(r.packet(r.PUBREC, 0, pid.to_bytes(2, "big")))
        elif p.type == r.PUBREL:
            c.send(r.packet(r.PUBCOMP, 0, p.body[:2]))
    return c, got


def test_full_store_refuses_keeps_every_ack_and_drains(small_fs, broker_factory):
    broker = broker_factory(small_fs)
    sub = r.RawClient(broker)
    sub.connect("sub", version=4, clean=False)
    sub.send(r.subscribe(1, "t/#", qos=2))
    sub.expect(r.SUBACK)
    sub.close()

    accepted, refused = _fill_until_refused(broker, "a")
    assert accepted, "nothing was accepted before the store filled up"
    assert refused, "the store never refused"
    for tag, qos in (("v3q1", 1), ("v3q2", 2)):
        refused.append(_v3_refused(broker, tag, qos, accepted, refused))

    # QoS 0 still flows while the store is full.
    q0 = r.RawClient(broker)
    q0.connect("q0", version=5)
    q0.send(r.subscribe(1, "zero", qos=0, version=5))
    q0.expect(r.SUBACK)
    q0.send(r.publish("zero", b"still here", version=5))
    _, _, _, payload = r.parse_publish(q0.expect(r.PUBLISH), version=5)
    assert payload == b"still here"
    q0.close()
    log_before_kill = broker.log()

    broker.kill()
    broker.start()
    c, got = _drain(broker, set(accepted))
    assert not set(got) & set(refused), f"refused messages delivered: {got}"

    # The drained queue frees the space (compaction on the broker's tick):
    # accepted again without a restart, and delivered.
    pub = r.RawClient(broker)
    pub.connect("after", version=5)
    deadline = time.monotonic() + 20
    pid = 0
    while True:
        pid += 1
        if _publish_v5(pub, pid, f"after-{pid}", 1) == 0:
            break
        assert time.monotonic() < deadline, "still refused after the queue was drained"
        time.sleep(0.2)
    while True:
        p = c.read(timeout=10)
        if p.type == r.PUBLISH:
            _, rpid, _, payload = r.parse_publish(p)
            c.send(r.packet(r.PUBACK, 0, rpid.to_bytes(2, "big")))
            if _tag(payload) == f"after-{pid}":
                break
    pub.close()
    c.close()
    assert "store refused" in log_before_kill


def test_check_config_refuses_a_packet_size_that_cannot_fit_a_segment(tmp_path):
    hato = _find_hato()
    if not hato:
        pytest.skip("hato binary not found (set HATO_BIN)")
    conf = tmp_path / "hato.toml"
    conf.write_text("[limits]\nmax_packet_size = 1048576\n\n[storage]\nsegment_size_mb = 1\n")
    res = subprocess.run([hato, "--check-config", "--config", str(conf)], capture_output=True, text=True,
                         timeout=10)
    assert res.returncode != 0
    err = res.stderr
    assert f"{conf}:5:19: storage.segment_size_mb:" in err, err
    assert "limits.max_packet_size = 1048576 (line 2:19)" in err, err
    conf.write_text("[limits]\nmax_packet_size = 150000\n\n[storage]\nsegment_size_mb = 1\n")
    res = subprocess.run([hato, "--check-config", "--config", str(conf)], capture_output=True, text=True,
                         timeout=10)
    assert res.returncode == 0, res.stderr


def test_a_bridge_backlog_that_fills_the_store_gives_way_to_new_messages(small_fs, backend, tmp_path):
    # A WAN outage long enough for a bridge's backlog to fill the store
    # before its own max_queued_bytes: with when_full = "drop_oldest" the
    # oldest queued messages give way (docs/bridge.md), so local publishers
    # keep being accepted, and the newest messages reach the upstream once
    # it is back. (Before, every QoS 1/2 publish was refused from then on.)
    from bridge_util import Gateway, Upstream, sub, wait_for
    from conftest import _free_port

    port = _free_port()
    os.makedirs(tmp_path / "gw")
    os.makedirs(tmp_path / "up")
    settings = {k: dict(v) for k, v in small_fs.items()}
    gw = Gateway(backend, str(tmp_path / "gw"), port, "mqttv311",
                 "try_private = false\nnotifications = false\nmax_queued_bytes = 0", settings)
    up = Upstream(backend, str(tmp_path / "up"), port, {"limits": dict(SETTINGS_LIMITS)})
    try:
        # The cloud's session exists before the outage, so nothing the bridge
        # sends once the upstream is back can come before it subscribed.
        up.start()
        sub(up, "cloud", "site/gw/#", clean=False).close()
        up.stop()
        gw.start()
        pub = r.RawClient(gw)
        pub.connect("plc", version=5)
        accepted, refusals = [], 0
        for i in range(60):
            tag = f"m{i}"
            for attempt in range(30):   # a refusal lasts until the broker's next tick at most, and compaction
                if _publish_v5_topic(pub, i + 1, "plant/m", tag) == 0:
                    accepted.append(tag)
                    break
                refusals += 1
                time.sleep(0.1)
            else:
                pytest.fail(f"{tag} refused 30 times: the backlog never gave way\n{gw.log()}")
        pub.close()
        wait_for(lambda: "store full: the oldest" in gw.log(), "the drop report", 15)
        up.start()
        c = r.RawClient(up)
        c.connect("cloud", clean=False)
        newest, got = set(accepted[-10:]), []   # the newest are kept
        deadline = time.monotonic() + 40
        while not newest <= set(got) and time.monotonic() < deadline:
            try:
                p = c.read(1.0)
            except TimeoutError:
                continue
            if p.type == r.PUBLISH:
                _, pid, _, payload = r.parse_publish(p)
                got.append(_tag(payload))
                if pid is not None:
                    c.send(r.packet(r.PUBACK, 0, pid.to_bytes(2, "big")))
        assert newest <= set(got), (sorted(newest - set(got)), refusals)
        assert "m0" not in got   # the oldest gave way
        print(f"refusals {refusals}, upstream got {len(set(got))}")
    finally:
        gw.stop()
        up.stop()


def _publish_v5_topic(c, pid, topic, tag):
    c.send(r.publish(topic, _payload(tag), qos=1, pid=pid, version=5))
    ack = c.expect(r.PUBACK)
    return ack.body[2] if len(ack.body) > 2 else 0
