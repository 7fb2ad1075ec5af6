# The [metrics] HTTP endpoint: /metrics values after a known scenario (and
# promtool's verdict on the format), /healthz (200, and 503 while the store
# refuses writes), the status page and its JSON, bad HTTP answered with
# 400/405/408/431/505 and a close while MQTT keeps being served, and a
# screenshot of the status page by Debian's headless chromium.

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import raw_mqtt as r
from metrics_util import start_with_metrics

pytestmark = pytest.mark.hato_only("the [metrics] endpoint is hato's")

N_CLIENTS = 3
M_MESSAGES = 5


def _start(broker_factory, settings=None, connect_timeout_ms=None):
    s = {k: dict(v) for k, v in (settings or {}).items()}
    if connect_timeout_ms:
        s.setdefault("limits", {})["connect_timeout_ms"] = connect_timeout_ms
    return start_with_metrics(broker_factory, s)


def _get(b, path, timeout=10):
    """(status, content type, body text) of GET path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}{path}", timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def _samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def _raw_http(b, data, timeout=10, pause=None):
    """Sends `data` (a list of chunks: one send each, `pause` seconds apart)
    on a fresh connection and reads until the server closes. Returns the
    status code of the answer (None without one) and the elapsed time."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", b.metrics_port), timeout=timeout) as s:
        for chunk in data:
            try:
                s.sendall(chunk)
            except OSError:
                break
            if pause:
                time.sleep(pause)
        got = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            got += part
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", got)
    return (int(m.group(1)) if m else None), time.monotonic() - t0, got


def _scenario(clients):
    """N clients (one persistent subscriber, N-1 publishers); M QoS 1 messages in all."""
    sub = clients(client_id="m-sub", clean=False)  # persistent: its deliveries are stored
    sub.subscribe("m/#", qos=1)
    pubs = [clients(client_id=f"m-pub{i}") for i in range(N_CLIENTS - 1)]
    for i in range(M_MESSAGES):
        pubs[i % len(pubs)].publish(f"m/{i}", b"x" * 10, qos=1)
    sub.expect_list(M_MESSAGES)


def test_metrics_values_after_a_known_scenario(broker_factory, clients):
    b = _start(broker_factory)
    _scenario(lambda **kw: clients(broker=b, **kw))
    status, ctype, text = _get(b, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    m = _samples(text)
    listener = f'listener="127.0.0.1:{b.port}"'
    assert m[f"hato_connected_clients{{{listener}}}"] == N_CLIENTS
    assert m[f"hato_accepted_connections_total{{{listener}}}"] == N_CLIENTS
    assert m["hato_connections_total"] == N_CLIENTS
    assert m["hato_messages_received_total"] == M_MESSAGES
    assert m["hato_messages_sent_total"] == M_MESSAGES
    for name in ("qos0_dropped", "queued_dropped", "unreadable_dropped", "slow_clients_closed"):
        assert m[f"hato_{name}_total"] == 0, name
    assert sum(v for k, v in m.items() if k.startswith("hato_store_refusals_total{")) == 0
    assert m["hato_store_enabled"] == 1 and m["hato_store_refusing"] == 0
    assert m["hato_store_used_bytes"] > 0 and m["hato_store_segments"] >= 1
    # sync = always: every QoS 1 message was synced before its PUBACK
    assert m["hato_sync_latency_seconds_count"] >= 1
    assert m['hato_sync_latency_seconds_bucket{le="+Inf"}'] == m["hato_sync_latency_seconds_count"]
    assert m["hato_loop_pass_seconds_count"] >= M_MESSAGES
    assert m["hato_uptime_seconds"] >= 0
    # Each of the M topics is kept with its one match (m-sub); topics without
    # a subscriber ($SYS ones) are kept with none.
    assert M_MESSAGES <= m["hato_route_cache_topics"] <= 1024
    assert m["hato_route_cache_matches"] == M_MESSAGES
    assert any(k.startswith("hato_build_info{") for k in m)
    for key in m:  # every counter ends in _total, every name is hato_
        assert key.startswith("hato_"), key
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line

    status, ctype, body = _get(b, "/status.json")
    assert status == 200 and ctype == "application/json"
    j = json.loads(body)
    assert j["connected"] == N_CLIENTS
    assert j["listeners"] == [{"name": f"127.0.0.1:{b.port}", "connected": N_CLIENTS, "accepted": N_CLIENTS}]
    assert j["messages"]["received_total"] == M_MESSAGES and j["messages"]["sent_total"] == M_MESSAGES
    assert j["healthy"] is True and j["store"]["enabled"] is True

    status, ctype, html = _get(b, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert f"Connections: <span id=connected>{N_CLIENTS}</span>" in html
    assert "<script" in html and "/status.json" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page refers to an external asset"

    assert _get(b, "/healthz")[:3:2] == (200, "ok\n")
    assert _get(b, "/nowhere")[0] == 404


def test_promtool_accepts_the_metrics(broker_factory, clients):
    b = _start(broker_factory)
    _scenario(lambda **kw: clients(broker=b, **kw))
    text = _get(b, "/metrics")[2]
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus): format not validated")
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"promtool check metrics:\n{res.stdout}{res.stderr}\n--- input ---\n{text}"


def test_healthz_is_503_while_the_store_refuses(broker_factory):
    data = tempfile.mkdtemp(prefix="hato-metrics-full-")
    try:
        b = _start(broker_factory, {
            "storage": {"dir": os.path.join(data, "d"), "segment_size_mb": 1, "max_bytes_mb": 1, "sync": "always"},
            "limits": {"max_packet_size": 150_000, "max_queued_messages": 1000}})
        assert _get(b, "/healthz")[0] == 200
        # A persistent subscriber away: what it is sent stays in the store.
        sub = r.RawClient(b)
        sub.connect("sub", version=4, clean=False)
        sub.send(r.subscribe(1, "t/#", qos=1))
        sub.expect(r.SUBACK)
        sub.close()
        pub = r.RawClient(b)
        pub.connect("pub", version=5)
        refused = False
        for i in range(40):
            pub.send(r.publish("t/m", b"x" * 100_000, qos=1, pid=i + 1, version=5))
            ack = pub.expect(r.PUBACK)
            if len(ack.body) > 2 and ack.body[2] == 0x97:
                refused = True
                break
        pub.close()
        assert refused, "the store never refused"
        status, _, body = _get(b, "/healthz")
        assert status == 503, body
        assert "max_bytes" in body and body.count("\n") == 1, body
        m = _samples(_get(b, "/metrics")[2])
        # refusing: the log is at max_bytes; a 100 KB record is refused before that
        assert m['hato_store_refusals_total{reason="max_bytes"}'] + m['hato_store_refusals_total{reason="refusing"}'] >= 1
        assert m["hato_store_max_bytes"] == 1 << 20
        assert m["hato_store_used_bytes"] > (1 << 20) // 2
        j = json.loads(_get(b, "/status.json")[2])
        # The same reason; the byte counts in it move as compaction runs.
        assert j["healthy"] is False and j["store"]["fill"] > 0.5
        assert j["health"].split(" (")[0] == body.strip().split(" (")[0], (j["health"], body)
        assert j["store"]["refusals"]["total"] >= 1
        assert _get(b, "/")[2].count("store refuses") + _get(b, "/")[2].count("store refused") >= 1
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_bad_http_gets_its_code_and_a_close_while_mqtt_is_served(broker_factory, clients):
    b = _start(broker_factory, connect_timeout_ms=1000)
    sub = clients(broker=b, client_id="bad-sub")
    sub.subscribe("b/t", qos=1)
    pub = clients(broker=b, client_id="bad-pub")

    # A slow request holds nothing up: opened first, answered 408 at the end.
    slow = socket.create_connection(("127.0.0.1", b.metrics_port), timeout=10)
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHo")
    t_slow = time.monotonic()

    cases = [
        ([b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"], 431),
        ([b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: 0123456789\r\n" * 600], 431),   # never ends
        ([b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"], 405),
        ([b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"], 405),
        ([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200)], 400),     # a TLS client
        ([b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"], 400),                     # an MQTT client
        ([b"GET / HTTP/1.1\r\n\r\n"], 400),                                            # no Host
        ([b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"], 400),
        ([b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"], 505),
        # pipelined garbage after a good request: it is answered, the rest dropped
        ([b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n\x00\x01garbage\r\n\r\nGET /x HTTP/9\r\n"], 200),
        # the head in single bytes (well within the timeout)
        ([bytes([c]) for c in b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"], 200),
        ([bytes([c]) for c in b"GET /healthz HTTP/1.1\nHost: a\n\n"], 200),   # bare LF line ends
        ([b"G", b"ET / HTTP/2.0\r\nHost: a\r\n"], 505),   # a bad line in a later piece: answered at once
    ]
    for chunks, want in cases:
        code, took, got = _raw_http(b, chunks)
        assert code == want, f"{chunks[0][:40]!r}...: got {got[:200]!r}"
        assert b"Connection: close\r\n" in got
        assert took < 5, f"{chunks[0][:40]!r}: answered after {took:.1f}s"
        pub.publish("b/t", b"during", qos=1)
        assert sub.expect().payload == b"during"
    assert _get(b, "/healthz")[0] == 200

    # The slow request gets 408 after connect_timeout_ms, and is closed.
    got = b""
    while True:
        part = slow.recv(4096)
        if not part:
            break
        got += part
    slow.close()
    waited = time.monotonic() - t_slow
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert 0.5 < waited < 5, waited

    # Slowloris: a byte at a time, forever; the answer is 408 within the bound.
    code, took, _ = _raw_http(b, [b"G", b"E", b"T", b" ", b"/"] + [b"a"] * 12, pause=0.1)
    assert code == 408 and took < 6, (code, took)

    # A flood of idle connections (more than the 64 held at once): MQTT and
    # HTTP are still served, the oldest idle ones give way with a 408.
    idle = [socket.create_connection(("127.0.0.1", b.metrics_port), timeout=5) for _ in range(80)]
    try:
        pub.publish("b/t", b"flood", qos=1)
        assert sub.expect().payload == b"flood"
        t0 = time.monotonic()
        assert _get(b, "/healthz")[0] == 200
        assert time.monotonic() - t0 < 1
        assert idle[0].recv(4096).startswith(b"HTTP/1.1 408 ")
    finally:
        for s in idle:
            s.close()
    assert b.alive()


def _screenshot_dir():
    hato = os.environ.get("HATO_BIN", "")
    if hato:
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(hato))))  # build/src/app/hato
        if os.path.isdir(build) and os.access(build, os.W_OK):
            return os.path.join(build, "screenshots")
    return tempfile.mkdtemp(prefix="hato-screens-")


def test_status_page_in_headless_chromium(broker_factory, clients, backend):
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed (Debian package chromium): status page screenshot not taken")
    b = _start(broker_factory)
    _scenario(lambda **kw: clients(broker=b, **kw))
    url = f"http://127.0.0.1:{b.metrics_port}/"
    out_dir = _screenshot_dir()
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, f"status-page-{backend}.png")
    if os.path.exists(png):
        os.unlink(png)
    profile = tempfile.mkdtemp(prefix="hato-chromium-")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}"]
    try:
        dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
        assert f"Connections: <span id=\"connected\">{N_CLIENTS}</span>" in dom.stdout, dom.stdout[-2000:] + dom.stderr[-2000:]
        shot = subprocess.run(base + ["--window-size=1100,800", f"--screenshot={png}", url],
                              capture_output=True, text=True, timeout=90)
        assert os.path.exists(png), shot.stderr[-2000:]
        with open(png, "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, len(data)
        print(f"status page screenshot: {png} ({len(data)} bytes)")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
