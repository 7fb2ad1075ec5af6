// What the store answers when it cannot take a write, and the reserve that
// lets removals through on a full store: the persistence result on every
// append path, max_bytes, ENOSPC from fallocate (on a small tmpfs this test
// mounts), records larger than a segment, failed syncs.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "broker/log_persistence.hpp"
#include "store/log.hpp"
#include "small_fs.hpp"
#include "temp_dir.hpp"

using namespace hato::broker;
using hato::store::test::fill_the_rest;
using hato::store::test::SmallFs;
using hato::store::test::TempDir;
namespace store = hato::store;

namespace {

std::unique_ptr<store::Log> open_log(const std::string& dir, uint64_t seg, uint64_t max = 0) {
    store::Options o;
    o.dir = dir;
    o.segment_bytes = seg;
    o.max_bytes = max;
    std::string err;
    auto log = store::Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

StoredMessage msg(size_t payload_bytes, uint8_t fill = 1) {
    StoredMessage m;
    m.topic = "t/x";
    m.payload.assign(payload_bytes, fill);
    m.qos = 1;
    return m;
}

}  // namespace

TEST_CASE("every append path returns Stored with the record's ticket") {
    TempDir d;
    auto log = open_log(d.path(), 64 * 1024);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    uint64_t last = 0;
    auto stored = [&](const Append& a) {
        CHECK(a.ok());
        CHECK(a.ticket > last);   // a fresh LSN each time
        last = a.ticket;
    };
    stored(p.retained_set(msg(10)));
    stored(p.retained_clear("t/x"));
    stored(p.session_put("c", 60, 0));
    stored(p.sub_put("c", "t/#", 1, 0));
    stored(p.out_enqueue("c", 1, msg(10)));
    stored(p.out_state("c", 1, OutState::Inflight, 5));
    stored(p.out_done("c", 1));
    stored(p.qos2_in_put("c", 9, 0));
    stored(p.qos2_in_remove("c", 9));
    stored(p.sub_remove("c", "t/#"));
    stored(p.session_remove("c"));
    CHECK(last == log->last_lsn());
}

TEST_CASE("a record larger than a segment is TooLarge on every path and poisons nothing") {
    TempDir d;
    auto log = open_log(d.path(), 8192);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(p.session_put("c", 60, 0).ok());
    StoredMessage big = msg(9000);
    CHECK(p.out_enqueue("c", 1, big).status == AppendStatus::TooLarge);
    CHECK(p.retained_set(big).status == AppendStatus::TooLarge);
    CHECK(p.sub_put("c", std::string(9000, 'f'), 1, 0).status == AppendStatus::TooLarge);
    CHECK_FALSE(p.full());
    for (uint64_t seq = 2; seq < 40; ++seq) CHECK(p.out_enqueue("c", seq, msg(500)).ok());
    CHECK(p.retained_set(msg(10)).ok());
}

TEST_CASE("max_bytes: new work refused, removals and session updates drain, accepted again after compaction") {
    TempDir d;
    auto log = open_log(d.path(), 8192, 4 * 8192);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(p.session_put("c", 60, 0).ok());
    REQUIRE(p.sub_put("c", "t/#", 1, 0).ok());
    uint64_t seq = 1;
    Append a;
    while ((a = p.out_enqueue("c", seq, msg(700))).ok() && seq < 1000) ++seq;
    REQUIRE(a.status == AppendStatus::QuotaExceeded);
    const uint64_t stored = seq - 1;
    CHECK(stored > 20);
    // Small records fill what is left below max_bytes, then every kind is refused.
    int n = 0;
    while (p.qos2_in_put("c", uint16_t(100 + n), 0).ok() && n < 1000) ++n;   // the smallest record
    CHECK(p.session_put("new", 60, 0).status == AppendStatus::QuotaExceeded);
    CHECK(p.sub_put("c", "u/#", 1, 0).status == AppendStatus::QuotaExceeded);
    CHECK(p.qos2_in_put("c", 1, 0).status == AppendStatus::QuotaExceeded);
    CHECK(p.retained_set(msg(10)).status == AppendStatus::QuotaExceeded);
    // The reserve: what frees space, and the stored session's own updates.
    CHECK(p.session_put("c", 60, 777).ok());
    for (uint64_t s = 1; s <= stored; ++s) {
        CHECK(p.out_state("c", s, OutState::Inflight, uint16_t(s)).ok());
        CHECK(p.out_done("c", s).ok());
    }
    CHECK(p.retained_clear("nothing").ok());
    CHECK(p.sub_remove("c", "none").ok());
    for (int i = 0; i < 50 && p.full(); ++i) {
        p.maintenance(1000);
        log->sync_now();
    }
    CHECK_FALSE(p.full());
    CHECK(p.out_enqueue("c", stored + 1, msg(700)).ok());
}

TEST_CASE("an admitted message is stored whole, past max_bytes; the next one is refused up front") {
    TempDir d;
    auto log = open_log(d.path(), 8192, 4 * 8192);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    for (const char* c : {"a", "b", "c", "d"}) REQUIRE(p.session_put(c, 60, 0).ok());
    // Plain appends up to just below max_bytes: the next 700-byte record
    // would pass it, so a fan-out to four sessions would be cut after none.
    uint64_t seq = 1;
    while (p.out_enqueue("a", seq, msg(700)).ok() && seq < 1000) ++seq;
    REQUIRE_FALSE(p.full());
    CHECK(p.out_enqueue("b", 1, msg(700)).status == AppendStatus::QuotaExceeded);
    {
        const AdmittedWrites whole(p, true);
        for (const char* c : {"a", "b", "c", "d"}) CHECK(p.out_enqueue(c, 5000, msg(700)).ok());
        CHECK(p.qos2_in_put("pub", 7, 0).ok());
    }
    CHECK(log->bytes_used() > 4 * 8192);
    CHECK(p.full());
    CHECK(p.out_enqueue("b", 5001, msg(700)).status == AppendStatus::QuotaExceeded);
    {
        const AdmittedWrites not_admitted(p, false);   // QoS 0: metered as ever
        CHECK(p.retained_set(msg(10)).status == AppendStatus::QuotaExceeded);
    }
}

TEST_CASE("disk full (ENOSPC from fallocate): removals use the spare segment, a restart drains, space returns") {
    SmallFs fs("96k");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    const uint64_t seg = 8192;
    uint64_t stored = 0;
    {
        auto log = open_log(fs.dir(), seg);
        CHECK(std::filesystem::exists(fs.dir() + "/reserve.spare"));
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        REQUIRE(p.session_put("c", 600, 0).ok());
        REQUIRE(p.sub_put("c", "t/#", 1, 0).ok());
        uint64_t seq = 1;
        Append a;
        while ((a = p.out_enqueue("c", seq, msg(900, uint8_t(seq)))).ok() && seq < 1000) ++seq;
        REQUIRE(a.status == AppendStatus::DiskFull);
        stored = seq - 1;
        CHECK(stored > 20);
        CHECK(p.full());
        CHECK(std::filesystem::exists(fs.dir() + "/reserve.spare"));   // kept for removals
        log->sync_now();
        // Dropped without a shutdown, like kill -9 (the page cache keeps what was written).
    }
    auto log = open_log(fs.dir(), seg);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(st.sessions.size() == 1);
    CHECK(st.sessions[0].out.size() == stored);   // every stored message is there
    CHECK(p.out_enqueue("c", stored + 1, msg(900)).status == AppendStatus::DiskFull);
    CHECK(p.full());
    // Small records fill the active segment, then a new session is refused.
    int n = 0;
    while (p.session_put("new" + std::to_string(n), 60, 0).ok() && n < 1000) ++n;
    CHECK(p.session_put("new", 60, 0).status == AppendStatus::DiskFull);
    // The subscriber gets in (its session is stored) and drains its queue.
    CHECK(p.session_put("c", 600, 0).ok());
    for (uint64_t s = 1; s <= stored; ++s) {
        CHECK(p.out_state("c", s, OutState::Inflight, uint16_t(s)).ok());
        CHECK(p.out_done("c", s).ok());
    }
    CHECK_FALSE(std::filesystem::exists(fs.dir() + "/reserve.spare"));   // the removals went there
    for (int i = 0; i < 50 && p.full(); ++i) {
        p.maintenance(1000);
        log->sync_now();
    }
    CHECK_FALSE(p.full());
    CHECK(std::filesystem::exists(fs.dir() + "/reserve.spare"));   // made again first
    CHECK(p.out_enqueue("c", stored + 2, msg(900)).ok());
}

TEST_CASE("disk full with the reserve used up: a delivery whose out_done was refused is not kept live") {
    SmallFs fs("96k");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    auto log = open_log(fs.dir(), 8192);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(p.session_put("c", 600, 0).ok());
    uint64_t seq = 1;
    while (p.out_enqueue("c", seq, msg(900, uint8_t(seq))).ok() && seq < 1000) ++seq;
    const uint64_t stored = seq - 1;
    // Someone else takes the space the spare segment would come back to:
    // state records fill the reserve, then removals are refused too.
    uint64_t refused = 0;
    for (uint64_t s = 1; s <= stored; ++s) {
        for (int i = 0; i < 8; ++i) (void)p.out_state("c", s, OutState::Inflight, uint16_t(s));
        if (!p.out_done("c", s).ok()) ++refused;
    }
    REQUIRE(refused > 0);
    // The broker let every delivery go: compaction must not copy any of
    // them (only the session and the last state records are live).
    CHECK(p.live_records() <= 3);
}

TEST_CASE("disk full, the spare used: removals leave compaction its room, so the store shrinks without space freed outside") {
    SmallFs fs("96k");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    const uint64_t seg = 8192;
    {
        auto log = open_log(fs.dir(), seg);
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        // A session that stays, in the oldest segment: compaction must copy it.
        REQUIRE(p.session_put("keeper", 600, 0).ok());
        REQUIRE(p.sub_put("keeper", "keep/#", 1, 0).ok());
        REQUIRE(p.session_put("c", 600, 0).ok());
        uint64_t seq = 1;
        while (p.out_enqueue("c", seq, msg(20, uint8_t(seq))).ok() && seq < 5000) ++seq;
        const uint64_t stored = seq - 1;
        REQUIRE(stored > 100);
        fill_the_rest(fs.dir());
        // A drain that writes more than it kills (QoS 2 state records over small
        // messages), with the broker's maintenance between deliveries.
        uint64_t refused = 0;
        for (uint64_t s = 1; s <= stored; ++s) {
            for (int i = 0; i < 4; ++i) (void)p.out_state("c", s, OutState::Inflight, uint16_t(s));
            if (!p.out_done("c", s).ok()) ++refused;
            p.maintenance(1000);
            log->sync_now();
        }
        for (int i = 0; i < 50; ++i) {   // the broker's idle ticks
            p.maintenance(1000);
            log->sync_now();
        }
        // The drain wrote more than it killed; compacting the segments of
        // its dead state records (newer ones, the oldest staying live) kept
        // room for it, so nothing was refused.
        CHECK(refused == 0);
        CHECK_FALSE(p.full());   // though the disk stays full outside the store
        CHECK(std::filesystem::exists(fs.dir() + "/reserve.spare"));
        CHECK(p.out_enqueue("c", stored + 1, msg(100)).ok());
        log->sync_now();
    }
    // What compaction copied is all there after a restart.
    auto again = open_log(fs.dir(), seg);
    LogPersistence p2(*again, store::SyncMode::Always);
    RecoveredState st2;
    p2.load(st2);
    REQUIRE(st2.sessions.size() == 2);
    for (const auto& s : st2.sessions) {
        if (s.client_id == "keeper") CHECK(s.subs.size() == 1);
        if (s.client_id == "c") CHECK(s.out.size() == 1);
    }
}

TEST_CASE("disk full, the spare used: a QoS 2 drain of small messages finishes, compaction emptying newer segments of dead state records") {
    SmallFs fs("96k");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    const uint64_t seg = 8192;
    uint64_t stored = 0;
    {
        auto log = open_log(fs.dir(), seg);
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        REQUIRE(p.session_put("keeper", 600, 0).ok());
        REQUIRE(p.sub_put("keeper", "keep/#", 2, 0).ok());
        // Re-subscribing leaves a removal and a put of the same key in one
        // segment: compacting it must keep the subscription.
        REQUIRE(p.session_put("c", 600, 0).ok());
        uint64_t seq = 1;
        while (p.out_enqueue("c", seq, msg(20, uint8_t(seq))).ok() && seq < 5000) {
            if (seq % 64 == 0) {
                REQUIRE(p.sub_remove("keeper", "keep/#").ok());
                REQUIRE(p.sub_put("keeper", "keep/#", 2, 0).ok());
            }
            ++seq;
        }
        stored = seq - 1;
        REQUIRE(stored > 100);
        fill_the_rest(fs.dir());
        // QoS 2 as the broker drives it: a delivery whose state record is
        // refused is not sent, and is tried again after the next tick.
        uint64_t s = 1;
        int step = 0;   // of s: 0 to send, 1 PUBREC to answer, 2 PUBCOMP to take
        auto next = [&] {
            const Append a = step == 0   ? p.out_state("c", s, OutState::Inflight, uint16_t(s))
                             : step == 1 ? p.out_state("c", s, OutState::Pubrel, uint16_t(s))
                                         : p.out_done("c", s);
            if (!a.ok()) return false;
            if (++step == 3) step = 0, ++s;
            return true;
        };
        int stalled_ticks = 0;
        while (s <= stored && stalled_ticks < 200) {
            bool progressed = false;
            while (s <= stored && next()) progressed = true;
            stalled_ticks = progressed ? 0 : stalled_ticks + 1;
            p.maintenance(1000);
            log->sync_now();
        }
        CHECK_MESSAGE(s == stored + 1, "drained " << s - 1 << " of " << stored);
        for (int i = 0; i < 50; ++i) {
            p.maintenance(1000);
            log->sync_now();
        }
        CHECK_FALSE(p.full());
        CHECK(p.out_enqueue("c", stored + 1, msg(20)).ok());
        log->sync_now();
    }
    // Nothing delivered comes back after a restart, and the rest is there.
    auto again = open_log(fs.dir(), seg);
    LogPersistence p2(*again, store::SyncMode::Always);
    RecoveredState st2;
    p2.load(st2);
    REQUIRE(st2.sessions.size() == 2);
    for (const auto& s : st2.sessions) {
        if (s.client_id == "keeper") CHECK(s.subs.size() == 1);
        if (s.client_id == "c") {
            REQUIRE(s.out.size() == 1);
            CHECK(s.out[0].seq == stored + 1);
        }
    }
}

namespace {

StoredMessage msg_on(const std::string& topic, size_t payload_bytes, uint8_t fill) {
    StoredMessage m = msg(payload_bytes, fill);
    m.topic = topic;
    return m;
}

std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> v;
    for (const auto& e : std::filesystem::directory_iterator(dir)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
}

bool has_file(const std::string& dir, const std::string& f) { return std::filesystem::exists(dir + "/" + f); }

// The segment file holding `lsn`.
std::string segment_of(const std::string& dir, uint64_t lsn) {
    std::string best;
    for (const auto& f : files_in(dir)) {
        unsigned long long base;
        if (f.size() == 20 && f.substr(16) == ".seg" && std::sscanf(f.c_str(), "%llx", &base) == 1 && base <= lsn)
            best = f;
    }
    return best;
}

}  // namespace

// A session's seqs can start again at 1 (removed and created again; or a
// log an earlier version wrote, whose recovery did not go past the seqs of
// the state records it dropped: RecoveredSession::next_seq), so
// an out_done's key can hold a new message while the old message's state
// record is still in the log: compacting the out_done's segment must not
// drop it (the old state would come back on the new message).
TEST_CASE("disk full: a newer segment's out_done whose seq holds a new message is kept") {
    SmallFs fs("96k");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    const uint64_t seg = 8192;
    {
        auto log = open_log(fs.dir(), seg);
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        REQUIRE(p.session_put("c", 600, 0).ok());
        REQUIRE(p.out_enqueue("c", 1, msg(10, 1)).ok());
        REQUIRE(p.out_state("c", 1, OutState::Pubrel, 7).ok());
        // The oldest segment stays mostly live.
        for (int i = 0; i < 13; ++i) REQUIRE(p.retained_set(msg_on("keep/" + std::to_string(i), 560, 2)).ok());
        REQUIRE(p.out_done("c", 1).ok());
        for (int i = 0; i < 24; ++i) REQUIRE(p.retained_set(msg_on("churn", 300, uint8_t(i))).ok());
        for (int i = 0; i < 45; ++i) REQUIRE(p.retained_set(msg_on("more/" + std::to_string(i), 500, 3)).ok());
        log->sync_now();
    }
    {
        auto log = open_log(fs.dir(), seg);
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        REQUIRE(st.sessions.size() == 1);
        REQUIRE(st.sessions[0].out.empty());
        REQUIRE(p.out_enqueue("c", 1, msg(10, 9)).ok());   // seq 1 again
        log->sync_now();
        fill_the_rest(fs.dir());
        for (int i = 0; i < 3000; ++i) {
            (void)p.retained_clear(std::string(1500, 'x') + std::to_string(i));
            p.maintenance(64);
            log->sync_now();
        }
    }
    auto log = open_log(fs.dir(), seg);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(st.sessions.size() == 1);
    REQUIRE(st.sessions[0].out.size() == 1);
    const RecoveredOut& o = st.sessions[0].out[0];
    CHECK(o.msg.payload == std::vector<uint8_t>(10, 9));
    CHECK(o.state == OutState::Queued);   // never sent: not waiting for a PUBCOMP
    CHECK(o.packet_id == 0);
}

// A delivery whose out_done was refused is let go with no record of it; a
// session removal stored later must keep cancelling its message for as long
// as that is in the log, also once the removal's segment is compacted as a
// newer one.
TEST_CASE("disk full: a session removed after an out_done was refused stays removed") {
    for (const bool recreate : {false, true}) {
        CAPTURE(recreate);
        SmallFs fs("96k");
        if (!fs.mounted()) {
            MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
            return;
        }
        const std::string dir = fs.dir();
        const uint64_t seg = 8192;
        {
            auto log = open_log(dir, seg);
            LogPersistence p(*log, store::SyncMode::Always);
            RecoveredState st;
            p.load(st);
            auto tick = [&] {
                p.maintenance(1000);
                log->sync_now();
            };
            REQUIRE(p.session_put("c", 600, 0, SessionOwner{OwnerSource::Password, std::string(3000, 'u')}).ok());
            const uint64_t put_lsn = log->last_lsn();
            for (int i = 0; i < 9; ++i) REQUIRE(p.retained_set(msg_on("churnA", 340, uint8_t(i))).ok());
            REQUIRE(p.retained_set(msg_on("keepA", 700, 1)).ok());
            for (int i = 0; log->segment_count() < 2 && i < 100; ++i)
                REQUIRE(p.retained_set(msg_on("padA/" + std::to_string(i), 100, 1)).ok());
            REQUIRE(p.out_enqueue("c", 1, msg(10, 1)).ok());
            const uint64_t msg_lsn = log->last_lsn();
            for (int i = 0; log->segment_count() < 3; ++i)
                REQUIRE(p.retained_set(msg_on("fill/" + std::to_string(i), 40, 3)).ok());
            for (int i = 0; i < 70; ++i) REQUIRE(p.retained_set(msg_on("more/" + std::to_string(i), 500, 3)).ok());
            log->sync_now();
            const std::string msg_seg = segment_of(dir, msg_lsn);
            REQUIRE(segment_of(dir, put_lsn) != msg_seg);
            fill_the_rest(dir);
            int n = 0;
            for (size_t len : {1000, 300, 100, 30, 10, 1})
                while (p.retained_clear(std::string(len, 'x') + std::to_string(n)).ok()) ++n;
            REQUIRE_FALSE(p.out_done("c", 1).ok());   // the broker lets the delivery go all the same
            Append removed;
            for (int i = 0; i < 300 && !(removed = p.session_remove("c")).ok(); ++i) tick();
            REQUIRE(removed.ok());
            const std::string removal_seg = segment_of(dir, removed.ticket);
            for (int i = 0; i < 4000 && !(has_file(dir, msg_seg) && !has_file(dir, removal_seg)); ++i) {
                if (!p.retained_set(msg_on("churn", 200, uint8_t(i))).ok())
                    (void)p.retained_clear(std::string(200, 'z') + std::to_string(i));
                tick();
                if (has_file(dir, "reserve.spare") || has_file(dir, "reserve.spare2")) fill_the_rest(dir);
            }
            if (recreate) {   // the client comes back with a clean start
                for (const auto& f : files_in(dir + "/..")) if (f.rfind("hog", 0) == 0) std::filesystem::remove(dir + "/../" + f);
                for (int i = 0; i < 50 && !p.session_put("c", 600, 0).ok(); ++i) tick();
                REQUIRE(p.sub_put("c", "new/#", 1, 0).ok());
                log->sync_now();
            }
        }
        auto log = open_log(dir, seg);
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        if (!recreate) {
            CHECK(st.sessions.empty());
        } else {
            REQUIRE(st.sessions.size() == 1);
            CHECK(st.sessions[0].out.empty());   // not the old session's message
        }
    }
}

TEST_CASE("a failed sync refuses new work for good; removals still go in") {
    TempDir d;
    auto log = open_log(d.path(), 8192);
    uint64_t lsn = 0;
    const std::vector<uint8_t> body(40, 1);
    REQUIRE(log->append(1, body, lsn) == store::AppendError::None);
    auto b = log->begin_sync();
    log->end_sync(b.lsn, false);
    CHECK(log->refusing());
    CHECK(log->append(1, body, lsn) == store::AppendError::IoError);
    CHECK(log->append_exempt(2, body, lsn) == store::AppendError::None);
    b = log->begin_sync();
    log->end_sync(b.lsn, true);   // proves nothing after a failure (store::Log::end_sync)
    CHECK(log->refusing());
    CHECK(log->append(1, body, lsn) == store::AppendError::IoError);
}
