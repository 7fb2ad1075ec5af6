# Power cuts against QoS 2 packet-id state (sync = "always"). The disk is
# what the last successful sync left (powercut_shim.cpp, LD_PRELOAD on the
# epoll backend, where fdatasync runs through libc): the test "cuts the
# power" at a chosen instant, kills the broker and puts that disk back.
# A packet that lets the other side hold or free a packet id must wait for
# the record that says so, or after the cut the broker and the client
# disagree about the id: a message acknowledged and dropped, or a QoS 2
# message delivered twice.
import glob
import os
import shutil
import struct
import time

import pytest

from build_info import sanitized
from conftest import TARGET
from raw_mqtt import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, UNSUBACK, RawClient, disconnect, packet
from raw_mqtt import parse_publish
from raw_mqtt import publish, pubrel, subscribe, unsubscribe

pytestmark = pytest.mark.skipif(TARGET == "mosquitto", reason="hato's store on a simulated power cut")

SHIM = os.environ.get("HATO_POWERCUT_SHIM", "")
# A long window, so that a cut right after a packet is well before its sync.
SETTINGS = {"storage": {"sync": "always", "sync_window_us": 500000}}


class PowerCut:
    """The disk as of the last sync, kept in `snap` by the shim."""

    def __init__(self, tmp_path):
        self.snap = str(tmp_path / "disk")
        os.makedirs(self.snap)

    def __enter__(self):
        os.environ["LD_PRELOAD"] = SHIM
        os.environ["HATO_SNAPDIR"] = self.snap
        return self

    def __exit__(self, *exc):
        os.environ.pop("LD_PRELOAD", None)
        os.environ.pop("HATO_SNAPDIR", None)

    def cut(self, broker):
        open(os.path.join(self.snap, "FREEZE"), "w").close()   # the power goes now
        broker.kill()
        for f in glob.glob(os.path.join(broker.data_dir, "*.seg")):
            os.unlink(f)
        for f in glob.glob(os.path.join(self.snap, "*.seg")):
            shutil.copy(f, broker.data_dir)
        os.unlink(os.path.join(self.snap, "FREEZE"))


@pytest.fixture
def power(backend, tmp_path, broker_factory):
    if backend != "epoll":
        pytest.skip("io_uring syncs with IORING_OP_FSYNC, which the shim does not see")
    if not SHIM or not os.path.exists(SHIM):
        pytest.skip("powercut_shim.so not built (HATO_POWERCUT_SHIM)")
    with PowerCut(tmp_path) as pc:
        b = broker_factory(SETTINGS)
        if sanitized(b):
            pytest.skip("a sanitizer's runtime must be loaded first: no LD_PRELOAD")
        yield pc, b


class Receiver:
    """A QoS 2 receiver as MQTT has it: a packet id stays held from PUBLISH
    to PUBREL, and a PUBLISH under a held id is a duplicate. The held ids
    outlive a connection (its session is persistent)."""

    def __init__(self):
        self.held = set()
        self.delivered = []

    def read(self, c, seconds):
        try:
            while True:
                p = c.read(seconds)
                if p.type == PUBLISH:
                    _, pid, _, payload = parse_publish(p)
                    if pid not in self.held:
                        self.held.add(pid)
                        self.delivered.append(payload)
                    c.send(packet(PUBREC, 0, struct.pack("!H", pid)))
                elif p.type == PUBREL:
                    pid = struct.unpack_from("!H", p.body)[0]
                    self.held.discard(pid)
                    c.send(packet(PUBCOMP, 0, struct.pack("!H", pid)))
        except TimeoutError:
            pass


def _subscriber(b):
    s = RawClient(b)
    s.connect("sub", clean=False)
    s.send(subscribe(1, "t", 2))
    s.expect(SUBACK)
    return s


def test_an_inbound_packet_id_freed_by_pubcomp_stays_free(power):
    pc, b = power
    s = _subscriber(b)
    s.send(disconnect())
    s.close()
    p = RawClient(b)
    p.connect("pub", clean=False)
    p.send(publish("t", b"A", qos=2, pid=1))
    p.expect(PUBREC)
    p.send(pubrel(1))
    p.expect(PUBCOMP)   # pid 1 is free: the publisher may use it at once
    pc.cut(b)
    b.start()
    p = RawClient(b)
    p.connect("pub", clean=False)
    p.send(publish("t", b"B", qos=2, pid=1))
    p.expect(PUBREC)    # B is acknowledged: it must arrive
    p.send(pubrel(1))
    p.expect(PUBCOMP)
    r = Receiver()
    s = RawClient(b)
    s.connect("sub", clean=False)
    r.read(s, 2.0)
    assert r.delivered == [b"A", b"B"]


def test_a_qos2_message_completed_before_the_cut_is_not_delivered_again(power):
    pc, b = power
    r = Receiver()
    s = _subscriber(b)
    p = RawClient(b)
    p.connect("pub")
    p.send(publish("t", b"A", qos=2, pid=1))
    p.expect(PUBREC)
    deadline = time.monotonic() + 5
    while r.delivered != [b"A"] or r.held:   # PUBLISH, PUBREC, PUBREL, PUBCOMP
        assert time.monotonic() < deadline, (r.delivered, r.held)
        r.read(s, 0.05)
    time.sleep(0.05)    # the broker read the PUBCOMP, well within the sync window
    pc.cut(b)
    b.start()
    s = RawClient(b)
    s.connect("sub", clean=False)
    r.read(s, 2.0)
    assert r.delivered == [b"A"]


def test_a_qos2_delivery_is_not_repeated_under_another_packet_id(power):
    pc, b = power
    r = Receiver()
    s = _subscriber(b)
    p = RawClient(b)
    p.connect("pub", clean=False)
    # One message through first, synced: the next delivery takes id 2.
    p.send(publish("t", b"Z", qos=2, pid=1))
    p.expect(PUBREC)
    p.send(pubrel(1))
    p.expect(PUBCOMP)
    r.read(s, 1.0)
    assert r.delivered == [b"Z"] and not r.held
    p.send(publish("t", b"A", qos=2, pid=2))
    deadline = time.monotonic() + 5
    while b"A" not in r.delivered:
        assert time.monotonic() < deadline
        r.read(s, 0.01)
    pc.cut(b)           # as soon as the subscriber holds A's id
    b.start()
    s = RawClient(b)
    s.connect("sub", clean=False)
    p = RawClient(b)
    p.connect("pub", clean=False)
    # The publisher sends A again (the broker answers as for a duplicate if
    # it had A before the cut) and completes it.
    p.send(publish("t", b"A", qos=2, pid=2, dup=True))
    p.expect(PUBREC)
    p.send(pubrel(2))
    p.expect(PUBCOMP)
    r.read(s, 2.0)
    assert r.delivered == [b"Z", b"A"], r.delivered


def _durable_session(b, cid):
    """A persistent session whose record is synced: the PUBACK of a retained
    message waits for a sync that covers it."""
    c = RawClient(b)
    c.connect(cid, clean=False)
    c.send(publish("keep/" + cid, b"k", qos=1, pid=1, retain=True))
    c.expect(PUBACK)
    return c


def test_a_subscription_acknowledged_before_the_cut_survives_it(power):
    pc, b = power
    s = _durable_session(b, "sub")
    s.send(subscribe(2, "t", 1))
    s.expect(SUBACK)
    pc.cut(b)           # well within the sync window after the SUBACK
    b.start()
    s = RawClient(b)
    ack = s.connect("sub", clean=False)
    assert ack.body[0] & 1, "the session is present: the client will not subscribe again"
    p = RawClient(b)
    p.connect("pub")
    p.send(publish("t", b"after", qos=1, pid=1))
    p.expect(PUBACK)
    got = s.expect(PUBLISH)
    assert parse_publish(got)[3] == b"after"


def test_a_subscription_removed_before_the_cut_stays_removed(power):
    pc, b = power
    s = _durable_session(b, "sub")
    s.send(subscribe(2, "t", 1))
    s.expect(SUBACK)
    s.send(publish("keep/sub", b"k2", qos=1, pid=3, retain=True))
    s.expect(PUBACK)    # synced: the subscription is on disk
    s.send(unsubscribe(4, "t"))
    s.expect(UNSUBACK)
    pc.cut(b)
    b.start()
    s = RawClient(b)
    s.connect("sub", clean=False)
    p = RawClient(b)
    p.connect("pub")
    p.send(publish("t", b"after", qos=1, pid=1))
    p.expect(PUBACK)
    with pytest.raises(TimeoutError):
        s.read(1.0)


def test_a_session_discarded_before_the_cut_does_not_come_back(power):
    pc, b = power
    s = _durable_session(b, "sub")
    s.send(subscribe(2, "t", 1))
    s.expect(SUBACK)
    s.send(disconnect())
    s.close()
    p = RawClient(b)
    p.connect("pub")
    p.send(publish("t", b"old", qos=1, pid=1))
    p.expect(PUBACK)    # synced: queued for the offline session
    s = RawClient(b)
    ack = s.connect("sub", clean=True)
    assert not ack.body[0] & 1   # the session and its queue are gone
    pc.cut(b)
    b.start()
    s = RawClient(b)
    ack = s.connect("sub", clean=False)
    assert not ack.body[0] & 1, "a session the client was told is gone came back"
    with pytest.raises(TimeoutError):
        s.read(1.0)


# After a failed fdatasync Linux marks the pages clean and reports the error
# once: the next sync "succeeds" without writing them (the shim's EIO is
# such a failure). So no acknowledgement may ever follow one in that
# process: the broker stops with exit status 1 (the packaged service
# restarts it), and the restart recovers what the disk holds.
def test_no_acknowledgement_follows_a_failed_sync_the_broker_stops_to_recover(power):
    pc, b = power
    s = _subscriber(b)
    s.send(disconnect())
    s.close()
    p = RawClient(b)
    p.connect("pub")
    p.send(publish("t", b"A", qos=1, pid=1))
    p.expect(PUBACK)
    open(os.path.join(pc.snap, "EIO"), "w").close()
    p.send(publish("t", b"B", qos=1, pid=2))
    assert [q for q in p.wait_closed(10) if q.type == PUBACK] == []
    proc = b.proc
    assert proc.wait(15) == 1
    assert "store: a sync failed" in b.log()
    assert not os.path.exists(os.path.join(pc.snap, "EIO"))   # the failure happened
    b.proc = None
    pc.cut(b)
    b.start()
    s = RawClient(b)
    s.connect("sub", clean=False)
    got = []
    try:
        while True:
            q = s.read(2.0)
            if q.type == PUBLISH:
                _, pid, _, payload = parse_publish(q)
                got.append(payload)
                s.send(packet(PUBACK, 0, struct.pack("!H", pid)))
    except TimeoutError:
        pass
    assert got[:1] == [b"A"]   # acknowledged before the failure; B may follow (it was never acknowledged)
    assert got.count(b"A") == 1


@pytest.fixture
def sync_off(backend, tmp_path, broker_factory):
    """A broker with sync = "off" under the shim, and small segments, so that
    a little churn compacts the first one."""
    if backend != "epoll":
        pytest.skip("io_uring syncs with IORING_OP_FSYNC, which the shim does not see")
    if not SHIM or not os.path.exists(SHIM):
        pytest.skip("powercut_shim.so not built (HATO_POWERCUT_SHIM)")
    with PowerCut(tmp_path) as pc:
        b = broker_factory({"storage": {"sync": "off", "segment_size_mb": 1}, "limits": {"max_packet_size": 262144}})
        if sanitized(b):
            pytest.skip("a sanitizer's runtime must be loaded first: no LD_PRELOAD")
        yield pc, b


def _churn(p, until, deadline_s=30):
    """Overwrites the retained message on "churn" (each kills the one before)
    until `until()`; compaction runs on the broker's ticks."""
    big = b"x" * 60000
    deadline = time.monotonic() + deadline_s
    i = 0
    while not until():
        assert time.monotonic() < deadline, "churned for %ss" % deadline_s
        p.send(publish("churn", big, qos=1, pid=1 + i % 1000, retain=True))
        p.expect(PUBACK)
        i += 1
        if i % 20 == 0:
            time.sleep(0.2)


# sync = "off" syncs nothing but at shutdown, yet compaction deletes old
# segments: the live records' copies must reach the disk before the segment
# that held them goes, or a power cut loses a retained message stored hours
# ago (not only the last writes). The shim carries the deletion over at the
# directory's sync, the copies only at a sync of their segment.
def test_sync_off_compaction_keeps_an_old_retained_message_through_a_power_cut(sync_off):
    pc, b = sync_off
    p = RawClient(b)
    p.connect("pub")
    p.send(publish("keep", b"K", qos=1, pid=1001, retain=True))
    p.expect(PUBACK)
    first = set(glob.glob(os.path.join(b.data_dir, "*.seg")))
    assert first
    _churn(p, lambda: not first & set(glob.glob(os.path.join(b.data_dir, "*.seg"))))
    pc.cut(b)
    b.start()
    s = RawClient(b)
    s.connect("sub")
    s.send(subscribe(1, "keep", 1))
    s.expect(SUBACK)
    _, _, _, payload = parse_publish(s.expect(PUBLISH))
    assert payload == b"K"


# With sync = "off" the only syncs are compaction's (and the shutdown's): one
# that fails is as final as a group sync's, and stops the broker too.
def test_sync_off_a_failed_sync_of_compaction_copies_stops_the_broker(sync_off):
    pc, b = sync_off
    p = RawClient(b)
    p.connect("pub")
    open(os.path.join(pc.snap, "EIO"), "w").close()
    try:
        _churn(p, lambda: b.proc.poll() is not None)
    except (EOFError, ConnectionError):
        pass   # closed by the stopping broker
    assert b.proc.wait(15) == 1
    assert "store: a sync failed" in b.log()
    b.proc = None
