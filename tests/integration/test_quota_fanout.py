# A QoS 1/2 message the store admits (it was not full when the message
# came) is stored whole, in every queue it reaches, even past
# [storage] max_bytes_mb. Cut at the quota, it would reach some
# subscribers while its publisher is told it was refused (v5 0x97), and a
# QoS 2 publisher that sends it again would give them a duplicate.

import time

import pytest

import raw_mqtt as r
from test_disk_full import _payload, _publish_v5, _tag

pytestmark = pytest.mark.hato_only("the append log's quota")

SUBSCRIBERS = [f"s{i}" for i in range(3)]


def _collect(broker, client_id, want, timeout=20):
    """The persistent subscriber comes back and completes what it gets until
    `want` arrived and nothing more came for a second; returns every tag."""
    c = r.RawClient(broker)
    assert c.connect(client_id, version=4, clean=False).body[0] & 1, "session not present"
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{client_id} missing {sorted(want - set(got))}"
        try:
            p = c.read(timeout=min(left, 1.0) if want.issubset(got) else left)
        except TimeoutError:
            if want.issubset(got):
                break
            raise AssertionError(f"{client_id} missing {sorted(want - set(got))}")
        if p.type == r.PUBLISH:
            _, pid, _, payload = r.parse_publish(p)
            got.append(_tag(payload))
            c.send(r.packet(r.PUBREC, 0, pid.to_bytes(2, "big")))
        elif p.type == r.PUBREL:
            c.send(r.packet(r.PUBCOMP, 0, p.body[:2]))
    c.close()
    return got


def test_a_message_refused_at_the_quota_reaches_no_subscriber(broker_factory, tmp_path):
    broker = broker_factory({
        "storage": {"dir": str(tmp_path / "data"), "segment_size_mb": 1, "sync": "always", "max_bytes_mb": 2},
        "limits": {"max_packet_size": 150_000, "max_queued_messages": 1000},
    })
    for sid in SUBSCRIBERS:
        c = r.RawClient(broker)
        c.connect(sid, version=4, clean=False)
        c.send(r.subscribe(1, "t/#", qos=2))
        c.expect(r.SUBACK)
        c.close()

    # Three 100 KB records a message: the quota (about 21 such records) falls
    # inside a message's fan-out.
    pub = r.RawClient(broker)
    pub.connect("pub", version=5)
    accepted, refused = [], []
    for i in range(40):
        tag = f"m{i}"
        if _publish_v5(pub, i + 1, tag, 2) == 0:
            accepted.append(tag)
        else:
            refused.append(tag)
            if len(refused) == 3:
                break
    pub.close()
    assert accepted and len(refused) == 3, (accepted, refused)

    for sid in SUBSCRIBERS:
        got = _collect(broker, sid, set(accepted))
        assert not set(got) & set(refused), f"{sid} got messages its publisher was refused: {got}"
        assert len(got) == len(set(got)), f"{sid} got a QoS 2 message twice: {got}"
