# Helpers for test_security.py: a broker with TLS listeners and [auth]
# settings, test certificates, the mosquitto command line clients and paho
# clients over TLS.

import os
import re
import signal
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as mqtt

from conftest import Broker, _toml_value
from paho_client import Client, V5, WAIT

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_CERTS = os.path.join(os.path.dirname(HERE), "certs", "make-certs.sh")
LISTENING_ALL_RE = re.compile(r"listening on (\S+):(\d+)")


def make_certs(directory):
    """CA, server (localhost), client (CN sensor-1) and rogue certificates."""
    subprocess.run(["bash", MAKE_CERTS, directory], check=True, timeout=60)
    return directory


class Endpoint:
    """What paho_client.Client needs from a broker: host and port."""

    def __init__(self, host, port):
        self.host = host
        self.port = port


class SecBroker(Broker):
    """A hato with its own [[listener]] list (each may carry a tls table).
    `listeners` is a list of dicts: address (default 127.0.0.1), tls (dict)."""

    def __init__(self, backend, workdir, settings, listeners):
        super().__init__(backend, workdir, settings)
        self.listeners = listeners
        self.ports = []

    def _hato_config(self):
        base = super()._hato_config()
        # Replace the one loopback listener the base writes with ours.
        default = '[[listener]]\naddress = "127.0.0.1"\nport = 0\n'
        assert default in base
        ours = []
        for l in self.listeners:
            ours += ["[[listener]]", f"address = {_toml_value(l.get('address', '127.0.0.1'))}", "port = 0"]
            if "tls" in l:
                kv = ", ".join(f"{k} = {_toml_value(v)}" for k, v in l["tls"].items())
                ours.append(f"tls = {{ {kv} }}")
        return base.replace(default, "\n".join(ours) + "\n")

    def _wait_ready(self):
        super()._wait_ready()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = LISTENING_ALL_RE.findall(self.log())
            if len(found) >= len(self.listeners):
                self.ports = [int(p) for _, p in found[-len(self.listeners):]]
                return
            time.sleep(0.02)
        raise RuntimeError("not every listener was reported:\n" + self.log())

    def endpoint(self, i):
        return Endpoint("127.0.0.1", self.ports[i])

    def reload(self, expect="reload"):
        """SIGHUP, then wait until the log shows a line containing `expect`
        that was not there before."""
        before = self.log().count(expect)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.log().count(expect) > before:
                return
            time.sleep(0.02)
        raise AssertionError(f"no {expect!r} in the log after SIGHUP:\n{self.log()[-3000:]}")


def tls_kwargs(certs, cert=None):
    """paho tls_set arguments: verify the server with the test CA, optionally
    present client certificate `cert` ("client" or "rogue")."""
    kw = {"ca_certs": os.path.join(certs, "ca.crt"), "tls_version": ssl.PROTOCOL_TLS_CLIENT}
    if cert:
        kw["certfile"] = os.path.join(certs, cert + ".crt")
        kw["keyfile"] = os.path.join(certs, cert + ".key")
    return kw


def client(endpoint, certs=None, cert=None, username=None, password=None, client_id="", version=V5,
           will=None):
    """A connected paho_client.Client (asserts CONNACK success)."""
    c = Client(endpoint, client_id=client_id, version=version, will=will, auto_connect=False)
    if certs:
        c.paho.tls_set(**tls_kwargs(certs, cert))
    if username is not None:
        c.paho.username_pw_set(username, password)
    c.connect()
    return c


def connack_code(endpoint, certs=None, cert=None, username=None, password=None, client_id="",
                 version=V5):
    """The CONNACK reason / return code the broker answers, or None when the
    connection failed before any CONNACK (TLS refused, connection closed)."""
    kw = {"protocol": version, "reconnect_on_failure": False}
    if version != V5:
        kw["clean_session"] = True
    c = mqtt.Client(client_id=client_id, **kw)
    if certs:
        c.tls_set(**tls_kwargs(certs, cert))
    if username is not None:
        c.username_pw_set(username, password)
    got = {}
    done = threading.Event()

    def on_connect(cl, userdata, flags, rc, properties=None):
        got["rc"] = rc.value if hasattr(rc, "value") else rc
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = lambda *a: done.set()
    try:
        c.connect(endpoint.host, endpoint.port, 60)
    except (OSError, ssl.SSLError):
        return None
    def loop():
        # With TLS 1.3 a refused client certificate shows up as an alert on
        # the first read, raised inside the network loop: that is a refusal.
        try:
            c.loop_forever()
        except (OSError, ssl.SSLError):
            done.set()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    done.wait(WAIT)
    try:
        c.disconnect()
    except Exception:
        pass
    t.join(WAIT)
    sock = c.socket()
    if sock:
        sock.close()
    return got.get("rc")


def mosquitto(tool, endpoint, args, certs=None, cert=None, timeout=WAIT):
    """Runs mosquitto_pub / mosquitto_sub; returns CompletedProcess."""
    argv = [tool, "-h", "localhost" if certs else endpoint.host, "-p", str(endpoint.port)]
    if certs:
        argv += ["--cafile", os.path.join(certs, "ca.crt")]
        if cert:
            argv += ["--cert", os.path.join(certs, cert + ".crt"), "--key", os.path.join(certs, cert + ".key")]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)


def start_mosquitto_sub(endpoint, args, certs=None, cert=None):
    """A mosquitto_sub running in the background (caller reads its output)."""
    argv = ["mosquitto_sub", "-h", "localhost" if certs else endpoint.host, "-p", str(endpoint.port)]
    if certs:
        argv += ["--cafile", os.path.join(certs, "ca.crt")]
        if cert:
            argv += ["--cert", os.path.join(certs, cert + ".crt"), "--key", os.path.join(certs, cert + ".key")]
    return subprocess.Popen(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def mosquitto_passwd(path, user, password, create=False):
    argv = ["mosquitto_passwd"] + (["-c"] if create else []) + ["-b", path, user, password]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)
