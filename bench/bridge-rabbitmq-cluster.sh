#!/usr/bin/env bash
# Scale-out: two gateways bridged into a two-node RabbitMQ cluster on this
# machine (Debian's rabbitmq-server 3.10, MQTT plugin). Node 2 joins node 1;
# gateway A bridges to node 1, gateway B to node 2; a subscriber on node 1
# must receive the QoS 1 messages of both gateways (B's cross the cluster).
# Each node is a one-off (tests/integration/rabbitmq_node.py): free ports,
# its own data, logs, HOME and cookie, one epmd for both; all stopped at the end.
#   bench/bridge-rabbitmq-cluster.sh [BUILDDIR]    (N=1000 per gateway by default)
# Not run by CI (two nodes take a minute or more to start on a busy machine).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export HATO=$(realpath "$build/src/app/hato") N=${N:-1000}
[ -x "$HATO" ] || { echo "missing $HATO: build first"; exit 1; }
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { echo "rabbitmq-server not installed (bash .ci/install-deps.sh test)"; exit 1; }
exec /usr/bin/python3 - <<'PY'
import os, socket, subprocess, sys, tempfile, time
sys.path.insert(0, "tests/integration")
sys.path.insert(0, "bench")
from rabbitmq_node import RabbitNode, free_port
import bridge_load

HATO, N = os.environ["HATO"], int(os.environ["N"])
work = tempfile.mkdtemp(prefix="hato-rabbit-")
n1 = RabbitNode(os.path.join(work, "n1"), name="hato-n1")
n2 = RabbitNode(os.path.join(work, "n2"), name="hato-n2", epmd_port=n1.epmd_port)
gws = []

def ctl(node, *args):
    r = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node.name, *args], env=node.env(),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit(f"rabbitmqctl {' '.join(args)}: {r.stdout}{r.stderr}")

def gateway(name, up_port):
    d = os.path.join(work, name)
    os.makedirs(d)
    port = free_port()
    with open(os.path.join(d, "hato.toml"), "w") as f:
        f.write(f'[[listener]]\naddress = "127.0.0.1"\nport = {port}\n[storage]\ndir = "{d}/data"\n'
                f'[[bridge]]\nname = "site"\naddress = "127.0.0.1"\nport = {up_port}\nclient_id = "gw-{name}"\n'
                f'try_private = false\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n'
                f'[[bridge.topic]]\npattern = "plant/#"\ndirection = "out"\nqos = 1\nremote_prefix = "fleet/{name}/"\n')
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen([HATO, "-c", os.path.join(d, "hato.toml")], stdout=log, stderr=subprocess.STDOUT)
    gws.append(p)
    return port, os.path.join(d, "log")

try:
    t0 = time.monotonic()
    for n in (n1, n2):
        if not n.start(120):
            sys.exit(f"{n.name} did not start:\n{n.output()}")
    print(f"two nodes up in {time.monotonic() - t0:.0f} s")
    ctl(n2, "stop_app")
    ctl(n2, "join_cluster", n1.name)
    ctl(n2, "start_app")
    print(f"{n2.name} joined {n1.name}")
    a_port, a_log = gateway("a", n1.mqtt_port)
    b_port, b_log = gateway("b", n2.mqtt_port)
    for lg in (a_log, b_log):
        deadline = time.monotonic() + 30
        while "bridge site: connected" not in open(lg).read():
            if time.monotonic() > deadline:
                sys.exit(f"a gateway's bridge did not connect:\n{open(lg).read()}")
            time.sleep(0.1)
    # The subscriber on node 1 first, so the queue exists before publishing.
    import threading
    result = {}
    th = threading.Thread(target=lambda: result.setdefault("ok", bridge_load.count(n1.mqtt_port, "fleet/#", 2 * N, 60)))
    th.start()
    time.sleep(1.0)
    bridge_load.publish(a_port, "plant/a", N)
    bridge_load.publish(b_port, "plant/b", N)
    th.join()
    print("delivery through the cluster:", "OK" if result.get("ok") else "INCOMPLETE")
    sys.exit(0 if result.get("ok") else 1)
finally:
    for p in gws:
        p.terminate()
        p.wait(10)
    n2.stop()
    n1.stop()
PY
