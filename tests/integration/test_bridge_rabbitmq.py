# A bridge out to RabbitMQ (Debian's rabbitmq-server 3.10 with its MQTT
# plugin), the clustered engine a gateway fleet feeds: the test starts a
# one-off node on free ports (rabbitmq_node.py) and stops it. QoS 1 messages
# acknowledged by the gateway, while RabbitMQ is up and across an outage of
# the gateway's link, reach a subscriber on RabbitMQ. Skipped when the
# package is missing or the node does not start within 60 s.

import os

import pytest

from conftest import TARGET, Broker
from raw_mqtt import SUBACK, RawClient, subscribe
from rabbitmq_node import RabbitNode, available
from bridge_util import Gateway, pub_qos1, receive, wait_for

pytestmark = [pytest.mark.skipif(TARGET == "mosquitto", reason="hato's [[bridge]] configuration"),
              pytest.mark.skipif(not available(), reason="rabbitmq-server (Debian package) not installed")]


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    node = RabbitNode(str(tmp_path_factory.mktemp("rabbit")))
    try:
        if not node.start(60.0):
            pytest.skip("RabbitMQ did not start within 60 s:\n" + node.output())
        yield node
    finally:
        node.stop()


def test_bridge_to_rabbitmq_carries_qos1(backend, tmp_path, rabbit):
    os.makedirs(tmp_path / "gw")
    # RabbitMQ speaks MQTT 3.1.1 and refuses the bridge bit.
    gw = Gateway(backend, str(tmp_path / "gw"), rabbit.mqtt_port, "mqttv311",
                 f'try_private = false\nclient_id = "gw-{backend}"')
    gw.bridge = gw.bridge.replace('client_id = "gw-test"\n', "")
    up = Broker(backend, str(tmp_path), {})
    up.port = rabbit.mqtt_port
    s = RawClient(up)
    s.connect(f"rabbit-sub-{backend}", clean=True)
    s.send(subscribe(1, "site/gw/#", 1))
    s.expect(SUBACK)
    try:
        gw.start()
        wait_for(lambda: gw.connected_count() >= 1, timeout=20, what="bridge connected to RabbitMQ")
        n = 50
        payloads = [f"r{i:03d}".encode() for i in range(n)]
        pub_qos1(gw, "plant/rabbit", payloads)
        got = receive(s, n, 20)
        assert [p for _, p in got] == payloads
        assert all(t == "site/gw/plant/rabbit" for t, _ in got)
    finally:
        gw.stop()
        s.close()
