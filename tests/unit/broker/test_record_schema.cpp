// The record descriptors (broker/record_schema.hpp): one per type the log
// may hold, encodings that round-trip, one apply() that leaves the same
// live records whether a record was just written or replayed, and a refused
// Append that has no ticket to read.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <sstream>

#include "broker/log_persistence.hpp"
#include "broker/message.hpp"
#include "broker/record_schema.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"

using namespace hato::broker;
using hato::store::test::TempDir;
namespace store = hato::store;

namespace {

template <class R>
std::vector<uint8_t> encoded(const R& r) {
    std::vector<uint8_t> body;
    BodyWriter w(body);
    r.encode(w);
    return body;
}

std::unique_ptr<store::Log> open_log(const std::string& dir) {
    store::Options o;
    o.dir = dir;
    o.segment_bytes = 8192;
    std::string err;
    auto log = store::Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

}  // namespace

TEST_CASE("every record type has one descriptor, named and typed as the log stores it") {
    int known = 0;
    for (int t = 0; t < 256; ++t) {
        const bool has = rec::visit(uint8_t(t), [&](auto& r) { CHECK(uint8_t(r.kType) == t); });
        known += has;
        CHECK((std::string(state_record_name(uint8_t(t))) != "?") == has);
    }
    CHECK(known == 13);
}

TEST_CASE("encodings round-trip through decode") {
    rec::SubPut sub{.client = "c", .filter = "a/#", .options = 5, .sub_id = 7};
    std::vector<uint8_t> body = encoded(sub);
    rec::SubPut sub2;
    BodyReader in(body);
    REQUIRE(rec::decode(sub2, in));
    CHECK(sub2.client == "c");
    CHECK(sub2.filter == "a/#");
    CHECK(sub2.options == 5);
    CHECK(sub2.sub_id == 7);

    StoredMessage m;
    m.topic = "t";
    m.payload = {1, 2};
    m.qos = 1;
    m.sub_ids = {3, 9};
    m.share_filter = "$share/g/t";
    rec::OutEnqueue out;
    out.client = "c";
    out.seq = 42;
    out.msg = m;
    body = encoded(out);
    rec::OutEnqueue out2;
    BodyReader in2(body);
    REQUIRE(rec::decode(out2, in2));
    CHECK(out2.seq == 42);
    CHECK(out2.msg.topic == "t");
    CHECK(out2.msg.payload.size() == 2);
    CHECK(out2.has_delivery);
    CHECK(out2.sub_ids == std::vector<uint32_t>{3, 9});
    CHECK(out2.msg.share_filter == "$share/g/t");

    // A state this version does not know is malformed: it must not load.
    body = encoded(rec::OutStateSet{.client = "c", .seq = 1, .state = 9, .packet_id = 1});
    rec::OutStateSet st;
    BodyReader in3(body);
    CHECK_FALSE(rec::decode(st, in3));
}

// out_enqueue's queue time (extension v2): written only when set, read
// back; the short form and v1 still read with no time, and a reader takes
// v2's fields from a later version that appends more.
TEST_CASE("out_enqueue: the queue time of a bridge's message, and the forms without it") {
    StoredMessage m;
    m.topic = "t";
    m.payload = {7};
    m.qos = 1;
    auto decoded = [](const std::vector<uint8_t>& body) {
        rec::OutEnqueue r;
        BodyReader in(body);
        REQUIRE(rec::decode(r, in));
        return r;
    };
    auto record = [](const StoredMessage& msg) {
        rec::OutEnqueue r;
        r.client = "c";
        r.seq = 1;
        r.msg = msg;
        return encoded(r);
    };
    const std::vector<uint8_t> short_form = record(m);
    rec::OutEnqueue got = decoded(short_form);
    CHECK_FALSE(got.has_delivery);
    CHECK(got.msg.queued_wall_ms == 0);

    m.queued_wall_ms = 1'764'000'000'123;
    std::vector<uint8_t> v2 = record(m);
    CHECK(v2.size() == short_form.size() + 1 + 4 + 4 + 8);   // version, no sub_ids, empty share, time
    got = decoded(v2);
    CHECK(got.has_delivery);
    CHECK(got.sub_ids.empty());
    CHECK(got.msg.queued_wall_ms == 1'764'000'000'123);

    // A v1 body (sub_ids and share only): no time.
    std::vector<uint8_t> v1 = short_form;
    v1.push_back(kExtensionV1);
    const uint32_t one = 1, id = 5, share_len = 0;
    for (uint32_t x : {one, id, share_len})
        for (int i = 0; i < 4; ++i) v1.push_back(uint8_t(x >> (8 * i)));
    got = decoded(v1);
    CHECK(got.sub_ids == std::vector<uint32_t>{5});
    CHECK(got.msg.queued_wall_ms == 0);

    // A later version: v2's fields, then bytes this version skips.
    std::vector<uint8_t> v3 = v2;
    v3[short_form.size()] = 3;
    v3.insert(v3.end(), {0xAA, 0xBB});
    got = decoded(v3);
    CHECK(got.msg.queued_wall_ms == 1'764'000'000'123);

    std::ostringstream dump;
    rec::OutEnqueue shown = decoded(v2);
    shown.describe(dump);
    CHECK(dump.str().find("queued_wall_ms=1764000000123") != std::string::npos);
}

// qos2_in_put keeps the digest of the message an inbound id carried; a body
// without it (an older hato's) reads as "unknown" (0), and the id, whose key
// it is, reads the same in both forms.
TEST_CASE("qos2_in_put: the message digest, and the short form without it") {
    auto decoded = [](const std::vector<uint8_t>& body) {
        rec::Qos2InPut r;
        BodyReader in(body);
        REQUIRE(rec::decode(r, in));
        CHECK(in.at_end());
        return r;
    };
    const std::vector<uint8_t> short_form = encoded(rec::Qos2InPut{.client = "c", .packet_id = 9});
    rec::Qos2InPut got = decoded(short_form);
    CHECK(got.packet_id == 9);
    CHECK(got.digest == 0);

    const uint64_t digest = message_digest("a/b", std::vector<uint8_t>{1, 2, 3}, false);
    const std::vector<uint8_t> v1 = encoded(rec::Qos2InPut{.client = "c", .packet_id = 9, .digest = digest});
    CHECK(v1.size() == short_form.size() + 1 + 8);
    got = decoded(v1);
    CHECK(got.client == "c");
    CHECK(got.packet_id == 9);
    CHECK(got.digest == digest);

    std::vector<uint8_t> later = v1;   // a later version appends more: skipped
    later[short_form.size()] = 2;
    later.push_back(0xEE);
    CHECK(decoded(later).digest == digest);
}

// The digest tells a resend (the same message) from a new message under the
// same id; it is stored, so it must not change between versions.
TEST_CASE("message_digest: what a QoS 2 message carries, never 0, and fixed") {
    const std::vector<uint8_t> p1{'2', '1', '.', '5'}, p2{'2', '1', '.', '6'}, none;
    const uint64_t d = message_digest("plant/line1/temp", p1, false);
    CHECK(d == message_digest("plant/line1/temp", p1, false));
    CHECK(d != message_digest("plant/line1/temp", p2, false));
    CHECK(d != message_digest("plant/line1/temp", p1, true));
    CHECK(d != message_digest("plant/line1/tem", std::vector<uint8_t>{'p', '2', '1', '.', '5'}, false));
    CHECK(message_digest("t", none, false) != 0);
    CHECK(message_digest("", none, false) != message_digest("", std::vector<uint8_t>{0}, false));
    std::vector<uint8_t> big(70'000, 0x5A);
    const uint64_t b = message_digest("t", big, false);
    big[69'999] ^= 1;
    CHECK(b != message_digest("t", big, false));
    // Pinned: records written by this version carry it.
    CHECK(message_digest("plant/line1/temp", p1, false) == 11331144853818757434ull);
}

TEST_CASE("a record changes the live set the same way when written and when replayed") {
    TempDir d;
    uint64_t live_written = 0;
    {
        auto log = open_log(d.path());
        LogPersistence p(*log, store::SyncMode::Always);
        StoredMessage m;
        m.topic = "r/1";
        m.qos = 1;
        CHECK(p.retained_set(m).ok());
        CHECK(p.retained_set(m).ok());   // replaces the first
        m.topic = "r/2";
        CHECK(p.retained_set(m).ok());
        CHECK(p.retained_clear("r/2").ok());
        CHECK(p.session_put("c", 60, 0).ok());
        CHECK(p.session_put("c", 60, 5).ok());
        CHECK(p.sub_put("c", "a/#", 1, 0).ok());
        CHECK(p.sub_put("c", "b/#", 1, 0).ok());
        CHECK(p.sub_remove("c", "b/#").ok());
        m.topic = "a/x";
        CHECK(p.out_enqueue("c", 1, m).ok());
        CHECK(p.out_state("c", 1, OutState::Inflight, 7).ok());
        CHECK(p.out_enqueue("c", 2, m).ok());
        CHECK(p.out_done("c", 2).ok());
        CHECK(p.qos2_in_put("c", 3, 0xABCD).ok());
        CHECK(p.qos2_in_put("c", 4, 0).ok());
        CHECK(p.qos2_in_remove("c", 4).ok());
        CHECK(p.session_put("gone", 60, 0).ok());
        CHECK(p.sub_put("gone", "x", 0, 0).ok());
        CHECK(p.session_remove("gone").ok());
        // Wills are kept apart from sessions: "gone"'s survives its session.
        StoredMessage will;
        will.topic = "status/gone";
        will.payload = {'0'};
        will.qos = 1;
        will.retain = true;
        CHECK(p.will_put("gone", will, 30, 120u, SessionOwner{OwnerSource::Password, "alice"}, 2).ok());
        CHECK(p.will_put("c", will, 0, std::nullopt, {}, -1).ok());
        CHECK(p.will_put("c", will, 0, std::nullopt, {}, -1).ok());   // replaces the first
        CHECK(p.will_remove("c").ok());
        live_written = p.live_records();
        CHECK(log->sync_now());
    }
    // r/1, session c, sub a/#, out 1 (enqueue + state), qos2 3, gone's will
    CHECK(live_written == 7);
    auto log = open_log(d.path());
    LogPersistence p(*log, store::SyncMode::Always);
    RecoveredState st;
    p.load(st);
    CHECK(p.live_records() == live_written);
    REQUIRE(st.retained.size() == 1);
    CHECK(st.retained[0].topic == "r/1");
    REQUIRE(st.sessions.size() == 1);
    CHECK(st.sessions[0].offline_since_wall_ms == 5);
    REQUIRE(st.sessions[0].subs.size() == 1);
    REQUIRE(st.sessions[0].out.size() == 1);
    CHECK(st.sessions[0].out[0].state == OutState::Inflight);
    CHECK(st.sessions[0].out[0].packet_id == 7);
    CHECK(st.sessions[0].qos2_in == std::vector<InboundQos2>{{3, 0xABCD}});
    REQUIRE(st.wills.size() == 1);
    const RecoveredWill& w = st.wills[0];
    CHECK(w.client_id == "gone");
    CHECK(w.msg.topic == "status/gone");
    CHECK(w.msg.payload == std::vector<uint8_t>{'0'});
    CHECK(w.msg.qos == 1);
    CHECK(w.msg.retain);
    CHECK(w.delay_s == 30);
    CHECK(w.expiry_s == std::optional<uint32_t>(120));
    CHECK(w.owner_source == OwnerSource::Password);
    CHECK(w.username == "alice");
    CHECK(w.listener == 2);
}

TEST_CASE("a refused Append has no ticket to read") {
    const Append refused = Append::refused(AppendStatus::DiskFull);
    CHECK_FALSE(refused.ok());
    const Append nothing;
    CHECK_FALSE(nothing.ok());   // nothing stored yet is not a success
    const Append stored = Append::stored(5);
    CHECK(stored.ok());
    CHECK(stored.ticket == 5u);
    CHECK(Append::stored(0).ticket == 0u);   // "nothing to wait for" is only ever a stored write's
    // Reading it anyway stops the process rather than hand an ack a number.
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const rlimit no_core{0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        std::signal(SIGABRT, SIG_DFL);
        const uint64_t t = refused.ticket;
        _exit(t == 0 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
}
