# Fixtures that start the broker under test: hato (default) or, with
# HATO_TEST_TARGET=mosquitto, Mosquitto, so the tests themselves can be
# validated against a known-good broker.
#
# Every test runs once per event backend ("backend" fixture). For mosquitto
# the backend is meaningless, so the tests run once under the id "mosquitto".

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

TARGET = os.environ.get("HATO_TEST_TARGET", "hato")
HATO_BIN = os.environ.get("HATO_BIN", "")
MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
START_TIMEOUT = 10.0
LISTENING_RE = re.compile(r"listening on (\S+):(\d+)")


def _backends():
    if TARGET == "mosquitto":
        return ["mosquitto"]
    wanted = os.environ.get("HATO_BACKENDS", "io_uring,epoll")
    return [b.strip() for b in re.split(r"[,\s]+", wanted) if b.strip()]


def _find_hato():
    if HATO_BIN:
        return HATO_BIN
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    for cand in (os.path.join(root, "build/src/app/hato"),):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which("hato") or ""


def pytest_configure(config):
    config.addinivalue_line("markers", "mosquitto_fails(reason): Mosquitto 2.0.11 lacks this; skipped for that target")
    config.addinivalue_line("markers", "hato_only(reason): needs a hato-only interface (storage, SIGKILL recovery)")


def _shard():
    """HATO_SHARD=k/n: this run takes the k-th of n shares of the suite, so
    CI can run shares side by side (the tests mostly wait)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", os.environ.get("HATO_SHARD", ""))
    if not m:
        return None
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise pytest.UsageError(f"HATO_SHARD={k}/{n}: k must be 1..n")
    return k - 1, n


def _shares_fixtures(module):
    """Whether the module defines a fixture that outlives a test (a RabbitMQ
    node, certificates): its tests stay in one share, set up once."""
    for value in vars(module).values():
        marker = getattr(value, "_pytestfixturefunction", None)
        if marker is not None and marker.scope != "function":
            return True
    return False


def _keep_shard(config, items):
    shard = _shard()
    if shard is None:
        return
    k, n = shard
    groups = {}   # in collection order
    for item in items:
        key = item.module.__name__ if _shares_fixtures(item.module) else item.nodeid
        groups.setdefault(key, []).append(item)
    # Largest first, each to the least loaded share: the whole modules
    # spread out, then single tests even the counts, neighbours in a file
    # (alike in cost) landing in turn on each share.
    load, share_of = [0] * n, {}
    for key in sorted(groups, key=lambda g: -len(groups[g])):
        share = min(range(n), key=lambda i: load[i])
        share_of[key] = share
        load[share] += len(groups[key])
    keep = [item for key, group in groups.items() if share_of[key] == k for item in group]
    drop = [item for key, group in groups.items() if share_of[key] != k for item in group]
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


def pytest_collection_modifyitems(config, items):
    _keep_shard(config, items)
    if TARGET != "mosquitto":
        return
    for item in items:
        for name in ("mosquitto_fails", "hato_only"):
            mark = item.get_closest_marker(name)
            if mark is not None:
                why = mark.args[0] if mark.args else name
                item.add_marker(pytest.mark.skip(reason=f"mosquitto target: {why}"))


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


# mosquitto.conf equivalents of the hato keys the tests use; keys with no
# equivalent are ignored for that target (tests needing them are marked).
_MOSQ_KEYS = {
    ("limits", "max_packet_size"): "max_packet_size",
    ("limits", "max_inflight"): "max_inflight_messages",
    ("limits", "max_queued_messages"): "max_queued_messages",
    ("limits", "max_queued_bytes"): "max_queued_bytes",
    ("mqtt", "server_keep_alive"): "max_keepalive",
    ("mqtt", "maximum_qos"): "max_qos",
    ("mqtt", "topic_alias_maximum"): "max_topic_alias",
}


class Broker:
    """One broker process, restartable on the same data directory."""

    def __init__(self, backend, workdir, settings):
        self.backend = backend
        self.workdir = workdir
        self.settings = settings
        self.data_dir = os.path.join(workdir, "data")
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.starts = 0
        self.log_path = None

    # -- configuration ---------------------------------------------------
    def _hato_config(self):
        s = {k: dict(v) for k, v in self.settings.items()}
        s.setdefault("storage", {}).setdefault("enabled", True)
        s["storage"].setdefault("dir", self.data_dir)
        s["storage"].setdefault("sync", "always")
        s.setdefault("log", {}).setdefault("level", "info")
        lines = ["[broker]", f'event_backend = "{self.backend}"', "",
                 "[[listener]]", 'address = "127.0.0.1"', "port = 0", ""]
        for table, kv in s.items():
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in kv.items()]
            lines.append("")
        return "\n".join(lines)

    def _mosquitto_config(self, port):
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "user root",
                 "log_dest stderr", "log_type all"]
        if self.settings.get("storage", {}).get("enabled"):
            # saved on SIGTERM only: enough for the clean-restart tests
            os.makedirs(self.data_dir, exist_ok=True)
            lines += ["persistence true", f"persistence_location {self.data_dir}/"]
        else:
            lines.append("persistence false")
        for table, kv in self.settings.items():
            for k, v in kv.items():
                key = _MOSQ_KEYS.get((table, k))
                if key:
                    lines.append(f"{key} {_toml_value(v).strip(chr(34))}")
        if "max_queued_messages" not in "\n".join(lines):
            lines.append("max_queued_messages 10000")
        return "\n".join(lines) + "\n"

    # -- process control -------------------------------------------------
    def start(self):
        assert self.proc is None, "already running"
        self.starts += 1
        self.log_path = os.path.join(self.workdir, f"broker-{self.starts}.log")
        log = open(self.log_path, "wb")
        conf = os.path.join(self.workdir, "broker.conf")
        if TARGET == "mosquitto":
            self.port = _free_port()
            with open(conf, "w") as f:
                f.write(self._mosquitto_config(self.port))
            argv = [MOSQUITTO_BIN, "-c", conf]
        else:
            with open(conf, "w") as f:
                f.write(self._hato_config())
            argv = [_find_hato(), "-c", conf, "--backend", self.backend]
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.log()
                # Only a kernel without io_uring skips; any other failure to
                # start (a bad configuration, a crash) fails as on epoll.
                if (TARGET != "mosquitto" and self.backend == "io_uring" and self.starts == 1
                        and "event backend io_uring:" in out):
                    self.proc = None
                    pytest.skip(f"io_uring backend unavailable: {out.strip()[-300:]}")
                raise RuntimeError(f"broker exited with {self.proc.returncode} at start:\n{out}")
            if TARGET == "mosquitto":
                if _can_connect(self.host, self.port):
                    return
            else:
                m = LISTENING_RE.search(self.log())
                if m:
                    self.port = int(m.group(2))
                    return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"broker not ready within {START_TIMEOUT}s:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit code (SIGKILL if it hangs)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise AssertionError("broker did not exit within %ss of SIGTERM" % timeout)
        return proc.returncode

    def kill(self):
        """SIGKILL, the crash of the durability tests."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(params=_backends())
def backend(request):
    return request.param


@pytest.fixture
def broker_factory(backend, request):
    """Returns start(settings=None) -> Broker; settings are TOML tables,
    e.g. {"limits": {"max_packet_size": 1000}}. Every broker is stopped at
    the end of the test, and its log printed if the test failed."""
    if TARGET != "mosquitto":
        if HATO_BIN and not os.access(HATO_BIN, os.X_OK):
            pytest.fail(f"HATO_BIN={HATO_BIN} is not an executable file")
        if not _find_hato():
            pytest.skip("hato binary not found (set HATO_BIN)")
    started = []
    workdirs = []

    def start(settings=None):
        workdir = tempfile.mkdtemp(prefix="hato-it-")
        workdirs.append(workdir)
        b = Broker(backend, workdir, settings or {})
        started.append(b)
        return b.start()

    yield start
    failed = []
    for b in started:
        try:
            code = b.stop()
            # a clean SIGTERM shutdown exits 0 (also catches sanitizer reports at exit)
            if code not in (None, 0):
                failed.append(f"broker exited with {code} on SIGTERM:\n{b.log()[-3000:]}")
        except AssertionError as e:
            failed.append(str(e))
        finally:
            b.kill()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for b in started:
            print(f"----- broker log ({b.log_path}) -----\n{b.log()[-6000:]}")
    for w in workdirs:
        shutil.rmtree(w, ignore_errors=True)
    if failed:
        pytest.fail("; ".join(failed))


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture(autouse=True)
def _free_store_files(request):
    """Brokers a test starts under its tmp_path preallocate their segments
    (64 MiB each by default, two spares besides): their files go once the
    test is over (logs and everything else stay), or a run's tmp_paths,
    which pytest keeps, would take tens of GB."""
    yield
    root = request.node.funcargs.get("tmp_path")
    if root is None:
        return
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".seg") or f.startswith("reserve.spare"):
                try:
                    os.unlink(os.path.join(dirpath, f))
                except OSError:
                    pass


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_report_header(config):
    return f"broker target: {TARGET} ({_find_hato() if TARGET != 'mosquitto' else MOSQUITTO_BIN}); backends: {_backends()}"


@pytest.fixture
def clients(request, backend):
    """clients(client_id=..., version=..., ...) -> connected paho Client on
    the `broker` fixture (started on first use); pass broker=other for a
    broker from broker_factory. All closed at the end of the test."""
    from paho_client import Clients
    made = Clients(lambda: request.getfixturevalue("broker"))
    yield made
    made.close_all()


@pytest.fixture
def raw(request, backend):
    """raw(broker=None) -> raw_mqtt.RawClient connected by TCP (no CONNECT
    sent yet); closed at the end of the test."""
    from raw_mqtt import RawClient
    made = []

    def make(broker=None):
        c = RawClient(broker or request.getfixturevalue("broker"))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
