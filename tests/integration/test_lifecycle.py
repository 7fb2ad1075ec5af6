# Process lifecycle: clean shutdown on SIGTERM with clients connected, MQTT
# 3.1 clients, many connections at once.

import paho.mqtt.client as mqtt

import raw_mqtt
from paho_client import V5


def test_sigterm_exits_cleanly_with_clients_connected(broker_factory, clients, raw):
    b = broker_factory()
    sub = clients("term-sub", broker=b, version=V5)
    sub.subscribe("term/#", 1)
    idle = raw(b)
    idle.connect("term-raw")
    code = b.stop(timeout=10)
    assert code == 0, f"exit code {code} on SIGTERM\n{b.log()[-2000:]}"
    idle.wait_closed(timeout=5)
    sub.wait_disconnect()


def test_mqtt31_client(clients):
    sub = clients("v31-sub", version=mqtt.MQTTv31)
    sub.subscribe("v31/t", 2)
    pub = clients("v31-pub", version=mqtt.MQTTv31)
    for qos in (0, 1, 2):
        pub.publish("v31/t", f"q{qos}".encode(), qos=qos)
    assert [(m.payload, m.qos) for m in sub.expect(3)] == [(b"q0", 0), (b"q1", 1), (b"q2", 2)]


def test_mqtt31_client_id_longer_than_23_bytes_accepted_or_refused_cleanly(raw):
    conn = raw()
    conn.send(raw_mqtt.connect("x" * 30, version=3))
    try:
        ack = conn.read()
    except EOFError:
        return   # closing is allowed too
    assert ack.type == raw_mqtt.CONNACK and ack.body[1] in (0, 2), ack


def test_many_connections(clients, raw):
    conns = []
    for i in range(200):
        c = raw()
        c.send(raw_mqtt.connect(f"many-{i}", keepalive=60))
        conns.append(c)
    for c in conns:
        ack = c.expect(raw_mqtt.CONNACK)
        assert ack.body[1] == 0
    # all still served
    sub = clients("many-sub")
    sub.subscribe("many/t", 0)
    for c in conns[::50]:
        c.send(raw_mqtt.publish("many/t", b"hello", qos=1, pid=1))
        c.expect(raw_mqtt.PUBACK)
    assert len(sub.expect_list(4)) == 4


def test_a_second_hato_on_a_live_store_refuses_to_start_and_loses_nothing(broker_factory, raw):
    # Started beside the service (the README's command on a gateway that
    # runs the package), a second hato cut the live segment's tail before
    # it failed to bind the port: acknowledged messages were lost.
    import os
    import subprocess
    from conftest import TARGET, _find_hato
    if TARGET == "mosquitto":
        import pytest
        pytest.skip("hato's store")
    b = broker_factory()
    sub = raw(b)
    sub.connect("keeper", clean=False)
    sub.send(raw_mqtt.subscribe(1, "keep/#", 1))
    sub.expect(raw_mqtt.SUBACK)
    sub.close()
    pub = raw(b)
    pub.connect("writer")
    for i in range(200):
        pub.send(raw_mqtt.publish("keep/x", str(i).encode(), qos=1, pid=i + 1))
        pub.expect(raw_mqtt.PUBACK)
    conf = os.path.join(b.workdir, "broker.conf")
    second = subprocess.run([_find_hato(), "-c", conf], capture_output=True, text=True, timeout=20)
    assert second.returncode != 0
    assert "is in use by another hato" in second.stdout + second.stderr, second.stdout + second.stderr
    b.stop()
    b.start()
    back = raw(b)
    back.connect("keeper", clean=False)
    got = []
    for _ in range(200):
        _, pid, _, payload = raw_mqtt.parse_publish(back.expect(raw_mqtt.PUBLISH))
        got.append(payload)
        back.send(raw_mqtt.packet(raw_mqtt.PUBACK, 0, pid.to_bytes(2, "big")))
    assert got == [str(i).encode() for i in range(200)]


def test_under_systemd_each_log_line_carries_its_journal_priority(tmp_path):
    # journald took every line at "info": `journalctl -p err` showed nothing,
    # not even "store: a sync failed ... Stopping".
    import os
    import subprocess
    import time
    from conftest import TARGET, _find_hato
    if TARGET == "mosquitto":
        import pytest
        pytest.skip("hato's log")
    conf = tmp_path / "h.toml"
    conf.write_text('[[listener]]\naddress = "127.0.0.1"\nport = 0\n[storage]\nenabled = false\n'
                    '[[listener]]\naddress = "192.0.2.1"\nport = 1883\n')   # not this machine's: an error line
    r, w = os.pipe()
    st = os.fstat(w)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    p = subprocess.Popen([_find_hato(), "--config", str(conf)], stdout=w, stderr=w, env=env)
    os.close(w)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    lines = out.decode().splitlines()
    assert lines and all(l[:3] in ("<3>", "<4>", "<6>", "<7>") for l in lines), lines
    assert any(l.startswith("<6>") and " info " in l for l in lines), lines
    assert any(l.startswith("<3>") and " error " in l for l in lines), lines
