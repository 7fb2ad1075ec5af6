// What a queued delivery and its session carry through LogPersistence: the
// session's owner (user name and where it came from), the delivery's
// subscription identifiers and shared subscription, next to expiry, QoS and
// retain. Records written before these fields existed still load.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "broker/log_persistence.hpp"
#include "store/log.hpp"
#include "broker/state_records.hpp"
#include "temp_dir.hpp"

// Calls here build up state; what a refusal returns is tested in
// test_refusals.cpp.
#pragma GCC diagnostic ignored "-Wunused-result"

using namespace hato::broker;
using hato::store::test::TempDir;
namespace store = hato::store;

namespace {

std::unique_ptr<store::Log> open_log(const std::string& dir, uint64_t seg = 8192) {
    store::Options o;
    o.dir = dir;
    o.segment_bytes = seg;
    std::string err;
    auto log = store::Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

StoredMessage delivery(std::string topic, std::vector<uint32_t> ids, std::string share = {}) {
    StoredMessage m;
    m.topic = std::move(topic);
    m.payload = {1, 2, 3};
    m.forwarded_props = {0x01, 0x01};   // payload format indicator
    m.qos = 2;
    m.retain = true;                     // retain-as-published
    m.expiry_wall_ms = 1800000000123ull;
    m.sub_ids = std::move(ids);
    m.share_filter = std::move(share);
    return m;
}

RecoveredState load(store::Log& log) {
    LogPersistence p(log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    std::sort(st.sessions.begin(), st.sessions.end(),
              [](const RecoveredSession& a, const RecoveredSession& b) { return a.client_id < b.client_id; });
    return st;
}

void check_same(const StoredMessage& got, const StoredMessage& want) {
    CHECK(got.topic == want.topic);
    CHECK(got.payload == want.payload);
    CHECK(got.forwarded_props == want.forwarded_props);
    CHECK(got.qos == want.qos);
    CHECK(got.retain == want.retain);
    CHECK(got.expiry_wall_ms == want.expiry_wall_ms);
    CHECK(got.sub_ids == want.sub_ids);
    CHECK(got.share_filter == want.share_filter);
}

}  // namespace

TEST_CASE("session owner and delivery fields round trip through load()") {
    TempDir d;
    const StoredMessage a1 = delivery("secret/plan", {7, 300000});
    const StoredMessage a2 = delivery("w/tasks", {9}, "$share/w/+/tasks");
    const StoredMessage b1 = delivery("t", {});
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        p.session_put("alice-dev", 3600, 0, {OwnerSource::Password, "alice"});
        p.session_put("alice-dev", 3600, 42, {OwnerSource::Password, "alice"});   // latest wins
        p.session_put("cert-dev", 60, 5, {OwnerSource::Certificate, "sensor-1"});
        p.session_put("anon", 60, 5, {OwnerSource::Anonymous, {}});
        p.out_enqueue("alice-dev", 1, a1);
        p.out_enqueue("alice-dev", 2, a2);
        p.out_state("alice-dev", 2, OutState::Inflight, 11);
        p.out_enqueue("anon", 1, b1);
        CHECK(log->sync_now());
    }
    auto log = open_log(d.path());
    const RecoveredState st = load(*log);
    REQUIRE(st.sessions.size() == 3);
    const RecoveredSession& alice = st.sessions[0];
    CHECK(alice.client_id == "alice-dev");
    CHECK(alice.owner_source == OwnerSource::Password);
    CHECK(alice.username == "alice");
    CHECK(alice.offline_since_wall_ms == 42);
    REQUIRE(alice.out.size() == 2);
    check_same(alice.out[0].msg, a1);
    check_same(alice.out[1].msg, a2);
    CHECK(alice.out[1].state == OutState::Inflight);
    CHECK(alice.out[1].packet_id == 11);
    const RecoveredSession& anon = st.sessions[1];
    CHECK(anon.owner_source == OwnerSource::Anonymous);
    CHECK(anon.username.empty());
    REQUIRE(anon.out.size() == 1);
    check_same(anon.out[0].msg, b1);
    const RecoveredSession& cert = st.sessions[2];
    CHECK(cert.owner_source == OwnerSource::Certificate);
    CHECK(cert.username == "sensor-1");
}

TEST_CASE("the new fields survive compaction") {
    TempDir d;
    const StoredMessage kept = delivery("secret/plan", {1, 2, 3}, "$share/g/secret/#");
    {
        auto log = open_log(d.path(), 4096);
        LogPersistence p(*log, store::SyncMode::Always);
        p.session_put("alice-dev", 3600, 0, {OwnerSource::Password, "alice"});
        p.out_enqueue("alice-dev", 1, kept);
        // Enough dead records behind them that compaction moves the live ones.
        for (uint64_t seq = 2; seq < 200; ++seq) {
            p.out_enqueue("filler", seq, delivery("f", {4}));
            p.out_done("filler", seq);
        }
        for (int i = 0; i < 100 && log->wants_compaction(); ++i) p.maintenance(64);
        CHECK(log->sync_now());
        for (int i = 0; i < 100 && log->wants_compaction(); ++i) p.maintenance(64);
        CHECK(log->sync_now());
    }
    // The first segment (where both records were written) is gone: they were moved.
    CHECK_FALSE(std::filesystem::exists(std::filesystem::path(d.path()) / "0000000000000001.seg"));
    auto log = open_log(d.path(), 4096);
    const RecoveredState st = load(*log);
    REQUIRE(st.sessions.size() == 1);
    CHECK(st.sessions[0].owner_source == OwnerSource::Password);
    CHECK(st.sessions[0].username == "alice");
    REQUIRE(st.sessions[0].out.size() == 1);
    check_same(st.sessions[0].out[0].msg, kept);
}

TEST_CASE("records in the old format (no owner, no delivery fields) still load") {
    TempDir d;
    {
        auto log = open_log(d.path());
        std::vector<uint8_t> body;
        uint64_t lsn = 0;
        // session_put as older versions wrote it: client, expiry, offline_since.
        {
            BodyWriter w(body);
            w.str("old-dev");
            w.u32(3600);
            w.u64(77);
        }
        REQUIRE(log->append(uint8_t(StateRecord::SessionPut), body, lsn) == store::AppendError::None);
        // out_enqueue: client, seq, message (topic, payload, props, qos, retain, expiry).
        {
            BodyWriter w(body);
            w.str("old-dev");
            w.u64(5);
            w.str("a/b");
            const uint8_t payload[] = {'h', 'i'};
            w.bytes(payload);
            w.bytes({});
            w.u8(1);
            w.u8(0);
            w.u64(0);
        }
        REQUIRE(log->append(uint8_t(StateRecord::OutEnqueue), body, lsn) == store::AppendError::None);
        CHECK(describe_state_record(uint8_t(StateRecord::OutEnqueue), body).find("MALFORMED") ==
              std::string::npos);
        CHECK(log->sync_now());
    }
    auto log = open_log(d.path());
    const RecoveredState st = load(*log);
    REQUIRE(st.sessions.size() == 1);
    const RecoveredSession& s = st.sessions[0];
    CHECK(s.client_id == "old-dev");
    CHECK(s.expiry_s == 3600);
    CHECK(s.offline_since_wall_ms == 77);
    CHECK(s.owner_source == OwnerSource::Unknown);   // claimed by the next CONNECT
    CHECK(s.username.empty());
    REQUIRE(s.out.size() == 1);
    CHECK(s.out[0].seq == 5);
    CHECK(s.out[0].msg.topic == "a/b");
    CHECK(s.out[0].msg.qos == 1);
    CHECK(s.out[0].msg.sub_ids.empty());
    CHECK(s.out[0].msg.share_filter.empty());
}

TEST_CASE("store dump shows the owner and the delivery fields") {
    std::vector<uint8_t> body;
    {
        BodyWriter w(body);
        w.str("c");
        w.u32(60);
        w.u64(0);
        w.u8(kExtensionV1);
        w.u8(uint8_t(OwnerSource::Certificate));
        w.str("sensor-1");
        w.u8(0xEE);   // a field of a later version: skipped
    }
    const std::string s = describe_state_record(uint8_t(StateRecord::SessionPut), body);
    CHECK(s.find("owner_source=3 username=\"sensor-1\"") != std::string::npos);
    CHECK(s.find("MALFORMED") == std::string::npos);
}

TEST_CASE("a delivery with no subscription ids and no shared subscription is written in the short form") {
    // The common case costs no bytes on the hot path: the body is the
    // older format, which loads with both empty.
    TempDir d;
    auto log = open_log(d.path());
    {
        LogPersistence p(*log, store::SyncMode::Always);
        p.out_enqueue("c", 1, delivery("t", {}));
        CHECK(log->sync_now());
    }
    std::vector<uint8_t> want;
    {
        BodyWriter w(want);
        w.str("c");
        w.u64(1);
        w.str("t");
        const uint8_t payload[] = {1, 2, 3};
        w.bytes(payload);
        const uint8_t props[] = {0x01, 0x01};
        w.bytes(props);
        w.u8(2);
        w.u8(1);
        w.u64(1800000000123ull);
    }
    std::vector<std::vector<uint8_t>> bodies;
    log->replay([&](const store::RecordView& rec) { bodies.emplace_back(rec.body.begin(), rec.body.end()); });
    REQUIRE(bodies.size() == 1);
    CHECK(bodies[0] == want);
    const RecoveredState st = load(*log);
    REQUIRE(st.sessions.size() == 1);
    REQUIRE(st.sessions[0].out.size() == 1);
    check_same(st.sessions[0].out[0].msg, delivery("t", {}));
}

TEST_CASE("an owner source this version does not know is judged by the user name, not left unknown") {
    TempDir d;
    {
        auto log = open_log(d.path());
        uint64_t lsn = 0;
        for (auto [id, user] : {std::pair{"named", "alice"}, std::pair{"nameless", ""}}) {
            std::vector<uint8_t> body;
            BodyWriter w(body);
            w.str(id);
            w.u32(3600);
            w.u64(0);
            w.u8(kExtensionV1);
            w.u8(0x7F);   // a source from a later version
            w.str(user);
            REQUIRE(log->append(uint8_t(StateRecord::SessionPut), body, lsn) == store::AppendError::None);
        }
        CHECK(log->sync_now());
    }
    auto log = open_log(d.path());
    const RecoveredState st = load(*log);
    REQUIRE(st.sessions.size() == 2);
    CHECK(st.sessions[0].client_id == "named");
    CHECK(st.sessions[0].owner_source == OwnerSource::Password);
    CHECK(st.sessions[0].username == "alice");
    CHECK(st.sessions[1].client_id == "nameless");
    CHECK(st.sessions[1].owner_source == OwnerSource::Anonymous);
}
