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


def _crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _frame(lsn, rtype, body):
    """A record as hato's log frames it: magic, length, LSN, type, CRC32C, body, padding."""
    head = struct.pack("<IIQB3x", MAGIC, len(body), lsn, rtype)
    rec = head + struct.pack("<I", _crc32c(head + body)) + body
    return rec + b"\0" * (-len(rec) % 8)


@pytest.mark.hato_only("hato's append log and `hato store verify`")
def test_records_of_a_newer_version_are_kept_reported_and_not_served(broker_factory):
    # What a newer hato could leave behind before a downgrade: a record type
    # this version does not know, and a known type whose body does not decode.
    b = broker_factory({"storage": {"segment_size_mb": 1}, "limits": {"max_packet_size": 256 * 1024}})
    pub = Client(b, "new-pub")
    pub.publish("new/kept", b"readable", qos=1, retain=True)
    pub.close()
    assert b.stop() == 0
    data = b.data_dir
    seg = sorted(glob.glob(os.path.join(data, "*.seg")))[-1]
    with open(seg, "rb") as f:
        image = bytearray(f.read())
    recs = _records(image)
    end = recs[-1][0] + ((24 + recs[-1][1] + 7) & ~7)
    last_lsn = struct.unpack_from("<Q", image, recs[-1][0] + 8)[0]
    added = _frame(last_lsn + 1, 99, b"\x01from the future") + _frame(last_lsn + 2, 3, b"\xff\xff\xff\x7fjunk")
    image[end:end + len(added)] = added
    with open(seg, "wb") as f:
        f.write(image)

    rc, out = _verify(data)
    assert rc == 1 and "2 record(s) UNREADABLE" in out, out

    # Served: what this version reads; kept: the rest, through the traffic
    # of a run (compaction copies them forward), for the version that wrote them.
    b.start()
    assert "2 record(s) this version cannot read" in b.log()
    sub = Client(b, "new-sub")
    sub.subscribe("new/#", 1)
    assert sub.expect().payload == b"readable"
    sub.expect_none(0.3)
    sub.close()
    pub = Client(b, "new-pub")
    for i in range(1500):
        pub.publish(f"new/churn/{i % 4}", bytes(2000), qos=1, retain=True)
    pub.close()
    assert b.stop() == 0
    assert not os.path.exists(seg)   # compacted away, its live records copied on
    dump = subprocess.run([_find_hato(), "store", "dump", data], capture_output=True, text=True, timeout=30).stdout
    assert " ? body=16B" in dump and "MALFORMED" in dump, dump
    b.start()
    assert "2 record(s) this version cannot read" in b.log()
    assert b.stop() == 0
