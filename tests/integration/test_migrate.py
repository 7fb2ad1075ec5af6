# hato migrate on the corpus in tests/migrate/: every configuration converts
# and passes --check-config, --strict fails while a line is not mapped, and
# for the passwords + ACL setup the same clients see the same thing from
# Mosquitto with the original file and from hato with the converted one.

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import HATO_BIN, MOSQUITTO_BIN, TARGET, _can_connect, _free_port
from security_util import make_certs, mosquitto_passwd, tls_kwargs
from bridge_util import Gateway, Upstream, pub_qos1, receive, sub, wait_for

pytestmark = pytest.mark.hato_only("hato migrate is a hato command")

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "migrate")
CONFIGS = ["debian", "pi-tls", "bridge", "bridge-plain", "websockets-tls", "per-listener"]
WAIT = 10.0


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="hato-migrate-certs-")
    make_certs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="hato-migrate-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def stage(name, tmp, certs, edit=None):
    """Copies corpus configuration `name` into tmp with the system paths it
    names (/etc/mosquitto, /var/lib/mosquitto, ...) moved under tmp, and
    creates the files they point at. Returns the path of mosquitto.conf."""
    etc = os.path.join(tmp, "etc")
    os.makedirs(os.path.join(etc, "certs"))
    for d in ("data", "log", "run"):
        os.makedirs(os.path.join(tmp, d))
    for f in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(os.path.join(certs, f), os.path.join(etc, "certs", f))
    # the bridge's TLS files: --check-config loads them
    for src_name, f in (("ca.crt", "cloud-ca.crt"), ("server.crt", "gateway.crt"), ("server.key", "gateway.key")):
        shutil.copy(os.path.join(certs, src_name), os.path.join(etc, "certs", f))
    mosquitto_passwd(os.path.join(etc, "passwd"), "sensor", "s-pass", create=True)
    mosquitto_passwd(os.path.join(etc, "passwd"), "dashboard", "d-pass")
    src = os.path.join(CORPUS, name)
    shutil.copy(os.path.join(src, "acl") if os.path.exists(os.path.join(src, "acl"))
                else os.path.join(CORPUS, "pi-tls", "acl"), os.path.join(etc, "acl"))

    def moved(text):
        for old, new in (("/etc/mosquitto/", etc + "/"), ("/etc/mosquitto/conf.d", etc + "/conf.d"),
                         ("/var/lib/mosquitto/", tmp + "/data/"), ("/var/log/mosquitto/", tmp + "/log/"),
                         ("/run/mosquitto/", tmp + "/run/")):
            text = text.replace(old, new)
        return edit(text) if edit else text

    if os.path.isdir(os.path.join(src, "conf.d")):
        os.makedirs(os.path.join(etc, "conf.d"))
        for f in os.listdir(os.path.join(src, "conf.d")):
            with open(os.path.join(src, "conf.d", f)) as i, open(os.path.join(etc, "conf.d", f), "w") as o:
                o.write(moved(i.read()))
    with open(os.path.join(src, "mosquitto.conf")) as f:
        text = moved(f.read())
    path = os.path.join(etc, "mosquitto.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def hato(*args, timeout=30):
    return subprocess.run([HATO_BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", CONFIGS)
def test_corpus_converts_and_passes_check_config(name, tmp, certs):
    conf = stage(name, tmp, certs)
    out = os.path.join(tmp, "hato.toml")
    r = hato("migrate", conf, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "passes --check-config" in r.stderr
    with open(out) as f:
        text = f.read()
    assert text.startswith("# hato.toml converted by `hato migrate`")
    r = hato("--check-config", "--config", out)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr
    if name == "debian":  # conf.d was followed
        assert "conf.d/local.conf:2: listener 1883" in text


def test_strict_fails_while_a_line_is_not_mapped(tmp, certs):
    conf = stage("bridge", tmp, certs)
    r = hato("migrate", conf, "--strict")
    assert r.returncode == 1
    assert "# NOT MAPPED" in r.stdout and "connection cloud" in r.stdout   # written to stdout all the same
    assert "--strict: 1 line(s) not mapped" in r.stderr   # the bridge password, kept out of hato.toml
    assert "s3cret" not in r.stdout
    clean = os.path.join(tmp, "clean.conf")
    with open(clean, "w") as f:
        f.write("listener 1883 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {tmp}/data/\nautosave_interval 60\n")
    r = hato("migrate", clean, "--strict")
    assert r.returncode == 0, r.stderr
    assert "autosave_interval 60: not needed" in r.stdout


def test_check_errors_and_usage(tmp):
    conf = os.path.join(tmp, "broken.conf")
    with open(conf, "w") as f:
        f.write("listener 1883\npassword_file /nonexistent/passwd\n")
    r = hato("migrate", conf, "-o", os.path.join(tmp, "out.toml"))
    assert r.returncode == 1
    assert "does not pass --check-config" in r.stderr and "/nonexistent/passwd" in r.stderr
    assert os.path.exists(os.path.join(tmp, "out.toml"))  # written, to be edited
    assert hato("migrate").returncode == 2
    assert hato("migrate", conf, "--bogus").returncode == 2
    assert hato("migrate", os.path.join(tmp, "missing.conf")).returncode == 1


def test_check_reads_the_bridge_files_like_check_config(tmp):
    """The check after conversion is --check-config's: a bridge's CA file
    that cannot be read fails it (it once said "passes" all the same)."""
    conf = os.path.join(tmp, "bridge.conf")
    with open(conf, "w") as f:
        f.write("listener 1883 127.0.0.1\nallow_anonymous true\nconnection up\n"
                "address 127.0.0.1:1884\nbridge_cafile /nonexistent/ca.pem\ntopic # out 1\n")
    out = os.path.join(tmp, "out.toml")
    r = hato("migrate", conf, "-o", out)
    assert r.returncode == 1, r.stderr
    assert "does not pass --check-config" in r.stderr and "/nonexistent/ca.pem" in r.stderr
    assert "passes --check-config" not in r.stderr.replace("does not pass --check-config", "")
    assert hato("--check-config", "--config", out).returncode == 1


def test_converted_bridge_maps_the_same_topics_under_mosquittos_client_id(tmp, backend):
    """An empty pattern maps the prefix itself, out and in (the direction in
    any letter case, as Mosquitto reads it); without remote_clientid the
    upstream sees Mosquitto's default id, <hostname>.<connection name>."""
    port = _free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener 1883 127.0.0.1\nallow_anonymous true\nconnection site\naddress 127.0.0.1:{port}\n"
                "try_private false\nrestart_timeout 1\n"
                'topic "" OUT 1 single/local single/remote\ntopic "" In 1 single/in single/rin\n')
    out = os.path.join(tmp, "hato.toml")
    r = hato("migrate", conf, "-o", out, "--strict")
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        text = f.read()
    for d in ("up", "gw"):
        os.makedirs(os.path.join(tmp, d))
    up = Upstream(backend, os.path.join(tmp, "up"), port)
    gw = Gateway(backend, os.path.join(tmp, "gw"), port)
    gw.bridge = "\n" + text[text.index("[[bridge]]"):]
    try:
        up.start()
        state = f"$SYS/broker/connection/{socket.gethostname()}.site/state"
        watcher = sub(up, "watch", state)
        gw.start()
        wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
        assert receive(watcher, 1, 10) == [(state, b"1")]
        on_up = sub(up, "s-up", "single/#")
        pub_qos1(gw, "single/local", [b"out"])
        assert receive(on_up, 1, 10) == [("single/remote", b"out")]
        on_gw = sub(gw, "s-gw", "single/#")
        pub_qos1(up, "single/rin", [b"in"])
        assert receive(on_gw, 1, 10) == [("single/in", b"in")]
    finally:
        gw.stop()
        up.stop()
        up.release()


# ---- the same clients against Mosquitto and against hato ---------------------

def _connect(port, user=None, password=None, client_id="", tls_certs=None):
    """A connected MQTT 3.1.1 paho client, or the refusal: (client, rc)."""
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
    if tls_certs:
        c.tls_set(**tls_kwargs(tls_certs))
    if user is not None:
        c.username_pw_set(user, password)
    got = {"msgs": []}
    done = threading.Event()
    lock = threading.Lock()

    def on_connect(cl, userdata, flags, rc):
        got["rc"] = rc
        done.set()

    def on_message(cl, userdata, m):
        with lock:
            got["msgs"].append((m.topic, m.payload.decode()))

    c.on_connect = on_connect
    c.on_message = on_message
    c.on_disconnect = lambda *a: done.set()
    c.got = got
    try:
        c.connect("localhost" if tls_certs else "127.0.0.1", port, 30)
    except OSError:
        return None, None
    c.loop_start()
    done.wait(WAIT)
    rc = got.get("rc")
    if rc != 0:
        c.loop_stop()
        c.disconnect()
        return None, rc
    return c, 0


def _subscribe(c, *filters):
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe([(f, 1) for f in filters])
    assert done.wait(WAIT)


def _publish(c, topic, payload):
    c.publish(topic, payload, qos=1).wait_for_publish(WAIT)


def scenario(port, tls_port, certs):
    """What the clients of the Raspberry Pi setup see: which connections are
    accepted, and which messages each subscriber receives."""
    seen = {}
    seen["anonymous"] = _connect(port)[1] == 0
    seen["sensor, wrong password"] = _connect(port, "sensor", "nope")[1] == 0
    seen["unknown user"] = _connect(port, "intruder", "s-pass")[1] == 0
    dash, rc = _connect(port, "dashboard", "d-pass", client_id="dashboard")
    seen["dashboard"] = rc == 0
    sensor, rc = _connect(tls_port, "sensor", "s-pass", client_id="sensor", tls_certs=certs)
    seen["sensor over TLS"] = rc == 0
    assert dash and sensor
    _subscribe(dash, "home/#", "weather/#", "clients/dashboard/status")
    _subscribe(sensor, "home/commands/#", "home/sensors/#", "weather/#")
    # The sensor may write home/sensors/# only; the dashboard home/commands/#
    # and its own clients/%c/status.
    for topic, payload in (("home/sensors/temp", "21"), ("home/commands/door", "open"),
                           ("weather/today", "sun"), ("home/sensors/end", "end")):
        _publish(sensor, topic, payload)
    for topic, payload in (("home/commands/light", "on"), ("weather/today", "rain"),
                           ("home/sensors/temp", "forged"), ("clients/dashboard/status", "up")):
        _publish(dash, topic, payload)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if ("clients/dashboard/status", "up") in dash.got["msgs"] and ("home/commands/light", "on") in sensor.got["msgs"]:
            break
        time.sleep(0.02)
    time.sleep(0.3)  # anything that would (wrongly) still come
    seen["dashboard received"] = sorted(dash.got["msgs"])
    seen["sensor received"] = sorted(sensor.got["msgs"])
    for c in (dash, sensor):
        c.disconnect()
        c.loop_stop()
    return seen


def _wait_port(proc, port, log):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"broker exited:\n{open(log).read()}")
        if _can_connect("127.0.0.1", port):
            return
        time.sleep(0.05)
    raise AssertionError(f"broker not listening on {port}:\n{open(log).read()}")


def _run(argv, ports, log, certs):
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        for p in ports:
            _wait_port(proc, p, log)
        return scenario(ports[0], ports[1], certs)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not os.access(MOSQUITTO_BIN, os.X_OK), reason="needs Mosquitto")
def test_pi_setup_behaves_like_mosquitto(tmp, certs, backend):
    port, tls_port = _free_port(), _free_port()

    def on_free_ports(text):
        text = text.replace("listener 1883 localhost", f"listener {port} 127.0.0.1")
        text = text.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
        # Mosquitto started as root would switch to user mosquitto, who
        # cannot read the test's private directory.
        return text + ("user root\n" if os.geteuid() == 0 else "")

    conf = stage("pi-tls", tmp, certs, edit=on_free_ports)
    out = os.path.join(tmp, "hato.toml")
    r = hato("migrate", conf, "-o", out)
    assert r.returncode == 0, r.stderr

    mosq = _run([MOSQUITTO_BIN, "-c", conf], [port, tls_port], os.path.join(tmp, "mosquitto.log"), certs)
    ours = _run([HATO_BIN, "--config", out, "--backend", backend, "--data", os.path.join(tmp, "hato-data")],
                [port, tls_port], os.path.join(tmp, "hato.log"), certs)
    assert ours == mosq
    # and the scenario means something: refusals, deliveries and denials
    assert mosq["anonymous"] is False and mosq["sensor, wrong password"] is False
    assert mosq["dashboard"] is True and mosq["sensor over TLS"] is True
    assert ("home/sensors/temp", "21") in mosq["dashboard received"]
    assert ("home/commands/door", "open") not in mosq["dashboard received"]
    assert mosq["sensor received"] == [("home/commands/light", "on")]
