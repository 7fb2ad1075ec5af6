// broker::LogPersistence over a real log: every call round trips through
// load(), removals, compaction, quota, and simulated power cuts.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "broker/log_persistence.hpp"
#include "store/frame.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"

// Most calls here build up state; what a refusal returns is tested in
// test_refusals.cpp.
#pragma GCC diagnostic ignored "-Wunused-result"

using namespace hato::broker;
using hato::store::test::TempDir;
namespace store = hato::store;
namespace t = hato::store::test;

namespace {

std::unique_ptr<store::Log> open_log(const std::string& dir, uint64_t seg = 8192, uint64_t max = 0) {
    store::Options o;
    o.dir = dir;
    o.segment_bytes = seg;
    o.max_bytes = max;
    std::string err;
    auto log = store::Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

StoredMessage msg(const std::string& topic, int n, uint8_t qos = 1) {
    StoredMessage m;
    m.topic = topic;
    m.payload.assign(static_cast<size_t>(n % 40), static_cast<uint8_t>(n));
    if (n % 3 == 0) m.forwarded_props = {0x23, 0x00, static_cast<uint8_t>(n)};
    m.qos = qos;
    m.retain = n % 2;
    m.expiry_wall_ms = n % 5 ? 0 : 1700000000000ull + static_cast<uint64_t>(n);
    return m;
}

std::string describe(const StoredMessage& m) {
    std::ostringstream os;
    os << m.topic << "|" << m.payload.size() << ":";
    for (uint8_t b : m.payload) os << int(b) << ",";
    os << "|";
    for (uint8_t b : m.forwarded_props) os << int(b) << ",";
    os << "|" << int(m.qos) << int(m.retain) << "|" << m.expiry_wall_ms;
    return os.str();
}

// A canonical text of a recovered state: comparable whatever the map order.
std::string canonical(const RecoveredState& st) {
    std::vector<std::string> lines;
    for (const auto& m : st.retained) lines.push_back("R " + describe(m));
    for (const auto& s : st.sessions) {
        std::ostringstream os;
        os << "S " << s.client_id << " " << s.expiry_s << " " << s.offline_since_wall_ms;
        lines.push_back(os.str());
        for (const auto& sub : s.subs)
            lines.push_back("s " + s.client_id + " " + sub.filter + " " + std::to_string(sub.options) + " " +
                            std::to_string(sub.sub_id));
        uint64_t prev = 0;
        for (const auto& o : s.out) {
            CHECK(o.seq > prev);  // sorted by seq
            prev = o.seq;
            lines.push_back("o " + s.client_id + " " + std::to_string(o.seq) + " " +
                            std::to_string(int(o.state)) + " " + std::to_string(o.packet_id) + " " +
                            describe(o.msg));
        }
        for (uint16_t id : s.qos2_in) lines.push_back("q " + s.client_id + " " + std::to_string(id));
    }
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

// What the broker told persistence, kept the obvious way.
struct Model {
    struct Session {
        bool exists = false;
        uint32_t expiry = 0;
        uint64_t offline = 0;
        std::map<std::string, RecoveredSub> subs;
        std::map<uint64_t, RecoveredOut> out;
        std::set<uint16_t> qos2;
    };
    std::map<std::string, StoredMessage> retained;
    std::map<std::string, Session> sessions;

    RecoveredState state() const {
        RecoveredState st;
        for (const auto& [t, m] : retained) st.retained.push_back(m);
        for (const auto& [id, s] : sessions) {
            RecoveredSession r;
            r.client_id = id;
            r.expiry_s = s.expiry;
            r.offline_since_wall_ms = s.offline;
            for (const auto& [f, sub] : s.subs) r.subs.push_back(sub);
            for (const auto& [seq, o] : s.out) r.out.push_back(o);
            r.qos2_in.assign(s.qos2.begin(), s.qos2.end());
            st.sessions.push_back(r);
        }
        return st;
    }
};

// Drives persistence and the model with the same random calls.
struct Workload {
    Persistence& p;
    Model& m;
    std::mt19937 rng;
    uint64_t next_seq = 1;

    std::string client() { return "c" + std::to_string(rng() % 6); }

    void step() {
        const int n = static_cast<int>(rng() % 1000);
        const std::string c = client();
        Model::Session& s = m.sessions[c];
        switch (rng() % 12) {
            case 0:
            case 1: {
                const std::string topic = "t/" + std::to_string(rng() % 30);
                m.retained[topic] = msg(topic, n);
                p.retained_set(m.retained[topic]);
                break;
            }
            case 2: {
                const std::string topic = "t/" + std::to_string(rng() % 30);
                m.retained.erase(topic);
                p.retained_clear(topic);
                break;
            }
            case 3:
                s.exists = true;
                s.expiry = static_cast<uint32_t>(n);
                s.offline = n % 2 ? 0 : 1000u + static_cast<uint64_t>(n);
                p.session_put(c, s.expiry, s.offline);
                break;
            case 4:
                if (rng() % 4) break;  // rarer
                m.sessions.erase(c);
                p.session_remove(c);
                return;
            case 5: {
                const std::string f = "f/" + std::to_string(rng() % 5) + "/#";
                s.subs[f] = RecoveredSub{f, static_cast<uint8_t>(n % 64), static_cast<uint32_t>(n % 3)};
                p.sub_put(c, f, s.subs[f].options, s.subs[f].sub_id);
                break;
            }
            case 6: {
                const std::string f = "f/" + std::to_string(rng() % 5) + "/#";
                s.subs.erase(f);
                p.sub_remove(c, f);
                break;
            }
            case 7:
            case 8: {
                RecoveredOut o;
                o.seq = next_seq++;
                o.msg = msg("q/" + c, n, 1 + n % 2);
                s.out[o.seq] = o;
                p.out_enqueue(c, o.seq, o.msg);
                break;
            }
            case 9: {
                if (s.out.empty()) break;
                auto it = std::next(s.out.begin(), static_cast<long>(rng() % s.out.size()));
                it->second.state = static_cast<OutState>(1 + n % 2);
                it->second.packet_id = static_cast<uint16_t>(1 + n);
                p.out_state(c, it->first, it->second.state, it->second.packet_id);
                break;
            }
            case 10: {
                if (s.out.empty()) break;
                auto it = std::next(s.out.begin(), static_cast<long>(rng() % s.out.size()));
                p.out_done(c, it->first);
                s.out.erase(it);
                break;
            }
            case 11: {
                const uint16_t id = static_cast<uint16_t>(1 + rng() % 8);
                if (rng() % 2) {
                    s.qos2.insert(id);
                    p.qos2_in_put(c, id);
                } else {
                    s.qos2.erase(id);
                    p.qos2_in_remove(c, id);
                }
                break;
            }
        }
        // A session the model has only touched (never written) is not recovered.
        if (!s.exists && s.subs.empty() && s.out.empty() && s.qos2.empty()) m.sessions.erase(c);
    }
};

std::string load_canonical(store::Log& log) {
    LogPersistence p(log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    return canonical(st);
}

}  // namespace

TEST_CASE("every call type round trips through load()") {
    TempDir d;
    Model m;
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState empty;
        p.load(empty);
        CHECK(empty.retained.empty());
        CHECK(empty.sessions.empty());

        m.retained["a/b"] = msg("a/b", 7);
        p.retained_set(m.retained["a/b"]);
        p.retained_set(msg("gone", 1));
        p.retained_clear("gone");
        auto& s = m.sessions["dev-1"];
        s = Model::Session{true, 3600, 12345, {}, {}, {}};
        p.session_put("dev-1", 10, 0);
        const uint64_t put_ticket = p.session_put("dev-1", 3600, 12345).ticket;  // latest wins
        s.subs["x/+"] = RecoveredSub{"x/+", 0x15, 9};
        p.sub_put("dev-1", "x/+", 0x15, 9);
        p.sub_put("dev-1", "y", 1, 0);
        p.sub_remove("dev-1", "y");
        for (uint64_t seq = 1; seq <= 4; ++seq) {
            s.out[seq] = RecoveredOut{seq, OutState::Queued, 0, msg("q", static_cast<int>(seq), 2)};
            p.out_enqueue("dev-1", seq, s.out[seq].msg);
        }
        s.out[2].state = OutState::Inflight;
        s.out[2].packet_id = 77;
        p.out_state("dev-1", 2, OutState::Inflight, 77);
        s.out[3].state = OutState::Pubrel;
        s.out[3].packet_id = 78;
        p.out_state("dev-1", 3, OutState::Inflight, 78);
        p.out_state("dev-1", 3, OutState::Pubrel, 78);
        p.out_done("dev-1", 1);
        s.out.erase(1);
        p.qos2_in_put("dev-1", 5);
        p.qos2_in_put("dev-1", 6);
        p.qos2_in_remove("dev-1", 5);
        s.qos2.insert(6);

        CHECK(put_ticket > 0);
        CHECK(p.durable_ticket() < put_ticket);  // Always: durable only once synced
        CHECK(log->sync_now());
        CHECK(p.durable_ticket() == log->last_lsn());
        CHECK(p.live_records() == 1 + 1 + 1 + 3 + 2 + 1);
        CHECK_FALSE(p.full());
    }
    auto log = open_log(d.path());
    CHECK(load_canonical(*log) == canonical(m.state()));
}

TEST_CASE("session_remove drops the session with its subs, queue and qos2 ids") {
    TempDir d;
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        p.session_put("c", 60, 0);
        p.sub_put("c", "a", 1, 0);
        p.out_enqueue("c", 1, msg("a", 1));
        p.out_state("c", 1, OutState::Inflight, 1);
        p.qos2_in_put("c", 4);
        p.session_put("other", 5, 0);
        p.session_remove("c");
        CHECK(p.live_records() == 1);
        // Recreated: only what comes after the removal.
        p.session_put("c", 30, 99);
        p.sub_put("c", "b", 2, 0);
        log->sync_now();
    }
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    REQUIRE(st.sessions.size() == 2);
    auto it = std::find_if(st.sessions.begin(), st.sessions.end(),
                           [](const RecoveredSession& s) { return s.client_id == "c"; });
    REQUIRE(it != st.sessions.end());
    CHECK(it->expiry_s == 30);
    CHECK(it->offline_since_wall_ms == 99);
    REQUIRE(it->subs.size() == 1);
    CHECK(it->subs[0].filter == "b");
    CHECK(it->out.empty());
    CHECK(it->qos2_in.empty());
    CHECK(p.live_records() == 3);
}

TEST_CASE("random workload with compaction: load() equals the model, out sorted after moves") {
    TempDir d;
    Model m;
    {
        auto log = open_log(d.path(), 8192);
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        Workload w{p, m, std::mt19937(11)};
        int compacted_segments = 0;
        for (int i = 0; i < 6000; ++i) {
            w.step();
            if (i % 10 == 0) {
                const uint64_t before = log->segment_count();
                p.maintenance(8);
                log->sync_now();
                if (log->segment_count() < before) ++compacted_segments;
            }
        }
        CHECK(compacted_segments > 0);
        CHECK(load_canonical(*log) == canonical(m.state()));  // a second reader of the same log
    }
    auto log = open_log(d.path(), 8192);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    CHECK(canonical(st) == canonical(m.state()));
    // Keep going after recovery: the rebuilt bookkeeping drives compaction right.
    Workload w{p, m, std::mt19937(12), 1000000};
    for (int i = 0; i < 3000; ++i) {
        w.step();
        if (i % 10 == 0) {
            p.maintenance(8);
            log->sync_now();
        }
    }
    log.reset();
    auto again = open_log(d.path(), 8192);
    CHECK(load_canonical(*again) == canonical(m.state()));
}

TEST_CASE("a full store refuses until compaction frees space") {
    TempDir d;
    auto log = open_log(d.path(), 4096, 16384);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    int n = 0;
    while (!p.full() && n < 10000) p.retained_set(msg("same/topic", n++));  // each supersedes the last
    CHECK(p.full());
    CHECK(n < 10000);
    // Removals still go through when full.
    const uint64_t before = log->last_lsn();
    p.retained_clear("never/set");
    CHECK(log->last_lsn() == before + 1);
    for (int i = 0; i < 100 && log->wants_compaction(); ++i) {
        p.maintenance(64);
        log->sync_now();
    }
    CHECK_FALSE(p.full());
    p.retained_set(msg("same/topic", 5));
    CHECK_FALSE(p.full());
    log->sync_now();
    RecoveredState after;
    LogPersistence reader(*log, store::SyncMode::Always);
    reader.load(after);
    REQUIRE(after.retained.size() == 1);
    CHECK(describe(after.retained[0]) == describe(msg("same/topic", 5)));
}

TEST_CASE("Interval and Off modes: tickets count as durable at once") {
    TempDir d;
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Interval);
    const uint64_t t = p.session_put("c", 1, 0).ticket;
    CHECK(p.durable_ticket() >= t);
}

TEST_CASE("power cut: after a sync and a torn record, everything up to the durable ticket is there") {
    TempDir live;
    Model m;
    auto log = open_log(live.path(), 8192);
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    Workload w{p, m, std::mt19937(5)};
    std::mt19937 rng(9);
    int checked = 0;
    for (int round = 0; round < 40; ++round) {
        const int steps = 1 + static_cast<int>(rng() % 60);
        for (int i = 0; i < steps; ++i) w.step();
        if (round % 3 == 0) p.maintenance(16);
        log->sync_now();
        const uint64_t ticket = p.durable_ticket();
        REQUIRE(ticket == log->last_lsn());
        const std::string expected = canonical(m.state());

        // The disk as a power cut right now would leave it: the synced files.
        TempDir cut("/dev/shm");
        t::copy_segments(live.path(), cut.path());
        // ...plus the first part of the next record, written but never synced.
        const auto files = t::segment_files(live.path());
        const std::string last_name = std::filesystem::path(files.back()).filename().string();
        auto image = t::read_file(cut.sub(last_name));
        uint64_t base = 0;
        store::parse_segment_file_name(last_name, base);
        const uint64_t synced_end = store::scan_segment(image.data(), image.size(), base).end;
        w.step();  // appends one or more records (possibly none)
        const auto after = t::read_file(files.back());
        const store::SegmentScan grown = store::scan_segment(after.data(), after.size(), base);
        if (grown.end > synced_end) {
            // Stop before the last nonzero byte of the first new record, so it
            // stays torn (trailing zeros of a record already read as written).
            const uint64_t first_bytes =
                store::kHeaderBytes + store::read_record(after.data() + synced_end).body.size();
            uint64_t last_nonzero = first_bytes - 1;
            while (after[synced_end + last_nonzero] == 0) --last_nonzero;
            const uint64_t torn = 1 + rng() % last_nonzero;
            std::copy(after.begin() + static_cast<long>(synced_end),
                      after.begin() + static_cast<long>(synced_end + torn),
                      image.begin() + static_cast<long>(synced_end));
            t::write_file(cut.sub(last_name), image);
        }
        auto reopened = open_log(cut.path(), 8192);
        INFO("synced_end ", synced_end, " grown ", grown.end, " base ", base, " summary ", reopened->recovery_summary());
        CHECK(reopened->last_lsn() == ticket);
        CHECK(load_canonical(*reopened) == expected);
        ++checked;
    }
    CHECK(checked == 40);
}

TEST_CASE("load() hands retained messages to a sink in first-set order, each announced ahead") {
    // The broker's recovery path: a RetainedSink instead of out.retained.
    struct Sink final : RetainedSink {
        size_t expected = 0;
        std::vector<std::string> hinted, added;
        void expect(size_t n) override { expected = n; }
        void prefetch(std::string_view topic) override { hinted.emplace_back(topic); }
        void add(const StoredMessageView& m) override {
            // Every message was announced, and before it was added.
            CHECK(std::find(hinted.begin(), hinted.end(), std::string(m.topic)) != hinted.end());
            added.push_back(describe(m.owned()));
        }
    };
    TempDir d;
    std::vector<std::string> want;
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Off);
        RecoveredState st;
        p.load(st);
        for (int i = 0; i < 40; ++i) p.retained_set(msg("t/" + std::to_string(i), i));
        for (int i = 0; i < 40; i += 3) p.retained_clear("t/" + std::to_string(i));
        p.retained_set(msg("t/3", 100));   // cleared, then set again: now last
        p.retained_set(msg("t/4", 101));   // replaced: keeps its place
        for (int i = 0; i < 40; ++i) {
            if (i % 3 == 0) continue;
            want.push_back(describe(msg("t/" + std::to_string(i), i == 4 ? 101 : i)));
        }
        want.push_back(describe(msg("t/3", 100)));
    }
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Off);
    Sink sink;
    RecoveredState st;
    st.retained_sink = &sink;
    p.load(st);
    CHECK(st.retained.empty());
    CHECK(sink.expected == want.size());
    CHECK(sink.added == want);
    CHECK(sink.hinted.size() == want.size());
    // The table still finds every topic afterwards (keys point into the log).
    CHECK(p.live_records() == want.size());
    p.retained_clear("t/1");
    CHECK(p.live_records() == want.size() - 1);
}
