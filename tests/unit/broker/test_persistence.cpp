// broker::LogPersistence over a real log: every call round trips through
// load(), removals, compaction, quota, and simulated power cuts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "broker/log_persistence.hpp"
#include "store/frame.hpp"
#include "store/log.hpp"
#include "small_fs.hpp"
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
        for (const InboundQos2& in : s.qos2_in)
            lines.push_back("q " + s.client_id + " " + std::to_string(in.packet_id) + " " + std::to_string(in.digest));
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
        std::map<uint16_t, uint64_t> qos2;   // packet id -> digest
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
            for (auto [pid, digest] : s.qos2) r.qos2_in.push_back({pid, digest});
            st.sessions.push_back(r);
        }
        return st;
    }
};

// Drives persistence and the model with the same random calls. A write the
// store refuses (a full disk) changes nothing, so the model is left as it
// was; but a refused out_done still ends the delivery (it may come back after
// a restart), so its message is noted as either.
struct Workload {
    Workload(Persistence& p_, Model& m_, std::mt19937 rng_, uint64_t first_seq = 1)
        : p(&p_), m(m_), rng(rng_), next_seq(first_seq) {}
    Persistence* p;   // another after a restart
    Model& m;
    std::mt19937 rng;
    uint64_t next_seq;
    std::set<std::pair<std::string, uint64_t>> either;   // refused out_done
    uint64_t refused = 0;

    std::string client() { return "c" + std::to_string(rng() % 6); }
    bool ok(const Append& a) {
        refused += !a.ok();
        return a.ok();
    }

    void step() {
        const int n = static_cast<int>(rng() % 1000);
        const std::string c = client();
        Model::Session& s = m.sessions[c];
        switch (rng() % 12) {
            case 0:
            case 1: {
                const std::string topic = "t/" + std::to_string(rng() % 30);
                const StoredMessage msg_n = msg(topic, n);
                if (ok(p->retained_set(msg_n))) m.retained[topic] = msg_n;
                break;
            }
            case 2: {
                const std::string topic = "t/" + std::to_string(rng() % 30);
                if (ok(p->retained_clear(topic))) m.retained.erase(topic);
                break;
            }
            case 3: {
                const uint32_t expiry = static_cast<uint32_t>(n);
                const uint64_t offline = n % 2 ? 0 : 1000u + static_cast<uint64_t>(n);
                if (!ok(p->session_put(c, expiry, offline))) break;
                s.exists = true;
                s.expiry = expiry;
                s.offline = offline;
                break;
            }
            case 4:
                if (rng() % 4) break;  // rarer
                if (!ok(p->session_remove(c))) break;
                m.sessions.erase(c);
                return;
            case 5: {
                const std::string f = "f/" + std::to_string(rng() % 5) + "/#";
                const RecoveredSub sub{f, static_cast<uint8_t>(n % 64), static_cast<uint32_t>(n % 3)};
                if (ok(p->sub_put(c, f, sub.options, sub.sub_id))) s.subs[f] = sub;
                break;
            }
            case 6: {
                const std::string f = "f/" + std::to_string(rng() % 5) + "/#";
                if (ok(p->sub_remove(c, f))) s.subs.erase(f);
                break;
            }
            case 7:
            case 8: {
                RecoveredOut o;
                o.seq = next_seq++;
                o.msg = msg("q/" + c, n, 1 + n % 2);
                if (ok(p->out_enqueue(c, o.seq, o.msg))) s.out[o.seq] = o;
                break;
            }
            case 9: {
                if (s.out.empty()) break;
                auto it = std::next(s.out.begin(), static_cast<long>(rng() % s.out.size()));
                const OutState st = static_cast<OutState>(1 + n % 2);
                const uint16_t id = static_cast<uint16_t>(1 + n);
                if (!ok(p->out_state(c, it->first, st, id))) break;
                it->second.state = st;
                it->second.packet_id = id;
                break;
            }
            case 10: {
                if (s.out.empty()) break;
                auto it = std::next(s.out.begin(), static_cast<long>(rng() % s.out.size()));
                if (!ok(p->out_done(c, it->first))) either.insert({c, it->first});
                s.out.erase(it);
                break;
            }
            case 11: {
                const uint16_t id = static_cast<uint16_t>(1 + rng() % 8);
                if (rng() % 2) {
                    const uint64_t digest = rng() % 3 ? rng() : 0;   // 0: the short (older) form
                    if (ok(p->qos2_in_put(c, id, digest))) s.qos2[id] = digest;
                } else {
                    if (ok(p->qos2_in_remove(c, id))) s.qos2.erase(id);
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
        p.qos2_in_put("dev-1", 5, 11);
        p.qos2_in_put("dev-1", 6, 0x8000000000000001ull);
        p.qos2_in_remove("dev-1", 5);
        s.qos2[6] = 0x8000000000000001ull;

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
        p.qos2_in_put("c", 4, 9);
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

// A state record whose message is gone is dropped at the hand-over; its seq
// must not come back for a new message, or that state (an earlier packet
// id, a PUBREL already sent) would be replayed onto it after the next restart.
TEST_CASE("a session's next seq is past every seq its records in the log name, dropped ones included") {
    TempDir d;
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        p.session_put("c", 60, 0);
        p.out_enqueue("c", 3, msg("a", 1));
        p.out_state("c", 7, OutState::Pubrel, 12);   // its message is gone
        p.session_put("d", 60, 0);
        p.out_enqueue("d", 4, msg("a", 1));
        p.out_done("d", 4);
        p.session_put("e", 60, 0);
        log->sync_now();
    }
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    std::map<std::string, const RecoveredSession*> by_id;
    for (const RecoveredSession& s : st.sessions) by_id[s.client_id] = &s;
    REQUIRE(by_id.size() == 3);
    REQUIRE(by_id["c"]->out.size() == 1);
    CHECK(by_id["c"]->out[0].seq == 3);
    CHECK(by_id["c"]->next_seq == 8);
    CHECK(by_id["d"]->out.empty());
    CHECK(by_id["d"]->next_seq == 5);
    CHECK(by_id["e"]->next_seq == 1);
}

// A newer hato's records (a type this version does not know, a body that
// does not decode) survive a run of this version, compaction included: a
// downgrade and the way back lose nothing.
TEST_CASE("records this version cannot read are kept live through compaction and reopening") {
    TempDir d;
    const std::vector<uint8_t> future{1, 'f', 'u', 't', 'u', 'r', 'e'};
    const std::vector<uint8_t> garbage{0xff, 0xff, 0xff, 0x7f, 'x'};
    const uint8_t kUnknownType = 99;
    const auto session_put = static_cast<uint8_t>(StateRecord::SessionPut);
    {
        auto log = open_log(d.path());
        uint64_t lsn = 0;
        REQUIRE(log->append(kUnknownType, future, lsn) == store::AppendError::None);
        REQUIRE(log->append(session_put, garbage, lsn) == store::AppendError::None);
        log->sync_now();
    }
    auto unread_bodies = [](store::Log& log) {
        std::vector<std::vector<uint8_t>> out;
        log.replay([&](const store::RecordView& r) {
            if (r.type == kUnknownType || r.type == static_cast<uint8_t>(StateRecord::SessionPut))
                out.emplace_back(r.body.begin(), r.body.end());
        });
        return out;
    };
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        RecoveredState st;
        p.load(st);
        CHECK(st.sessions.empty());
        CHECK(p.unread_records() == 2);
        CHECK(p.live_records() == 2);
        // Enough churn that compaction empties the first segments.
        for (int i = 0; i < 400; ++i) {
            p.retained_set(msg("t/" + std::to_string(i % 5), i));
            p.maintenance(64);
        }
        log->sync_now();
        uint64_t oldest = UINT64_MAX;
        log->replay([&](const store::RecordView& r) { oldest = std::min(oldest, r.lsn); });
        CHECK(oldest > 2);   // the two records were copied forward, not left behind
        CHECK(unread_bodies(*log) == std::vector<std::vector<uint8_t>>{future, garbage});
        CHECK(p.unread_records() == 2);
        CHECK(p.live_records() == 2 + 5);
    }
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    CHECK(p.unread_records() == 2);
    CHECK(st.retained.size() == 5);
    CHECK(unread_bodies(*log) == std::vector<std::vector<uint8_t>>{future, garbage});
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

// The canonical text without the queued messages whose out_done was refused
// (they may or may not come back).
std::string canonical_but(const RecoveredState& st, const std::set<std::pair<std::string, uint64_t>>& either) {
    RecoveredState trimmed = st;
    for (auto& s : trimmed.sessions)
        std::erase_if(s.out, [&](const RecoveredOut& o) { return either.count({s.client_id, o.seq}) > 0; });
    return canonical(trimmed);
}

// The lines of `a` that `b` lacks (as many times as it lacks them).
std::string lines_not_in(const std::string& a, const std::string& b) {
    std::multiset<std::string> in_b;
    std::istringstream bs(b);
    for (std::string line; std::getline(bs, line);) in_b.insert(line);
    std::string out;
    std::istringstream as(a);
    for (std::string line; std::getline(as, line);) {
        if (auto it = in_b.find(line); it != in_b.end()) in_b.erase(it);
        else out += line + "\n";
    }
    return out;
}

// One run of the test below, with its own small file system.
// Returns how much of the drain's backlog is left.
size_t full_disk_workload(uint32_t seed, bool restarts = true) {
    CAPTURE(seed);
    t::SmallFs fs("192k");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return 0;
    }
    // The store as a broker holds it; reopened as after kill -9 (what was
    // written stays: the page cache has it), wherever compaction was.
    struct Store {
        std::unique_ptr<store::Log> log;
        std::unique_ptr<LogPersistence> p;
        explicit Store(const std::string& dir) : log(open_log(dir, 8192)) {
            p = std::make_unique<LogPersistence>(*log, store::SyncMode::Always);
            RecoveredState st;
            p->load(st);
        }
    };
    auto s = std::make_unique<Store>(fs.dir());
    Model m;
    Workload w{*s->p, m, std::mt19937(seed)};
    int newer_compacted = 0;
    auto tick = [&] {
        const auto before = t::segment_files(fs.dir());
        s->p->maintenance(8);
        s->log->sync_now();
        const auto after = t::segment_files(fs.dir());
        // A segment gone that was not the oldest: a newer one compacted.
        for (size_t k = 1; k < before.size(); ++k)
            if (std::find(after.begin(), after.end(), before[k]) == after.end()) ++newer_compacted;
    };
    auto compare = [&](const std::string& when) {
        RecoveredState now;
        LogPersistence(*s->log, store::SyncMode::Always).load(now);
        const std::string got = canonical_but(now, w.either), want = canonical_but(m.state(), w.either);
        CHECK_MESSAGE(got == want, when << ": recovered but not in the model:\n"
                                       << lines_not_in(got, want) << "in the model, not recovered:\n"
                                       << lines_not_in(want, got));
    };
    for (int i = 0; i < 3000; ++i) {
        w.step();
        if (i % 10 == 0) tick();
    }
    // A persistent QoS 2 subscriber's backlog of small messages, drained
    // once the disk is full, amid everything else.
    Model::Session& d = m.sessions["drain"];
    REQUIRE(s->p->session_put("drain", 600, 0).ok());
    d.exists = true;
    d.expiry = 600;
    while (d.out.size() < 1500) {
        RecoveredOut o;
        o.seq = w.next_seq++;
        o.msg = msg("q/d", int(o.seq % 3) * 40, 2);   // no payload
        if (!s->p->out_enqueue("drain", o.seq, o.msg).ok()) break;
        d.out[o.seq] = o;
    }
    t::fill_the_rest(fs.dir());
    const uint64_t refused_before = w.refused;
    std::mt19937 crash_at(seed);
    int step = 0;   // of the drain's front message: to send, PUBREC to answer, PUBCOMP to take
    for (int i = 0; i < 40000; ++i) {
        if (i % 4) {
            w.step();
        } else if (!d.out.empty()) {
            auto front = d.out.begin();
            const uint64_t seq = front->first;
            const uint16_t id = uint16_t(seq);
            Persistence& p = *s->p;
            const Append a = step == 0   ? p.out_state("drain", seq, OutState::Inflight, id)
                             : step == 1 ? p.out_state("drain", seq, OutState::Pubrel, id)
                                         : p.out_done("drain", seq);
            if (a.ok() && step < 2) {
                front->second.state = step == 0 ? OutState::Inflight : OutState::Pubrel;
                front->second.packet_id = id;
                ++step;
            } else if (step == 2) {
                // A refused out_done ends the delivery all the same (the
                // broker lets it go); it may come back after a restart.
                if (!a.ok()) w.either.insert({"drain", seq});
                d.out.erase(front);
                step = 0;
            }
        }
        if (i % 10 == 0) tick();
        if (crash_at() % 4000 == 0 && restarts) {
            compare("before a restart");
            s.reset();
            s = std::make_unique<Store>(fs.dir());
            w.p = s->p.get();
            compare("after a restart");
        }
    }
    // Whether the drain finishes is not asserted here: amid this mix, with
    // restarts, it still stalls in about one seed in a hundred, where a
    // restart cuts a newer segment's compaction without the room to start
    // it over (docs/durability.md, "A drain that writes more than it
    // frees"); the drain alone finishes (test_persistence_refusals.cpp,
    // test_disk_full_qos2_drain.py).
    MESSAGE(d.out.size() << " of the backlog left; " << s->log->segment_count() << " segments, "
                         << s->log->bytes_used() << " bytes used, " << s->log->dead_bytes() << " dead");
    MESSAGE("refused " << w.refused - refused_before << ", newer segments compacted " << newer_compacted
                       << ", out_done refused " << w.either.size());
    CHECK(w.refused > refused_before);   // the disk did fill
    CHECK(newer_compacted > 0);
    compare("at the end");
    s.reset();
    s = std::make_unique<Store>(fs.dir());
    compare("after the last restart");
    return d.out.size();
}

TEST_CASE("random workload on a disk that stays full: compacting newer segments keeps load() equal to the model") {
    // More, or others, by hand: HATO_TEST_SEEDS=count, HATO_TEST_SEED=first,
    // HATO_TEST_NO_RESTARTS=1.
    const char* count = std::getenv("HATO_TEST_SEEDS");
    const char* first = std::getenv("HATO_TEST_SEED");
    const uint32_t from = first ? uint32_t(std::atoi(first)) : 2027;
    const uint32_t n = count ? uint32_t(std::atoi(count)) : 4;
    const bool restarts = !std::getenv("HATO_TEST_NO_RESTARTS");
    for (uint32_t seed = from; seed < from + n; ++seed) full_disk_workload(seed, restarts);
}

TEST_CASE("random workload on a disk that stays full: seeds whose drain stalled while every out_done was kept as long as the oldest segment lived now finish") {
    // Without restarts the drain stalled in about two seeds of three while
    // an out_done was copied forward until the drain's backlog, in the
    // oldest segments, was gone; now one stays only while a record of its
    // message may (Log::mark_removal's `exactly`). These stalled before.
    for (uint32_t seed : {5u, 7u, 8u}) CHECK(full_disk_workload(seed, false) == 0);
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
