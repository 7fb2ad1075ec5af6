# A broker with its metrics endpoint on a free port, and one sample read
# from it: shared by the tests that check a counter the broker exports.
import re
import socket
import time

from conftest import _free_port

METRICS_RE = re.compile(r"metrics on http://(\S+):(\d+)/metrics")


def start_with_metrics(broker_factory, settings=None):
    """Starts a broker with `settings` plus [metrics] on a free port; sets
    b.metrics_port once the broker logged where it listens."""
    s = {k: dict(v) for k, v in (settings or {}).items()}
    s["metrics"] = metrics_settings()
    return find_metrics_port(broker_factory(s))


def metrics_settings():
    """The [metrics] table of a broker whose endpoint find_metrics_port finds."""
    return {"address": "127.0.0.1", "port": _free_port()}


def find_metrics_port(b):
    """Sets b.metrics_port once the started broker `b` logged where it listens."""
    deadline = time.monotonic() + 5
    while not METRICS_RE.search(b.log()):
        assert time.monotonic() < deadline, f"no metrics line in the log:\n{b.log()}"
        time.sleep(0.02)
    b.metrics_port = int(METRICS_RE.search(b.log()).group(2))
    return b


def metric(b, name):
    """The value of the sample `name` (an integer); `name` may carry labels."""
    with socket.create_connection(("127.0.0.1", b.metrics_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\d+)", data, re.M)
    assert m, data[-2000:]
    return int(m.group(1))
