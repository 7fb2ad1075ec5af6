// Liveness accounting and the disk bound: what LogPersistence and the log
// believe is live must equal what a fresh replay of the same log finds, and
// with compaction running as the server runs it the log stays within
// 2 x live bytes + 3 segments (docs/durability.md), whatever the record mix.
#include <doctest/doctest.h>

#include <filesystem>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "broker/broker.hpp"
#include "broker/log_persistence.hpp"
#include "store/frame.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"

// Calls here build up state; what a refusal returns is tested in
// test_refusals.cpp.
#pragma GCC diagnostic ignored "-Wunused-result"

using namespace hato::broker;
using hato::store::test::TempDir;
namespace store = hato::store;

namespace {

constexpr uint64_t kSeg = 16384;

std::unique_ptr<store::Log> open_log(const std::string& dir, uint64_t seg = kSeg) {
    store::Options o;
    o.dir = dir;
    o.segment_bytes = seg;
    std::string err;
    auto log = store::Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

StoredMessage msg(const std::string& topic, size_t payload, uint8_t fill) {
    StoredMessage m;
    m.topic = topic;
    m.payload.assign(payload, fill);
    m.qos = 1;
    return m;
}

std::string canonical(const RecoveredState& st) {
    std::vector<std::string> lines;
    for (const auto& m : st.retained)
        lines.push_back("R " + m.topic + " " + std::to_string(m.payload.size()) + " " +
                        std::to_string(m.payload.empty() ? 0 : m.payload[0]));
    for (const auto& s : st.sessions) {
        lines.push_back("S " + s.client_id + " " + std::to_string(s.expiry_s));
        for (const auto& sub : s.subs) lines.push_back("s " + s.client_id + " " + sub.filter);
        for (const auto& o : s.out)
            lines.push_back("o " + s.client_id + " " + std::to_string(o.seq) + " " + std::to_string(int(o.state)) +
                            " " + std::to_string(o.packet_id) + " " + o.msg.topic + " " +
                            std::to_string(o.msg.payload.size()));
        for (const InboundQos2& in : s.qos2_in)
            lines.push_back("q " + s.client_id + " " + std::to_string(in.packet_id) + " " + std::to_string(in.digest));
    }
    for (const auto& w : st.wills)
        lines.push_back("W " + w.client_id + " " + w.msg.topic + " " + std::to_string(w.msg.payload.size()) + " " +
                        std::to_string(w.delay_s));
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

// The obvious model of what was told to persistence.
struct Model {
    struct Out {
        StoredMessage msg;
        bool has_state = false;
        uint8_t state = 0;
        uint16_t packet_id = 0;
    };
    struct Session {
        uint32_t expiry = 0;
        std::set<std::string> subs;
        std::map<uint64_t, Out> out;
        std::map<uint16_t, uint64_t> qos2;   // packet id -> digest
    };
    std::map<std::string, StoredMessage> retained;
    std::map<std::string, Session> sessions;
    std::map<std::string, RecoveredWill> wills;   // apart from sessions

    std::string text() const {
        RecoveredState st;
        for (const auto& [id, w] : wills) st.wills.push_back(w);
        for (const auto& [t, m] : retained) st.retained.push_back(m);
        for (const auto& [id, s] : sessions) {
            RecoveredSession r;
            r.client_id = id;
            r.expiry_s = s.expiry;
            for (const auto& f : s.subs) r.subs.push_back(RecoveredSub{f, 0, 0});
            for (const auto& [seq, o] : s.out) {
                RecoveredOut ro;
                ro.seq = seq;
                ro.msg = o.msg;
                ro.state = static_cast<OutState>(o.state);
                ro.packet_id = o.packet_id;
                r.out.push_back(ro);
            }
            for (auto [pid, digest] : s.qos2) r.qos2_in.push_back({pid, digest});
            st.sessions.push_back(r);
        }
        return canonical(st);
    }
    // Records that hold state: one per piece of it (a delivery with a state
    // update holds two).
    uint64_t live_records() const {
        uint64_t n = retained.size() + wills.size();
        for (const auto& [id, s] : sessions) {
            n += 1 + s.subs.size() + s.qos2.size();
            for (const auto& [seq, o] : s.out) n += 1 + o.has_state;
        }
        return n;
    }
};

// Random calls of every kind, to persistence and the model alike. Sessions
// exist before anything is stored under them, as the broker does it.
struct Workload {
    LogPersistence& p;
    Model& m;
    std::mt19937 rng;
    uint64_t next_seq = 1;

    std::string client() { return "c" + std::to_string(rng() % 8); }
    Model::Session* existing(const std::string& id) {
        auto it = m.sessions.find(id);
        return it == m.sessions.end() ? nullptr : &it->second;
    }
    size_t payload() {
        // Mostly small, now and then large: dead bytes must be weighed by size.
        return rng() % 10 == 0 ? 1000 + rng() % 3000 : rng() % 60;
    }

    void step() {
        const std::string id = client();
        Model::Session* s = existing(id);
        const unsigned op = rng() % 100;
        if (!s || op < 3) {
            const uint32_t expiry = 1 + rng() % 1000;
            (void)p.session_put(id, expiry, 0);
            m.sessions[id].expiry = expiry;
            return;
        }
        if (op < 6) {
            (void)p.session_remove(id);
            m.sessions.erase(id);
            return;
        }
        if (op < 12) {
            const std::string f = "f/" + std::to_string(rng() % 5);
            (void)p.sub_put(id, f, 0, 0);
            s->subs.insert(f);
            return;
        }
        if (op < 15) {
            const std::string f = "f/" + std::to_string(rng() % 5);
            (void)p.sub_remove(id, f);
            s->subs.erase(f);
            return;
        }
        if (op < 22) {
            const std::string t = "r/" + std::to_string(rng() % 20);
            StoredMessage r = msg(t, payload(), static_cast<uint8_t>(rng()));
            r.retain = true;
            (void)p.retained_set(r);
            m.retained[t] = r;
            return;
        }
        if (op < 25) {
            const std::string t = "r/" + std::to_string(rng() % 20);
            (void)p.retained_clear(t);
            m.retained.erase(t);
            return;
        }
        if (op < 29) {
            const uint16_t pid = static_cast<uint16_t>(1 + rng() % 10);
            const uint64_t digest = rng() % 3 ? rng() : 0;   // 0: the short (older) form
            (void)p.qos2_in_put(id, pid, digest);
            s->qos2[pid] = digest;
            return;
        }
        if (op < 33) {
            const uint16_t pid = static_cast<uint16_t>(1 + rng() % 10);
            (void)p.qos2_in_remove(id, pid);
            s->qos2.erase(pid);
            return;
        }
        if (op < 37) {   // a will, for a client with a session or (once it is removed) without
            RecoveredWill& w = m.wills[id];
            w.client_id = id;
            w.msg = msg("w/" + id, payload(), static_cast<uint8_t>(rng()));
            w.delay_s = rng() % 3;
            (void)p.will_put(id, w.msg, w.delay_s, std::nullopt, {}, -1);
            return;
        }
        if (op < 39) {
            (void)p.will_remove(id);
            m.wills.erase(id);
            return;
        }
        if (op < 60) {
            const uint64_t seq = next_seq++;
            StoredMessage q = msg("q/" + id, payload(), static_cast<uint8_t>(seq));
            (void)p.out_enqueue(id, seq, q);
            s->out[seq].msg = q;
            return;
        }
        if (s->out.empty()) return;
        auto it = s->out.begin();
        std::advance(it, rng() % s->out.size());
        if (op < 72) {
            const uint16_t pid = static_cast<uint16_t>(1 + rng() % 1000);
            const OutState st = rng() % 2 ? OutState::Inflight : OutState::Pubrel;
            (void)p.out_state(id, it->first, st, pid);
            it->second.has_state = true;
            it->second.state = static_cast<uint8_t>(st);
            it->second.packet_id = pid;
            return;
        }
        (void)p.out_done(id, it->first);
        s->out.erase(it);
    }
};

// Spans of every record a fresh replay of the log directory keeps live, and
// what it loads; checked against the writer's view.
void check_against_replay(const std::string& dir, store::Log& log, LogPersistence& p, const Model& m) {
    const uint64_t live = p.live_records();
    CHECK(live == m.live_records());
    // The log's own view: every record not marked dead is live, and only those.
    CHECK(log.record_count() - log.dead_records() == live);

    // A copy: the live log holds the directory's lock (one writer per store).
    TempDir copy("/dev/shm");
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".seg") std::filesystem::copy_file(e.path(), copy.sub(e.path().filename().string()));
    auto fresh = open_log(copy.path());
    LogPersistence q(*fresh, store::SyncMode::Always);
    RecoveredState st;
    q.load(st);
    CHECK(canonical(st) == m.text());
    CHECK(q.live_records() == live);
    CHECK(fresh->record_count() - fresh->dead_records() == live);
    CHECK(fresh->bytes_used() - fresh->dead_bytes() == log.bytes_used() - log.dead_bytes());
}

// The bound docs/durability.md states, in segment files on disk.
void check_bound(store::Log& log) {
    const uint64_t live_bytes = log.bytes_used() - log.dead_bytes();
    CHECK(log.bytes_used() <= 2 * live_bytes + 3 * kSeg);
    CHECK(log.segment_count() * kSeg <= 2 * live_bytes + 4 * kSeg);
}

}  // namespace

TEST_CASE("mark_dead weighs records by size, once, and ignores what is not there") {
    TempDir d("/dev/shm");
    auto log = open_log(d.path());
    std::vector<uint8_t> small(10), big(3000);
    uint64_t a = 0, b = 0;
    REQUIRE(log->append(1, small, a) == store::AppendError::None);
    REQUIRE(log->append(1, big, b) == store::AppendError::None);
    log->mark_dead(b);
    CHECK(log->dead_bytes() == store::record_span(big.size()));
    log->mark_dead(b);  // twice: no change
    log->mark_dead(b + 100);
    CHECK(log->dead_records() == 1);
    CHECK(log->dead_bytes() == store::record_span(big.size()));
    log->mark_dead(a);
    CHECK(log->dead_bytes() == log->bytes_used());
}

TEST_CASE("random workload: accounting equals a fresh replay, and the disk bound holds") {
    TempDir d("/dev/shm");
    Model m;
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    Workload w{p, m, std::mt19937(2026)};
    uint64_t peak_segments = 0;
    for (int i = 0; i < 20000; ++i) {
        w.step();
        p.maintenance(0);  // each loop pass, paced to its appends
        if (i % 25 == 0) log->sync_now();
        // The tick: a fixed budget, far below what the passes in between
        // appended (as at 10k msg/s with 256 records per 100 ms tick).
        if (i % 200 == 0) p.maintenance(32, 0);
        if (i % 250 == 249) {  // also mid-compaction: copies made, old segment not yet gone
            log->sync_now();
            check_against_replay(d.path(), *log, p, m);
        }
        check_bound(*log);
        peak_segments = std::max(peak_segments, log->segment_count());
    }
    CHECK(peak_segments > 3);  // segments did roll

    // Drop everything: the log shrinks back to almost nothing on ticks alone.
    for (const auto& [t, r] : m.retained) (void)p.retained_clear(t);
    for (const auto& [id, s] : m.sessions) (void)p.session_remove(id);
    for (const auto& [id, w] : m.wills) (void)p.will_remove(id);
    m = Model{};
    for (int i = 0; i < 1000 && log->wants_compaction(); ++i) {
        p.maintenance(256, 1 << 20);
        log->sync_now();
    }
    CHECK_FALSE(log->wants_compaction());
    CHECK(log->segment_count() <= 2);
    check_against_replay(d.path(), *log, p, m);
}

TEST_CASE("sustained deliveries with a few long-lived records: compaction keeps up") {
    // The shape of a persistent QoS 1 stream: enqueue, then done shortly
    // after; retained messages and sessions stay live throughout.
    TempDir d("/dev/shm");
    Model m;
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    for (int c = 0; c < 4; ++c) (void)p.session_put("c" + std::to_string(c), 100, 0);
    for (int t = 0; t < 10; ++t) (void)p.retained_set(msg("keep/" + std::to_string(t), 200, 1));
    uint64_t seq = 1;
    std::vector<std::pair<std::string, uint64_t>> pending;
    for (int pass = 0; pass < 4000; ++pass) {
        for (int k = 0; k < 8; ++k) {
            const std::string id = "c" + std::to_string(k % 4);
            (void)p.out_enqueue(id, seq, msg("s", 64, 2));
            pending.emplace_back(id, seq++);
        }
        while (pending.size() > 16) {
            (void)p.out_done(pending.front().first, pending.front().second);
            pending.erase(pending.begin());
        }
        p.maintenance(0);
        if (pass % 10 == 0) p.maintenance(20, 0);  // the tick: 1/8 of what 10 passes append
        log->sync_now();
        check_bound(*log);
    }
    CHECK(p.live_records() == 4 + 10 + pending.size());
    CHECK(log->segment_count() <= 4);
}

namespace {
struct NullTransport final : Transport {
    void send(ConnId, std::span<const uint8_t>) override {}
    size_t queued_bytes(ConnId) const override { return 0; }
    void close(ConnId) override {}
};
}  // namespace

TEST_CASE("retained messages that expired while the broker was down are cleared in the log") {
    TempDir d("/dev/shm");
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        StoredMessage gone = msg("gone", 10, 1);
        gone.retain = true;
        gone.expiry_wall_ms = 1000;  // long past
        (void)p.retained_set(gone);
        StoredMessage kept = msg("kept", 10, 2);
        kept.retain = true;
        (void)p.retained_set(kept);
        log->sync_now();
    }
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        NullTransport transport;
        Config cfg;
        Broker broker(cfg, transport, p);
        broker.recover();
        CHECK(p.live_records() == 1);  // only "kept"
        CHECK(log->record_count() - log->dead_records() == 1);
        log->sync_now();
    }
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(st.retained.size() == 1);
    CHECK(st.retained[0].topic == "kept");
    CHECK(p.live_records() == 1);
}
