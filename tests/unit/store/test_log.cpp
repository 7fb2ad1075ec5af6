// The append log alone: framing, recovery from torn and corrupt data,
// segments, quota, sync bookkeeping, compaction.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <random>
#include <sstream>

#include "store/crc32c.hpp"
#include "store/frame.hpp"
#include "store/inspect.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"

using namespace hato::store;
using hato::store::test::TempDir;
namespace t = hato::store::test;

namespace {

struct Rec {
    uint64_t lsn;
    uint8_t type;
    std::vector<uint8_t> body;
    bool operator==(const Rec&) const = default;
};

std::unique_ptr<Log> open_log(const std::string& dir, uint64_t seg = 4096, uint64_t max = 0,
                              SyncMode sync = SyncMode::Always) {
    Options o;
    o.dir = dir;
    o.segment_bytes = seg;
    o.max_bytes = max;
    o.sync = sync;
    std::string err;
    auto log = Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

std::vector<Rec> all_records(Log& log) {
    std::vector<Rec> out;
    log.replay([&](const RecordView& r) {
        out.push_back(Rec{r.lsn, r.type, std::vector<uint8_t>(r.body.begin(), r.body.end())});
    });
    return out;
}

std::vector<uint8_t> body_of(uint32_t i, size_t len) {
    std::vector<uint8_t> b(len);
    for (size_t k = 0; k < len; ++k) b[k] = static_cast<uint8_t>(i * 31 + k);
    return b;
}

// Appends n records of varied sizes; returns them as written.
std::vector<Rec> fill(Log& log, uint32_t n, uint32_t first = 0) {
    std::vector<Rec> recs;
    for (uint32_t i = first; i < first + n; ++i) {
        Rec r{0, static_cast<uint8_t>(1 + i % 7), body_of(i, (i * 13) % 90)};
        REQUIRE(log.append(r.type, r.body, r.lsn) == AppendError::None);
        recs.push_back(r);
    }
    return recs;
}

}  // namespace

TEST_CASE("crc32c: known value, hardware and software agree") {
    const char* s = "123456789";
    CHECK(crc32c(0, s, 9) == 0xE3069283u);
    CHECK(crc32c_software(0, s, 9) == 0xE3069283u);
    std::mt19937 rng(7);
    std::vector<uint8_t> data(1000);
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 1000u}) {
        CHECK(crc32c(0, data.data(), len) == crc32c_software(0, data.data(), len));
        // Extending in two pieces equals one pass.
        const uint32_t split = crc32c(crc32c(0, data.data(), len / 3), data.data() + len / 3, len - len / 3);
        CHECK(split == crc32c_software(0, data.data(), len));
    }
}

TEST_CASE("framing round trips through reopen") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path());
        written = fill(*log, 30);
        CHECK(log->last_lsn() == 30);
        CHECK(log->durable_lsn() == 0);
        CHECK(log->sync_now());
        CHECK(log->durable_lsn() == 30);
        CHECK(all_records(*log) == written);
    }
    auto log = open_log(d.path());
    CHECK(all_records(*log) == written);
    CHECK(log->last_lsn() == 30);
    CHECK(log->durable_lsn() == 30);
    CHECK(record_span(0) == 24);
    CHECK(record_span(1) == 32);
}

TEST_CASE("recovery at every truncation offset keeps exactly the whole records") {
    TempDir src;
    std::vector<Rec> written;
    {
        auto log = open_log(src.path());
        written = fill(*log, 12);
        log->sync_now();
    }
    const auto file = t::segment_files(src.path()).at(0);
    const auto image = t::read_file(file);
    // Offsets where each record's bytes end (its zero padding is implied).
    std::vector<uint64_t> ends;
    uint64_t off = 0;
    for (const auto& r : written) {
        ends.push_back(off + kHeaderBytes + r.body.size());
        off += record_span(r.body.size());
    }
    const uint64_t used = off;

    for (int physical = 0; physical < 2; ++physical) {
        for (uint64_t cut = 0; cut <= used; ++cut) {
            INFO("cut at ", cut, " physical ", physical);
            TempDir d("/dev/shm");
            // Either the preallocated file with zeros after `cut`, or a file
            // physically cut short.
            std::vector<uint8_t> copy(image.begin(), image.begin() + static_cast<long>(cut));
            if (!physical) copy.resize(image.size(), 0);
            t::write_file(d.sub(std::filesystem::path(file).filename().string()), copy);
            // A file cut short is used in whole 8-byte units only.
            const uint64_t usable = physical ? cut & ~uint64_t(7) : cut;
            const size_t whole =
                static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), usable) - ends.begin());
            std::vector<Rec> expect(written.begin(), written.begin() + static_cast<long>(whole));
            {
                auto log = open_log(d.path());
                REQUIRE(all_records(*log) == expect);
                Rec extra{0, 9, body_of(99, 17)};
                REQUIRE(log->append(extra.type, extra.body, extra.lsn) == AppendError::None);
                CHECK(extra.lsn == whole + 1);
                log->sync_now();
                expect.push_back(extra);
            }
            auto log = open_log(d.path());
            REQUIRE(all_records(*log) == expect);
        }
    }
}

TEST_CASE("an empty segment file cut short is replaced by a full one") {
    TempDir d;
    // Holds no whole record and is too short for the next: the new segment
    // needs its name.
    t::write_file(d.sub(segment_file_name(1)), std::vector<uint8_t>(40, 0));
    {
        auto log = open_log(d.path());
        uint64_t lsn = 0;
        REQUIRE(log->append(1, body_of(1, 100), lsn) == AppendError::None);
        CHECK(lsn == 1);
        log->sync_now();
    }
    auto log = open_log(d.path());
    CHECK(all_records(*log).size() == 1);
    CHECK(log->segment_count() == 1);
}

TEST_CASE("garbage or zero pages over the tail are cut, the log stays appendable") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path(), 16384);
        written = fill(*log, 40);
        log->sync_now();
    }
    const auto file = t::segment_files(d.path()).at(0);
    auto image = t::read_file(file);
    uint64_t used = 0;
    for (const auto& r : written) used += record_span(r.body.size());

    SUBCASE("random garbage after the last record") {
        std::mt19937 rng(1);
        for (uint64_t i = used; i < used + 5000; ++i) image[i] = static_cast<uint8_t>(rng());
        t::write_file(file, image);
    }
    SUBCASE("a zero page in the middle drops what follows") {
        // Zero the page holding record 20's start; records from there on go.
        uint64_t off = 0;
        for (size_t i = 0; i < 20; ++i) off += record_span(written[i].body.size());
        std::memset(image.data() + off, 0, 4096 - off % 4096);
        t::write_file(file, image);
        written.resize(20);
    }
    {
        auto log = open_log(d.path(), 16384);
        REQUIRE(all_records(*log) == written);
        Rec extra{0, 3, body_of(5, 40)};
        REQUIRE(log->append(extra.type, extra.body, extra.lsn) == AppendError::None);
        log->sync_now();
        written.push_back(extra);
    }
    auto log = open_log(d.path(), 16384);
    CHECK(all_records(*log) == written);
}

TEST_CASE("a bit flip loses that record only, in the last segment or an older one") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path(), 4096);
        written = fill(*log, 200);  // several segments
        log->sync_now();
        REQUIRE(log->segment_count() > 3);
    }
    auto files = t::segment_files(d.path());
    SUBCASE("in the last segment: skipped, the records after it kept") {
        auto image = t::read_file(files.back());
        std::ostringstream dump;
        REQUIRE(store_dump(d.path(), dump) == 0);
        // The last segment's first record: flip a bit in its body.
        uint64_t base = 0;
        parse_segment_file_name(std::filesystem::path(files.back()).filename().string(), base);
        const auto first = std::find_if(written.begin(), written.end(), [&](const Rec& r) { return r.lsn == base; });
        REQUIRE(first != written.end());
        REQUIRE(written.end() - first > 2);  // records after it in that segment
        image[30] ^= 0x10;
        t::write_file(files.back(), image);
        const uint64_t lost_span = record_span(first->body.size());
        written.erase(first);
        std::ostringstream report;
        CHECK(store_verify(d.path(), report) == 1);
        CHECK(report.str().find("offset 0 length " + std::to_string(lost_span)) != std::string::npos);
        auto log = open_log(d.path(), 4096);
        CHECK(all_records(*log) == written);
        REQUIRE(log->recovery_errors().size() == 1);
        CHECK(log->recovery_errors()[0].find("skipped") != std::string::npos);
        uint64_t lsn = 0;
        REQUIRE(log->append(1, body_of(1, 5), lsn) == AppendError::None);
        CHECK(lsn == 201);
    }
    SUBCASE("in an older segment: skipped, the rest of it and later segments kept") {
        auto image = t::read_file(files[1]);
        uint64_t base = 0;
        parse_segment_file_name(std::filesystem::path(files[1]).filename().string(), base);
        // Second record of segment 1.
        const auto first = std::find_if(written.begin(), written.end(), [&](const Rec& r) { return r.lsn == base; });
        const uint64_t off = record_span(first->body.size());
        image[off + 5] ^= 0x01;  // inside the length field
        t::write_file(files[1], image);
        written.erase(first + 1);
        std::ostringstream report;
        CHECK(store_verify(d.path(), report) == 1);
        auto log = open_log(d.path(), 4096);
        CHECK(all_records(*log) == written);
        REQUIRE(log->recovery_errors().size() == 1);
        CHECK(log->recovery_errors()[0].find(std::filesystem::path(files[1]).filename().string()) !=
              std::string::npos);
        // Appends continue after the highest LSN.
        uint64_t lsn = 0;
        REQUIRE(log->append(1, body_of(1, 5), lsn) == AppendError::None);
        CHECK(lsn == 201);
    }
}

TEST_CASE("many segments, verify and dump") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path(), 4096);
        written = fill(*log, 1000);
        log->sync_now();
        CHECK(log->segment_count() == t::segment_files(d.path()).size());
        CHECK(log->segment_count() > 10);
    }
    auto log = open_log(d.path(), 4096);
    CHECK(all_records(*log) == written);
    std::ostringstream report, dump;
    CHECK(store_verify(d.path(), report) == 0);
    CHECK(report.str().find("1000 record(s): ok") != std::string::npos);
    CHECK(store_dump(d.path(), dump) == 0);
    const std::string text = dump.str();
    CHECK(std::count(text.begin(), text.end(), '\n') == 1000 + log->segment_count());
    CHECK(text.find("\n1000 ") != std::string::npos);
}

TEST_CASE("quota: appends past max_bytes are refused, exempt ones still pass") {
    TempDir d;
    auto log = open_log(d.path(), 4096, 10000);
    uint64_t lsn = 0;
    AppendError e = AppendError::None;
    int n = 0;
    while ((e = log->append(1, body_of(n, 100), lsn)) == AppendError::None) ++n;
    CHECK(e == AppendError::QuotaExceeded);
    CHECK(n == 10000 / record_span(100));
    CHECK(log->bytes_used() <= 10000);
    CHECK(log->append_exempt(2, body_of(0, 10), lsn) == AppendError::None);
    CHECK(log->append(1, std::vector<uint8_t>(5000), lsn) == AppendError::TooLarge);
}

TEST_CASE("sync bookkeeping: batches, failures, Off mode") {
    TempDir d;
    {
        auto log = open_log(d.path());
        uint64_t lsn = 0;
        log->append(1, body_of(1, 10), lsn);
        auto b = log->begin_sync();
        CHECK(b.lsn == 1);
        CHECK(b.fds.size() == 1);
        log->append(1, body_of(2, 10), lsn);  // lands in the next batch
        log->end_sync(b.lsn, true);
        CHECK(log->durable_lsn() == 1);
        b = log->begin_sync();
        CHECK(b.lsn == 2);
        CHECK(b.fds.size() == 1);
        log->end_sync(b.lsn, true);
        b = log->begin_sync();  // nothing new: nothing to sync
        CHECK(b.fds.empty());
        CHECK(log->durable_lsn() == 2);
        log->append(1, body_of(3, 10), lsn);
        b = log->begin_sync();
        log->end_sync(b.lsn, false);
        CHECK(log->durable_lsn() == 2);     // a failed sync proves nothing
        // Nor does any later one: Linux marked the failed pages clean.
        log->append_exempt(2, body_of(4, 10), lsn);
        b = log->begin_sync();
        log->end_sync(b.lsn, true);
        CHECK(log->durable_lsn() == 2);
        b = log->begin_sync();
        CHECK(b.fds.empty());
        log->end_sync(b.lsn, true);
        CHECK(log->durable_lsn() == 2);
        CHECK_FALSE(log->sync_now());
        CHECK(log->durable_lsn() == 2);
    }
    TempDir off;
    auto log = open_log(off.path(), 4096, 0, SyncMode::Off);
    uint64_t lsn = 0;
    log->append(1, body_of(1, 10), lsn);
    CHECK(log->durable_lsn() == lsn);
    CHECK(log->begin_sync().fds.empty());
}

TEST_CASE("compaction keeps exactly the live records and deletes old segments") {
    // A key-value model: type 1 = set(key, value), type 2 = delete(key).
    TempDir d;
    auto log = open_log(d.path(), 4096);
    std::map<uint32_t, std::pair<uint64_t, std::vector<uint8_t>>> live;  // key -> (lsn, body)
    std::mt19937 rng(3);
    auto key_of = [](std::span<const uint8_t> b) {
        uint32_t k;
        std::memcpy(&k, b.data(), 4);
        return k;
    };
    auto live_pred = [&](const RecordView& r) {
        if (r.type != 1) return false;
        auto it = live.find(key_of(r.body));
        return it != live.end() && it->second.first == r.lsn;
    };
    auto moved = [&](uint64_t from, uint64_t to) {
        for (auto& [k, v] : live)
            if (v.first == from) v.first = to;
    };
    auto state_of = [&](Log& l) {
        std::map<uint32_t, std::vector<uint8_t>> st;
        l.replay([&](const RecordView& r) {
            if (r.type == 1) st[key_of(r.body)] = std::vector<uint8_t>(r.body.begin(), r.body.end());
            else st.erase(key_of(r.body));
        });
        return st;
    };
    for (int i = 0; i < 3000; ++i) {
        const uint32_t key = rng() % 50;
        std::vector<uint8_t> body = body_of(static_cast<uint32_t>(i), 4 + rng() % 60);
        std::memcpy(body.data(), &key, 4);
        uint64_t lsn = 0;
        if (rng() % 5 == 0) {
            body.resize(4);
            REQUIRE(log->append(2, body, lsn) == AppendError::None);
            if (auto it = live.find(key); it != live.end()) {
                log->mark_dead(it->second.first);
                live.erase(it);
            }
            log->mark_dead(lsn);
        } else {
            REQUIRE(log->append(1, body, lsn) == AppendError::None);
            if (auto it = live.find(key); it != live.end()) log->mark_dead(it->second.first);
            live[key] = {lsn, body};
        }
    }
    log->sync_now();
    const auto before = state_of(*log);
    const uint64_t segments_before = log->segment_count();
    const uint64_t bytes_before = log->bytes_used();
    REQUIRE(log->wants_compaction());
    int rounds = 0;
    while (log->wants_compaction() && rounds++ < 10000) {
        log->compact_step(live_pred, moved, 16);
        log->sync_now();  // the wiring's group commit lets deletions proceed
    }
    CHECK(log->segment_count() < segments_before);
    CHECK(log->bytes_used() < bytes_before);
    CHECK(t::segment_files(d.path()).size() == log->segment_count());
    CHECK(state_of(*log) == before);
    log.reset();
    auto reopened = open_log(d.path(), 4096);
    CHECK(state_of(*reopened) == before);
}

TEST_CASE("compaction waits for the copies to be durable before deleting") {
    TempDir d;
    auto log = open_log(d.path(), 4096);
    const auto written = fill(*log, 200);
    log->sync_now();
    const auto files_before = t::segment_files(d.path());
    REQUIRE(files_before.size() >= 3);
    auto keep_all = [](const RecordView&) { return true; };
    std::vector<std::pair<uint64_t, uint64_t>> moves;
    auto note = [&](uint64_t from, uint64_t to) { moves.emplace_back(from, to); };
    // One step with a big budget scans the whole oldest segment.
    CHECK(log->compact_step(keep_all, note, 100000));
    CHECK(!moves.empty());
    CHECK(moves.front().second == 201);  // copies get fresh LSNs
    CHECK(std::filesystem::exists(files_before.front()));  // copies not durable yet
    log->sync_now();  // end_sync sees them durable and deletes the segment
    CHECK(!std::filesystem::exists(files_before.front()));
    auto recs = all_records(*log);
    CHECK(recs.size() == 200);
    // Same bodies, the moved ones now at the end.
    std::multiset<std::vector<uint8_t>> a, b;
    for (const auto& r : written) a.insert(r.body);
    for (const auto& r : recs) b.insert(r.body);
    CHECK(a == b);
}

// A second hato started on a live store (by hand beside the service) cut
// the live segment's tail and replaced the spares before it failed to bind
// its port: acknowledged records lost. One writer per store now.
TEST_CASE("a store in use by another log is refused, and free again once that one is gone") {
    TempDir d;
    Options o;
    o.dir = d.path();
    std::string err;
    auto first = Log::open(o, err);
    REQUIRE_MESSAGE(first, err);
    uint64_t lsn = 0;
    REQUIRE(first->append(1, body_of(1, 100), lsn) == AppendError::None);
    first->sync_now();
    CHECK_FALSE(Log::open(o, err));
    CHECK(err.find("is in use by another hato") != std::string::npos);
    first.reset();
    auto again = Log::open(o, err);
    REQUIRE_MESSAGE(again, err);
    CHECK(all_records(*again).size() == 1);
}
