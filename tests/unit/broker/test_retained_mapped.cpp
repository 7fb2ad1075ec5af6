// Retained messages served from the log's mapping (RetainedStore over
// LogPersistence): the table holds references to retained_set records, and
// compaction, which copies live records and deletes their old segment, must
// leave every reference pointing at a copy; a restart must rebuild them.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>

#include "broker/broker.hpp"
#include "broker/log_persistence.hpp"
#include "broker/retained_store.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"
#include "test_broker_harness.hpp"

using namespace hato::broker;
using hato::store::test::TempDir;
namespace store = hato::store;

namespace {

constexpr uint64_t kSeg = 16384;

std::unique_ptr<store::Log> open_log(const std::string& dir) {
    store::Options o;
    o.dir = dir;
    o.segment_bytes = kSeg;
    std::string err;
    auto log = store::Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

// 100 bytes that say which topic and which version they are.
std::string payload_of(int topic, int version) {
    std::string p = "t" + std::to_string(topic) + "v" + std::to_string(version) + ":";
    p.resize(100, char('a' + (topic + version) % 26));
    return p;
}

MsgPtr retained_msg(const std::string& topic, const std::string& payload) {
    Message::Init in;
    in.topic = topic;
    in.payload = {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
    in.qos = 1;
    in.retain = true;
    return Message::make(in);
}

// Topic -> payload of everything `filter` matches.
std::map<std::string, std::string> contents(const RetainedStore& rs, std::string_view filter = "#") {
    std::vector<MsgPtr> found;
    rs.match(filter, 0, 0, found);
    std::map<std::string, std::string> out;
    for (const MsgPtr& m : found)
        out[std::string(m->topic())] = std::string(m->payload().begin(), m->payload().end());
    return out;
}

// Sets every topic in `model` through the store, as the broker does.
void set(LogPersistence& p, RetainedStore& rs, std::map<std::string, std::string>& model,
         const std::string& topic, const std::string& payload) {
    MsgPtr m = retained_msg(topic, payload);
    REQUIRE(p.retained_set(to_stored(*m, m->qos, true)).status == AppendStatus::Stored);
    rs.put_written(m);
    model[topic] = payload;
}

// Runs compaction until the log wants no more; returns the segments removed.
int compact_all(store::Log& log, LogPersistence& p) {
    int removed = 0;
    for (int i = 0; i < 1000 && log.wants_compaction(); ++i) {
        const uint64_t before = log.segment_count();
        p.maintenance(64, 1 << 20);
        log.sync_now();
        if (log.segment_count() < before) removed += int(before - log.segment_count());
    }
    return removed;
}

// A sink that builds the table the way Broker::recover() does.
struct StoreSink final : RetainedSink {
    RetainedStore& rs;
    explicit StoreSink(RetainedStore& r) : rs(r) {}
    void expect(size_t n) override { rs.reserve(n); }
    void add(const StoredMessageView& m) override { rs.put(from_stored(m, 0, 0)); }
    void add_stored(const StoredMessageView& m, const void* ref) override { rs.put_stored(m, ref); }
};

uint64_t bytes_of(const std::map<std::string, std::string>& model) {
    uint64_t n = 0;
    for (const auto& [t, p] : model) n += t.size() + p.size();
    return n;
}

}  // namespace

TEST_CASE("retained messages held as log references survive compaction moving them, and a restart") {
    TempDir d("/dev/shm");
    std::map<std::string, std::string> model;
    constexpr int kTopics = 300;
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        RetainedStore rs(p);
        // Every topic once (these records fill the oldest segments), then
        // only the even ones again and again: the oldest segments become
        // mostly dead, and compaction must move the odd topics' records.
        for (int i = 0; i < kTopics; ++i) set(p, rs, model, "r/" + std::to_string(i), payload_of(i, 0));
        for (int v = 1; v <= 4; ++v)
            for (int i = 0; i < kTopics; i += 2) set(p, rs, model, "r/" + std::to_string(i), payload_of(i, v));
        for (int i = 0; i < kTopics; i += 10) {   // and some are cleared
            REQUIRE(p.retained_clear("r/" + std::to_string(i)).status == AppendStatus::Stored);
            CHECK(rs.clear("r/" + std::to_string(i)));
            model.erase("r/" + std::to_string(i));
        }
        CHECK(rs.stored_count() == model.size());   // none kept as a heap copy
        CHECK(rs.bytes() == bytes_of(model));

        const uint64_t segments = log->segment_count();
        CHECK(compact_all(*log, p) > 0);
        CHECK(log->segment_count() < segments);
        // The odd topics' first records were in the removed segments.
        CHECK(contents(rs) == model);
        CHECK(contents(rs, "r/7") == std::map<std::string, std::string>{{"r/7", payload_of(7, 0)}});
        CHECK(rs.size() == model.size());
        CHECK(rs.bytes() == bytes_of(model));
        // And after more churn and another round of compaction.
        for (int v = 5; v <= 8; ++v)
            for (int i = 1; i < kTopics; i += 4) set(p, rs, model, "r/" + std::to_string(i), payload_of(i, v));
        compact_all(*log, p);
        CHECK(contents(rs) == model);
        log->sync_now();
    }
    // A restart: the table is rebuilt from references into the mapping.
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RetainedStore rs(p);
    StoreSink sink(rs);
    RecoveredState st;
    st.retained_sink = &sink;
    p.load(st);
    CHECK(rs.stored_count() == model.size());
    CHECK(contents(rs) == model);
    // Compaction after the restart moves recovered references too.
    for (int v = 9; v <= 14; ++v)
        for (int i = 0; i < kTopics; i += 3) set(p, rs, model, "r/" + std::to_string(i), payload_of(i, v));
    CHECK(compact_all(*log, p) > 0);
    CHECK(contents(rs) == model);
    CHECK(rs.bytes() == bytes_of(model));
}

TEST_CASE("the broker delivers retained messages from the log after compaction and after a restart") {
    using namespace hato::broker::test;
    TempDir d("/dev/shm");
    constexpr int kTopics = 120;
    auto check_all = [&](Harness& h, int odd_version) {
        TestClient sub(h, Version::V5);
        sub.connect("reader");
        sub.subscribe("r/#", 1);
        std::map<std::string, std::string> got;
        for (const Packet& pk : sub.extra()) {
            REQUIRE(std::holds_alternative<Publish>(pk));
            const Publish& pub = std::get<Publish>(pk);
            CHECK(pub.retain);
            got[std::string(pub.topic)] = text(pub.payload);
        }
        REQUIRE(got.size() == size_t(kTopics));
        for (int i = 0; i < kTopics; ++i)
            CHECK(got["r/" + std::to_string(i)] == payload_of(i, i % 2 ? odd_version : 3));
        sub.disconnect();
    };
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Off);
        Harness h;
        h.broker = std::make_unique<Broker>(h.cfg, h.transport, p);
        h.broker->on_tick(0);
        h.broker->recover();
        TestClient pub(h, Version::V5);
        pub.connect("writer");
        for (int v = 0; v <= 3; ++v)
            for (int i = 0; i < kTopics; ++i)
                if (v == 0 || i % 2 == 0) pub.publish("r/" + std::to_string(i), payload_of(i, v), 0, true);
        CHECK(compact_all(*log, p) > 0);
        check_all(h, 0);
        log->sync_now();
        h.broker.reset();
    }
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Off);
    Harness h;
    h.broker = std::make_unique<Broker>(h.cfg, h.transport, p);
    h.broker->on_tick(0);
    h.broker->recover();
    check_all(h, 0);
    // Overwrite the odd ones after the restart, compact, and read again.
    TestClient pub(h, Version::V5);
    pub.connect("writer2");
    for (int v = 1; v <= 3; ++v)
        for (int i = 1; i < kTopics; i += 2) pub.publish("r/" + std::to_string(i), payload_of(i, v + 10), 0, true);
    compact_all(*log, p);
    check_all(h, 13);
}
