# Retained messages: set, replaced, deleted by an empty payload, delivered
# on subscribe with the retain flag (and without it to existing subscribers).

import pytest

from paho_client import VERSIONS, VERSION_IDS


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained_set_replace_delete(clients, version):
    pub = clients("pub-ret", version=version)
    pub.publish("ret/a", b"first", qos=1, retain=True)
    pub.publish("ret/a", b"second", qos=1, retain=True)   # replaces "first"
    pub.publish("ret/b", b"other", qos=1, retain=True)

    sub = clients("sub-ret", version=version)
    sub.subscribe("ret/#", 1)
    got = {m.topic: m for m in sub.expect(2)}
    assert got["ret/a"].payload == b"second" and got["ret/a"].retain
    assert got["ret/b"].payload == b"other" and got["ret/b"].retain
    sub.expect_none(0.3)

    # to a subscriber already there, a retained publish arrives without the flag
    # (v3.1.1 3.3.1.3; v5 unless Retain As Published)
    pub.publish("ret/a", b"third", qos=1, retain=True)
    live = sub.expect()
    assert (live.payload, live.retain) == (b"third", False)

    # an empty retained payload deletes the retained message and is
    # forwarded to current subscribers as a normal (empty) message
    pub.publish("ret/a", b"", qos=1, retain=True)
    assert sub.expect().payload == b""

    late = clients("sub-ret-late", version=version)
    late.subscribe("ret/#", 1)
    m = late.expect()
    assert (m.topic, m.payload, m.retain) == ("ret/b", b"other", True)
    late.expect_none()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained_qos_is_downgraded_to_subscription(clients, version):
    pub = clients("pub-retq", version=version)
    pub.publish("retq/x", b"q2", qos=2, retain=True)
    sub = clients("sub-retq", version=version)
    sub.subscribe("retq/x", 1)
    m = sub.expect()
    assert (m.payload, m.qos, m.retain) == (b"q2", 1, True)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_retained_matched_by_wildcards_on_subscribe(clients, version):
    pub = clients("pub-retw", version=version)
    for t in ["rw/1/x", "rw/2/x", "rw/2/y", "rw/3/x/deep"]:
        pub.publish(t, t.encode(), qos=1, retain=True)
    sub = clients("sub-retw", version=version)
    sub.subscribe("rw/+/x", 0)
    assert sorted(m.topic for m in sub.expect(2)) == ["rw/1/x", "rw/2/x"]
    sub.expect_none(0.3)
