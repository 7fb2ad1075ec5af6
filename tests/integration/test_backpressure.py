# Back-pressure instead of loss: publishers that write QoS 0 as fast as
# their sockets accept (hato-bench blast mode) lose nothing while the
# subscribers read, because a receiver over max_output_bytes stops the
# broker's intake until it drained. A subscriber that stops reading holds
# intake back for slow_consumer_ms at most; then only its own QoS 0 is
# dropped (counted), and everyone else still gets everything.
import os
import re
import socket
import subprocess
import time

import pytest

import raw_mqtt
from raw_mqtt import RawClient
from build_info import sanitized
from conftest import _find_hato
from metrics_util import metric, start_with_metrics

pytestmark = pytest.mark.hato_only("hato-bench blast against hato's back-pressure and metrics")

RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)


def _bench_bin():
    env = os.environ.get("HATO_BENCH")
    if env:
        return env
    hato = _find_hato()
    # build/src/app/hato -> build/bench/hato-bench
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(hato))))
    return os.path.join(build, "bench", "hato-bench")


@pytest.fixture
def bench():
    path = _bench_bin()
    if not os.access(path, os.X_OK):
        pytest.skip(f"hato-bench not found ({path}); set HATO_BENCH")
    return path


def _start(broker_factory, limits=None):
    settings = {"storage": {"sync": "off"}}
    if limits:
        settings["limits"] = limits
    return start_with_metrics(broker_factory, settings)


def _blast(bench, b, scenario, clients, seconds=2.0):
    argv = [bench, "--port", str(b.port), "--scenario", scenario, "--clients", str(clients),
            "--qos", "0", "--rate", "0", "--window", "0", "--duration", str(seconds), "--warmup", "0.3",
            "--metrics-port", str(b.metrics_port)]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 150)
    print(res.stdout, res.stderr)
    m = RESULT_RE.search(res.stdout)
    assert m, f"no RESULT line (exit {res.returncode}):\n{res.stdout}\n{res.stderr}"
    return dict(kv.split("=", 1) for kv in m.group(1).split())


# The subscribers are hato-bench's own loop, which also writes as fast as it
# can: on a loaded CI machine it may not be scheduled for a while. The hold
# is widened so that such a pause is not taken for a slow consumer here;
# the stopped-subscriber test below runs with the default.
BLAST_LIMITS = {"slow_consumer_ms": 3000}


@pytest.mark.parametrize("scenario,clients", [("pairs", 10), ("fanin", 100), ("fanout", 100)])
def test_blast_qos0_loses_nothing(broker_factory, bench, scenario, clients):
    b = _start(broker_factory, BLAST_LIMITS)
    r = _blast(bench, b, scenario, clients)
    # A sanitized broker's backlog can push every delivery of the measured
    # window past it; the rate still shows that messages flowed.
    assert int(r["received"]) > 0 or (sanitized(b) and float(r["rate"]) > 0), r
    assert r["lost"] == "0", r
    assert r["dup"] == "0", r
    assert r["ooo"] == "0", r
    assert r["broker_dropped"] == "0", r
    assert b.alive()


def test_a_subscriber_that_stops_reading_loses_only_its_own(broker_factory, bench):
    b = _start(broker_factory)
    stopped = RawClient(b)
    stopped.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stopped.connect("stopped")
    stopped.send(raw_mqtt.subscribe(1, "bench/all", qos=0))
    stopped.expect(raw_mqtt.SUBACK)
    # From here on it reads nothing. A sanitized broker forwards several
    # times slower: the blast runs longer so that the stopped subscriber's
    # share still outgrows the kernel's socket buffers and max_output_bytes.
    r = _blast(bench, b, "fanout", 10, seconds=8.0 if sanitized(b) else 2.0)
    assert int(r["received"]) > 0
    assert r["lost"] == "0", r
    assert r["dup"] == "0", r
    assert r["ooo"] == "0", r
    dropped = int(r["broker_dropped"])
    assert dropped > 0, r
    assert metric(b, "hato_qos0_dropped_total") >= dropped
    assert "slow consumer" in b.log()
    stopped.close()
    deadline = time.monotonic() + 5
    while "caught up or left" not in b.log():
        assert time.monotonic() < deadline, b.log()[-3000:]
        time.sleep(0.05)
    assert b.alive()
