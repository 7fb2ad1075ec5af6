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

from test_bridge import RawClient, pub_qos1, receive, sub, wait_for
from test_bridge import pair  # noqa: F401  (fixture)
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
    up.start()
    s = sub(up, "up-sub", "site/gw/#", clean=False)
    s.close()
    gw.start()
    wait_for(lambda: gw.connected_count() >= 1, what="bridge connected")
    up.stop()
    wait_for(lambda: "bridge site: disconnected" in gw.log(), what="bridge disconnect noticed")
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
