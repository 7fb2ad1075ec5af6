# The WAN outage with a power cut in the middle: the gateway acknowledges
# QoS 1 messages while its upstream is down, then loses power. A power cut
# leaves the disk as of the last sync plus, at worst, a record that was
# being written and never synced (torn): the gateway's data folder is cut
# back to that (every acknowledged message was synced before its PUBACK,
# sync = "always") and a torn record is written after the synced end. After
# the restart every acknowledged message arrives upstream, in order.

import glob
import os
import struct
import subprocess

from bridge_util import pub_qos1, receive, upstream_goes_away, wait_for
from bridge_util import pair  # noqa: F401  (fixture)
from raw_mqtt import RawClient
from test_store_damage import MAGIC, _records


def cut_to_synced_with_torn_tail(data_dir):
    """The active segment ends at its last valid record, followed by the
    first bytes of a record never synced: a header claiming more than is there."""
    seg = sorted(glob.glob(os.path.join(data_dir, "*.seg")))[-1]
    with open(seg, "rb") as f:
        image = bytearray(f.read())
    recs = _records(bytes(image))
    assert recs, "the active segment holds the gateway's records"
    off, length, _, _ = recs[-1]
    end = (off + 24 + length + 7) & ~7
    _, _, last_lsn, _ = struct.unpack_from("<IIQB", image, off)
    torn = struct.pack("<IIQB", MAGIC, 4096, last_lsn + 1, 3) + b"\x5a" * 200
    image[end:] = b"\0" * (len(image) - end)
    image[end:end + len(torn)] = torn
    with open(seg, "wb") as f:
        f.write(image)
        f.flush()
        os.fsync(f.fileno())


def test_bridge_store_and_forward_across_outage_and_power_cut(pair):  # noqa: F811
    up, gw = pair()
    upstream_goes_away(up, gw)
    n = 60
    payloads = [f"p{i:03d}".encode() for i in range(n)]
    pub_qos1(gw, "plant/line", payloads)   # every one acknowledged by the gateway
    gw.kill()
    cut_to_synced_with_torn_tail(gw.data_dir)
    gw.start()
    up.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge reconnected after the power cut")
    s = RawClient(up)
    s.connect("up-sub", clean=False)
    got = receive(s, n, 15)
    assert [p for _, p in got] == payloads   # acknowledged: all delivered, in order, none lost


def _store(command, data_dir):
    from conftest import _find_hato
    r = subprocess.run([_find_hato(), "store", command, data_dir], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_store_dump_and_verify_show_the_bridge_queue(pair):  # noqa: F811
    up, gw = pair()
    gw.start()   # the upstream is not there: everything waits in the queue
    n = 7
    pub_qos1(gw, "plant/q", [f"m{i}".encode() + b"y" * 10 for i in range(n)])
    gw.stop()
    rc, out = _store("dump", gw.data_dir)
    assert rc == 0, out
    assert f"# bridge site queue: {n} message(s), {n * (len('plant/q') + 12)} bytes, oldest at lsn " in out, out
    rc, out = _store("verify", gw.data_dir)
    assert rc == 0 and f"bridge site queue: {n} message(s)" in out and out.rstrip().endswith("ok"), out
    up.start()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    # Delivered means acknowledged upstream: the queue empties.
    wait_for(lambda: "0 message(s)" in _store("verify", gw.data_dir)[1], timeout=10, what="queue drained")
    gw.stop()
    rc, out = _store("verify", gw.data_dir)
    assert rc == 0 and "bridge site queue: 0 message(s), 0 bytes" in out, out
