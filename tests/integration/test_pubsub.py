# Publish/subscribe basics: the README smoke test with the mosquitto
# command-line clients, QoS 0/1/2 with paho for both versions, wildcards.

import subprocess

import pytest

from paho_client import VERSIONS, VERSION_IDS

CLI_TIMEOUT = 10


def test_readme_smoke_mosquitto_clients(broker):
    # mosquitto_sub -t '#' -v ; mosquitto_pub -t a/b -m hi -q 2
    sub = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
                            "-t", "#", "-v", "-C", "1", "-W", str(CLI_TIMEOUT), "-q", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # mosquitto_sub cannot say when it has subscribed: publish until it
        # has printed something (bounded), retaining nothing.
        out = b""
        for _ in range(20):
            pub = subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port),
                                  "-t", "a/b", "-m", "hi", "-q", "2"],
                                 capture_output=True, timeout=CLI_TIMEOUT)
            assert pub.returncode == 0, pub.stderr
            try:
                out, err = sub.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        assert sub.returncode == 0, err
        assert out == b"a/b hi\n"
    finally:
        sub.kill()
        sub.wait()


def test_mosquitto_pub_v5_retained_then_sub(broker):
    pub = subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
                          "-t", "smoke/retained", "-m", "kept", "-q", "1", "-r"],
                         capture_output=True, timeout=CLI_TIMEOUT)
    assert pub.returncode == 0, pub.stderr
    sub = subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5",
                          "-t", "smoke/#", "-v", "-C", "1", "-W", str(CLI_TIMEOUT)],
                         capture_output=True, timeout=CLI_TIMEOUT + 5)
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout == b"smoke/retained kept\n"


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_qos_round_trip(clients, version, qos):
    sub = clients("sub-qos", version=version)
    granted = sub.subscribe("qos/test", qos)
    pub = clients("pub-qos", version=version)
    payloads = [f"m{i}".encode() for i in range(20)]
    for p in payloads:
        pub.publish("qos/test", p, qos=qos)
    got = sub.expect(len(payloads))
    # one publisher, one subscriber: order is kept for every QoS
    assert [m.payload for m in got] == payloads
    assert all(m.qos == qos and m.topic == "qos/test" and not m.retain for m in got)
    assert granted is not None
    sub.expect_none(0.3)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_delivered_qos_is_min_of_publish_and_subscription(clients, version):
    sub = clients("sub-min", version=version)
    sub.subscribe("min/q1", 1)
    pub = clients("pub-min", version=version)
    pub.publish("min/q1", b"two", qos=2)
    pub.publish("min/q1", b"zero", qos=0)
    a, b = sub.expect(2)
    assert (a.payload, a.qos) == (b"two", 1)
    assert (b.payload, b.qos) == (b"zero", 0)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_wildcards(clients, version):
    sub = clients("sub-wild", version=version)
    sub.subscribe("w/+/c", 1)
    pub = clients("pub-wild", version=version)
    for t in ["w/b/c", "w/x/c", "w/b/c/d", "w/c", "w//c", "x/b/c"]:
        pub.publish(t, t.encode(), qos=1)
    got = sorted(m.topic for m in sub.expect(3))
    assert got == ["w//c", "w/b/c", "w/x/c"]
    sub.expect_none(0.3)

    sub2 = clients("sub-hash", version=version)
    sub2.subscribe("h/#", 1)
    for t in ["h", "h/a", "h/a/b/c", "hx/a", "x/h/a"]:
        pub.publish(t, t.encode(), qos=1)
    # "h/#" also matches the parent level "h"
    got = sorted(m.topic for m in sub2.expect(3))
    assert got == ["h", "h/a", "h/a/b/c"]
    sub2.expect_none(0.3)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_dollar_topics_not_matched_by_leading_wildcards(clients, version):
    hash_sub = clients("sub-dollar-hash", version=version)
    hash_sub.subscribe("#", 0)
    plus_sub = clients("sub-dollar-plus", version=version)
    plus_sub.subscribe("+/x", 0)
    explicit = clients("sub-dollar-explicit", version=version)
    explicit.subscribe("$test/#", 0)
    pub = clients("pub-dollar", version=version)
    pub.publish("$test/x", b"dollar", qos=1)
    pub.publish("plain/x", b"plain", qos=1)
    m = explicit.expect()
    assert (m.topic, m.payload) == ("$test/x", b"dollar")
    # "$test/x" published first: if a wildcard matched it, it would come first
    assert hash_sub.expect().topic == "plain/x"
    assert plus_sub.expect().topic == "plain/x"
    hash_sub.expect_none(0.3)
    plus_sub.expect_none(0.1)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS)
def test_unsubscribe_stops_delivery(clients, version):
    sub = clients("sub-unsub", version=version)
    sub.subscribe("u/t", 1)
    pub = clients("pub-unsub", version=version)
    pub.publish("u/t", b"before", qos=1)
    assert sub.expect().payload == b"before"
    sub.unsubscribe("u/t")
    pub.publish("u/t", b"after", qos=1)
    sub.expect_none()
