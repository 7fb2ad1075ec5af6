# A bridge to a local port nobody listens on can reach itself: when the
# kernel picks that same port as the connection's source, TCP's simultaneous
# open connects the socket to itself. The gateway must count that as a
# failed connect and retry, not talk MQTT to its own CONNECT until the
# set-up timeout. A private network namespace whose source ports are 40000
# and 40001 only makes it happen on every other attempt.

import os
import shutil
import subprocess
import time

import pytest

from conftest import TARGET, _find_hato
from bridge_util import bridge_toml

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's [[bridge]] configuration")

HERE = os.path.dirname(os.path.abspath(__file__))


def test_a_bridge_that_reaches_itself_counts_a_failed_connect(backend, tmp_path):
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        pytest.skip("needs root and unshare(1) for a private network namespace")
    conf = tmp_path / "gw.toml"
    conf.write_text(f"""
[broker]
event_backend = "{backend}"

[[listener]]
address = "127.0.0.1"
port = 1883

[storage]
enabled = true
dir = "{tmp_path / 'data'}"

[log]
level = "info"
""" + bridge_toml(40000, "gw-self", 'protocol = "mqttv311"\nkeep_alive = 30\ntry_private = false'))
    log_path = tmp_path / "gw.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([unshare, "-n", "/usr/bin/python3", os.path.join(HERE, "netns_exec.py"),
                                 "40000", "40001", _find_hato(), "-c", str(conf), "--backend", backend],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline and proc.poll() is None:
            text = log_path.read_text(errors="replace")
            if text.count("bridge site: connect to 127.0.0.1:40000 failed") >= 4:
                break
            time.sleep(0.05)
        if proc.poll() is not None and "unshare" in text:
            pytest.skip(f"no private network namespace here: {text[-300:]}")
        assert "the connection reached itself" in text, text[-2000:]
        assert text.count("bridge site: connect to 127.0.0.1:40000 failed") >= 4, text[-2000:]
        assert "bridge site: connected to" not in text, text[-2000:]
    finally:
        proc.terminate()
        proc.wait(10)
