# A damaged record in the middle of hato's append log: `hato store verify`
# reports the skipped range and exits non-zero, the broker's recovery copies
# the segment to DIR/quarantine/, logs an error, and keeps every record after
# the damage (retained messages here); afterwards the log verifies clean.

import glob
import os
import struct
import subprocess

import pytest

from conftest import _find_hato
from paho_client import Client

MAGIC = 0x4F544148
RETAINED_SET = 1
N = 12


def _verify(data_dir):
    r = subprocess.run([_find_hato(), "store", "verify", data_dir], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def _records(image):
    """(offset, body length, type, body) of each record of a segment image."""
    out, off = [], 0
    while off + 24 <= len(image):
        magic, length, _lsn, rtype = struct.unpack_from("<IIQB", image, off)
        if magic != MAGIC:
            break
        out.append((off, length, rtype, image[off + 24:off + 24 + length]))
        off += (24 + length + 7) & ~7
    return out


@pytest.mark.hato_only("hato's append log and `hato store verify`")
def test_damage_in_the_middle_is_skipped_and_reported(broker_factory):
    b = broker_factory({"storage": {"segment_size_mb": 1}, "limits": {"max_packet_size": 256 * 1024}})
    pub = Client(b, "dmg-pub")
    for i in range(N):
        pub.publish(f"dmg/{i}", f"retained {i} ".encode() * (i + 1), qos=1, retain=True)
    pub.close()
    assert b.stop() == 0
    data = b.data_dir
    assert _verify(data)[0] == 0

    # Flip one bit in the body of the retained message dmg/5: in the middle of
    # the active segment, with valid records after it.
    seg = sorted(glob.glob(os.path.join(data, "*.seg")))[-1]
    with open(seg, "rb") as f:
        image = bytearray(f.read())
    hit = [r for r in _records(image) if r[2] == RETAINED_SET and b"dmg/5" in r[3]]
    assert len(hit) == 1
    off, length = hit[0][0], hit[0][1]
    image[off + 24 + length // 2] ^= 0x04
    with open(seg, "wb") as f:
        f.write(image)

    rc, out = _verify(data)
    assert rc == 1, out
    assert f"skipped: segment {os.path.basename(seg)} offset {off} length " in out, out
    dump = subprocess.run([_find_hato(), "store", "dump", data], capture_output=True, text=True, timeout=30)
    assert "dmg/11" in dump.stdout   # records after the damage still listed

    b.start()
    log = b.log()
    assert " error " in log and "damaged segment" in log and "kept " in log, log
    assert len(os.listdir(os.path.join(data, "quarantine"))) == 1
    sub = Client(b, "dmg-sub")
    sub.subscribe("dmg/#", 1)
    got = {m.topic for m in sub.expect_list(N - 1)}
    assert got == {f"dmg/{i}" for i in range(N) if i != 5}
    sub.expect_none(0.3)
    sub.close()
    assert b.stop() == 0
    rc, out = _verify(data)
    assert rc == 0, out


@pytest.mark.hato_only("hato's append log and `hato store verify`")
def test_foreign_file_named_like_a_segment_is_quarantined(broker_factory):
    b = broker_factory({"storage": {"segment_size_mb": 1}, "limits": {"max_packet_size": 256 * 1024}})
    assert b.stop() == 0
    data = b.data_dir
    foreign = b"this is not a hato segment\n" * 400
    path = os.path.join(data, "00000000000f0000.seg")
    with open(path, "wb") as f:
        f.write(foreign)
    rc, out = _verify(data)
    assert rc == 1 and "NOT A HATO SEGMENT" in out, out
    b.start()
    assert "not a hato segment" in b.log()
    assert not os.path.exists(path)
    moved = os.listdir(os.path.join(data, "quarantine"))
    assert len(moved) == 1
    with open(os.path.join(data, "quarantine", moved[0]), "rb") as f:
        assert f.read() == foreign
    assert b.stop() == 0
    assert _verify(data)[0] == 0
