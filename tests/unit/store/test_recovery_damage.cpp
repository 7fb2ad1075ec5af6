// Recovery from damage in the middle of a segment: every record outside the
// damaged bytes comes back, the damaged segment is copied to quarantine
// before it is repaired, appends go on and survive another reopen; files
// that are not segments are moved to quarantine unmodified; a torn tail is
// still cut; files copied sparse are allocated before they are used.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>

#include "store/frame.hpp"
#include "store/inspect.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"
#include "../broker/small_fs.hpp"

using namespace hato::store;
using hato::store::test::TempDir;
namespace t = hato::store::test;
namespace fs = std::filesystem;

namespace {

struct Rec {
    uint64_t lsn;
    uint8_t type;
    std::vector<uint8_t> body;
    bool operator==(const Rec&) const = default;
};

constexpr uint64_t kSegBytes = 32768;

std::unique_ptr<Log> open_log(const std::string& dir, uint64_t seg = kSegBytes) {
    Options o;
    o.dir = dir;
    o.segment_bytes = seg;
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

// Bodies of varied sizes (some empty, some over a page) and no long zero runs.
std::vector<uint8_t> body_of(uint32_t i, size_t len) {
    std::vector<uint8_t> b(len);
    for (size_t k = 0; k < len; ++k) b[k] = static_cast<uint8_t>(1 + (i * 31 + k) % 251);
    return b;
}

size_t body_len(uint32_t i) {
    static const size_t sizes[] = {0, 7, 100, 1500, 33, 5000, 8, 250, 4100, 64, 1, 700, 2048, 90, 17, 333};
    return sizes[i % 16];
}

std::vector<Rec> fill(Log& log, uint32_t n, uint32_t first = 0) {
    std::vector<Rec> recs;
    for (uint32_t i = first; i < first + n; ++i) {
        Rec r{0, static_cast<uint8_t>(1 + i % 7), body_of(i, body_len(i))};
        REQUIRE(log.append(r.type, r.body, r.lsn) == AppendError::None);
        recs.push_back(r);
    }
    return recs;
}

// Offset of each record in a segment holding `recs` from its start.
std::vector<uint64_t> offsets_of(const std::vector<Rec>& recs) {
    std::vector<uint64_t> offs;
    uint64_t off = 0;
    for (const Rec& r : recs) {
        offs.push_back(off);
        off += record_span(r.body.size());
    }
    return offs;
}

std::vector<std::string> quarantine_files(const std::string& dir) {
    std::vector<std::string> files;
    if (!fs::is_directory(dir + "/quarantine")) return files;
    for (const auto& e : fs::directory_iterator(dir + "/quarantine")) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

// The records whose checksummed bytes (header and body) `damaged` left as
// they were in `clean`.
std::vector<Rec> untouched(const std::vector<Rec>& recs, const std::vector<uint8_t>& clean,
                           const std::vector<uint8_t>& damaged) {
    std::vector<Rec> out;
    const auto offs = offsets_of(recs);
    for (size_t i = 0; i < recs.size(); ++i) {
        const auto from = static_cast<long>(offs[i]);
        const auto to = from + static_cast<long>(kHeaderBytes + recs[i].body.size());
        if (std::equal(clean.begin() + from, clean.begin() + to, damaged.begin() + from)) out.push_back(recs[i]);
    }
    return out;
}

enum class Damage { BitFlip, ZeroRun, ZeroPage, Garbage };

const char* damage_name(Damage d) {
    switch (d) {
        case Damage::BitFlip: return "bit flip";
        case Damage::ZeroRun: return "zeroed run";
        case Damage::ZeroPage: return "zeroed 4 KiB page";
        case Damage::Garbage: return "garbage page";
    }
    return "?";
}

// Damages `image` at record boundary `at` (an offset where a record starts);
// runs end before `keep` (the last record's start) when they start before it.
void damage(std::vector<uint8_t>& image, Damage kind, uint64_t at, uint64_t keep, size_t k, std::mt19937& rng) {
    auto run = [&](uint64_t len) { return at < keep ? std::min(len, keep - at) : len; };
    switch (kind) {
        case Damage::BitFlip:
            // Header fields in turn (magic, length, LSN, type, CRC), then body.
            image[at + (k * 5) % 32] ^= static_cast<uint8_t>(1u << (k % 8));
            break;
        case Damage::ZeroRun:
            std::fill_n(image.begin() + static_cast<long>(at), run(200), 0);
            break;
        case Damage::ZeroPage: {
            const uint64_t page = at & ~uint64_t(4095);
            std::fill_n(image.begin() + static_cast<long>(page), 4096, 0);
            break;
        }
        case Damage::Garbage:
            for (uint64_t i = at; i < at + run(4096); ++i)
                image[i] = static_cast<uint8_t>(rng());
            break;
    }
}

}  // namespace

TEST_CASE("damage in the middle of the active segment at every record boundary keeps every other record") {
    constexpr uint32_t kRecords = 16;
    TempDir src;
    std::vector<Rec> written;
    {
        auto log = open_log(src.path());
        written = fill(*log, kRecords);
        REQUIRE(log->sync_now());
        REQUIRE(log->segment_count() == 1);
    }
    const std::string name = fs::path(t::segment_files(src.path()).at(0)).filename().string();
    const auto clean = t::read_file(src.sub(name));
    const auto offs = offsets_of(written);
    REQUIRE(offs.back() + record_span(written.back().body.size()) > 3 * 4096);  // spans several pages

    std::mt19937 rng(21);
    int middle_cases = 0;
    for (Damage kind : {Damage::BitFlip, Damage::ZeroRun, Damage::ZeroPage, Damage::Garbage}) {
        for (size_t k = 0; k < kRecords; ++k) {
            INFO(damage_name(kind), " at record ", k, " (offset ", offs[k], ")");
            TempDir d("/dev/shm");
            auto image = clean;
            damage(image, kind, offs[k], offs.back(), k, rng);
            t::write_file(d.sub(name), image);
            std::vector<Rec> expect = untouched(written, clean, image);
            // Damage with an intact record after it is damage in the middle;
            // otherwise it is a torn tail (or touched no record at all).
            // (The damaged records are one run, so that is: the last is intact.)
            const bool middle = expect.size() < written.size() && !expect.empty() && expect.back() == written.back();
            middle_cases += middle;

            std::ostringstream report;
            const int verified = store_verify(d.path(), report);
            if (middle) {
                CHECK(verified == 1);
                CHECK(report.str().find("skipped: segment " + name + " offset ") != std::string::npos);
            }
            {
                auto log = open_log(d.path());
                REQUIRE(all_records(*log) == expect);
                const auto q = quarantine_files(d.path());
                if (middle) {
                    REQUIRE(q.size() == 1);
                    CHECK(t::read_file(q[0]) == image);  // the bytes as recovery found them
                    REQUIRE(log->recovery_errors().size() == 1);
                    const std::string& line = log->recovery_errors()[0];
                    CHECK(line.find("skipped ") != std::string::npos);
                    uint64_t kept_after = 0;
                    for (size_t i = 0; i < expect.size(); ++i)
                        if (std::find(expect.begin(), expect.end(), written[i]) == expect.end()) {
                            kept_after = expect.size() - i;
                            break;
                        }
                    CHECK(line.find("kept " + std::to_string(kept_after) + " record(s) after the damage") !=
                          std::string::npos);
                } else {
                    CHECK(q.empty());
                    CHECK(log->recovery_errors().empty());
                }
                CHECK(log->last_lsn() == (expect.empty() ? 0 : expect.back().lsn));
                auto more = fill(*log, 3, 100);
                CHECK(more[0].lsn == log->last_lsn() - 2);
                REQUIRE(log->sync_now());
                expect.insert(expect.end(), more.begin(), more.end());
            }
            // Repaired once: the next start finds a consistent log, reports
            // nothing and copies nothing again.
            std::ostringstream after;
            CHECK(store_verify(d.path(), after) == 0);
            auto log = open_log(d.path());
            CHECK(all_records(*log) == expect);
            CHECK(log->recovery_errors().empty());
            CHECK(quarantine_files(d.path()).size() == (middle ? 1u : 0u));
        }
    }
    CHECK(middle_cases >= 50);
}

TEST_CASE("several damaged ranges in one segment, and damage in an older segment") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path(), 16384);
        written = fill(*log, 60);  // a few segments
        REQUIRE(log->sync_now());
        REQUIRE(log->segment_count() >= 3);
    }
    const auto files = t::segment_files(d.path());
    // Two bit flips in the oldest segment: its 2nd and 4th records.
    auto image = t::read_file(files[0]);
    const auto offs = offsets_of(written);
    image[offs[1] + 20] ^= 0x01;
    image[offs[3] + 30] ^= 0x80;
    t::write_file(files[0], image);
    std::vector<Rec> expect = written;
    expect.erase(expect.begin() + 3);
    expect.erase(expect.begin() + 1);

    std::ostringstream report;
    CHECK(store_verify(d.path(), report) == 1);
    CHECK(report.str().find("skipped: segment " + fs::path(files[0]).filename().string() + " offset " +
                            std::to_string(offs[1])) != std::string::npos);
    CHECK(report.str().find("offset " + std::to_string(offs[3])) != std::string::npos);
    std::ostringstream dump;
    CHECK(store_dump(d.path(), dump) == 1);
    CHECK(dump.str().find("\n60 ") != std::string::npos);  // records after the damage still listed
    {
        auto log = open_log(d.path(), 16384);
        CHECK(all_records(*log) == expect);
        REQUIRE(log->recovery_errors().size() == 1);
        CHECK(log->recovery_errors()[0].find("in 2 range(s)") != std::string::npos);
        CHECK(quarantine_files(d.path()).size() == 1);
        // Compaction walks over the fillers without showing them to the owner.
        bool saw_filler = false;
        for (int i = 0; i < 100 && fs::exists(files[0]); ++i) {
            log->compact_step([&](const RecordView& r) { saw_filler |= r.lsn == 0; return true; },
                              [](uint64_t, uint64_t) {}, 100);
            log->sync_now();
        }
        CHECK_FALSE(fs::exists(files[0]));
        CHECK_FALSE(saw_filler);
        log->sync_now();
    }
    auto log = open_log(d.path(), 16384);
    std::vector<Rec> got = all_records(*log);
    CHECK(got.size() == expect.size());
    for (const Rec& r : expect)
        CHECK(std::count_if(got.begin(), got.end(),
                            [&](const Rec& g) { return g.type == r.type && g.body == r.body; }) == 1);
}

TEST_CASE("a file named like a segment that is not one is moved to quarantine unmodified") {
    TempDir d;
    std::vector<uint8_t> foreign(10 * 1024);
    for (size_t i = 0; i < foreign.size(); ++i) foreign[i] = static_cast<uint8_t>("not a hato log\n"[i % 15]);

    SUBCASE("alone in the directory") {
        t::write_file(d.sub(segment_file_name(1)), foreign);
        std::ostringstream report;
        CHECK(store_verify(d.path(), report) == 1);
        CHECK(report.str().find("NOT A HATO SEGMENT") != std::string::npos);
        {
            auto log = open_log(d.path());
            CHECK(all_records(*log).empty());
            REQUIRE(log->recovery_errors().size() == 1);
            CHECK(log->recovery_errors()[0].find("not a hato segment") != std::string::npos);
            uint64_t lsn = 0;
            REQUIRE(log->append(1, body_of(1, 10), lsn) == AppendError::None);
            CHECK(lsn == 1);
            log->sync_now();
        }
        const auto q = quarantine_files(d.path());
        REQUIRE(q.size() == 1);
        CHECK(t::read_file(q[0]) == foreign);
        auto log = open_log(d.path());
        CHECK(all_records(*log).size() == 1);
    }
    SUBCASE("after the segments of a log, and a short one") {
        std::vector<Rec> written;
        {
            auto log = open_log(d.path(), 16384);
            written = fill(*log, 30);
            log->sync_now();
        }
        t::write_file(d.sub(segment_file_name(0x7fff0000)), foreign);
        const std::vector<uint8_t> tiny{'h', 'i', '\n'};
        t::write_file(d.sub(segment_file_name(0x7fff1000)), tiny);
        {
            auto log = open_log(d.path(), 16384);
            CHECK(all_records(*log) == written);
            CHECK(log->recovery_errors().size() == 2);
            uint64_t lsn = 0;
            REQUIRE(log->append(1, body_of(1, 10), lsn) == AppendError::None);
            CHECK(lsn == 31);  // a foreign file's name does not move the LSNs
        }
        const auto q = quarantine_files(d.path());
        REQUIRE(q.size() == 2);
        CHECK(t::read_file(q[0]) == foreign);
        CHECK(t::read_file(q[1]) == tiny);
    }
}

// A stray file of zeros named like a segment far ahead of the log was taken
// as its newest segment: its name set the next LSN, which then wrapped (an
// abort, then LSNs used twice and acknowledged records lost).
TEST_CASE("a file of zeros named like a segment does not move the LSNs") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path(), 16384);
        written = fill(*log, 30);
        log->sync_now();
    }
    const std::vector<uint8_t> zeros(4096, 0);
    t::write_file(d.sub(segment_file_name(0xfffffffffffffff0)), zeros);   // past any LSN
    t::write_file(d.sub(segment_file_name(5000)), zeros);                 // not where the log goes on
    {
        auto log = open_log(d.path(), 16384);
        CHECK(all_records(*log) == written);
        CHECK(log->recovery_summary().find("set aside") != std::string::npos);
        uint64_t lsn = 0;
        REQUIRE(log->append(1, body_of(1, 10), lsn) == AppendError::None);
        CHECK(lsn == 31);
        log->sync_now();
    }
    CHECK(quarantine_files(d.path()).size() == 2);
    auto log = open_log(d.path(), 16384);
    CHECK(all_records(*log).size() == 31);
}

// A damaged segment is copied to quarantine before it is repaired; on a full
// disk that copy failed and so did every start after (a restart loop).
TEST_CASE("on a full disk the reserve gives way to the quarantine copy of a damaged segment") {
    t::SmallFs fs("2m");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    constexpr uint64_t kSeg = 256 * 1024;
    std::vector<Rec> written;
    {
        auto log = open_log(fs.dir(), kSeg);
        written = fill(*log, 12);
        REQUIRE(log->sync_now());
    }
    const std::string file = fs.dir() + "/" + segment_file_name(1);
    auto image = t::read_file(file);
    const auto offs = offsets_of(written);
    image[offs[2] + 20] ^= 0x01;   // damage with valid records after it
    t::write_file(file, image);
    t::fill_the_rest(fs.dir());
    std::vector<Rec> expect = written;
    expect.erase(expect.begin() + 2);
    auto log = open_log(fs.dir(), kSeg);
    CHECK(all_records(*log) == expect);
    CHECK(quarantine_files(fs.dir()).size() == 1);
}

// The reserve gives way only to a copy that failed for want of room:
// deleted for any failure, a gateway lost its reserve to an unrelated one.
TEST_CASE("a quarantine copy that fails for another reason than room leaves the reserve") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path());
        written = fill(*log, 12);
        REQUIRE(log->sync_now());
    }
    const std::string file = t::segment_files(d.path()).at(0);
    auto image = t::read_file(file);
    image[offsets_of(written)[2] + 20] ^= 0x01;
    t::write_file(file, image);
    t::write_file(d.sub("quarantine"), {'x'});   // a file where the directory goes: ENOTDIR
    Options o;
    o.dir = d.path();
    o.segment_bytes = kSegBytes;
    std::string err;
    CHECK_FALSE(Log::open(o, err));
    CHECK(err.find("quarantine") != std::string::npos);
    CHECK(fs::exists(d.sub("reserve.spare")));
    CHECK(fs::exists(d.sub("reserve.spare2")));
}

TEST_CASE("a torn tail is still cut, without quarantine") {
    TempDir d;
    std::vector<Rec> written;
    {
        auto log = open_log(d.path());
        written = fill(*log, 10);
        log->sync_now();
    }
    const auto file = t::segment_files(d.path()).at(0);
    auto image = t::read_file(file);
    const uint64_t end = offsets_of(written).back() + record_span(written.back().body.size());
    // Half of a next record: its header and part of its body.
    std::vector<uint8_t> partial(record_span(300));
    write_record(partial.data(), 11, 2, body_of(11, 300));
    std::copy(partial.begin(), partial.begin() + 150, image.begin() + static_cast<long>(end));
    t::write_file(file, image);
    {
        auto log = open_log(d.path());
        CHECK(all_records(*log) == written);
        CHECK(log->recovery_errors().empty());
        CHECK(log->recovery_summary().find("cut torn tail") != std::string::npos);
        CHECK(quarantine_files(d.path()).empty());
        auto more = fill(*log, 2, 50);
        CHECK(more[0].lsn == 11);
        log->sync_now();
        written.insert(written.end(), more.begin(), more.end());
    }
    auto log = open_log(d.path());
    CHECK(all_records(*log) == written);
}

TEST_CASE("random damage anywhere in a log of several segments: exactly the untouched records come back") {
    TempDir src;
    std::vector<Rec> written;
    {
        auto log = open_log(src.path(), 8192);
        written = fill(*log, 40);
        REQUIRE(log->sync_now());
        REQUIRE(log->segment_count() >= 4);
    }
    const auto files = t::segment_files(src.path());
    std::vector<std::vector<uint8_t>> clean;
    std::vector<std::vector<Rec>> per_segment;  // the records of each file, by base LSN
    for (size_t f = 0; f < files.size(); ++f) {
        clean.push_back(t::read_file(files[f]));
        uint64_t base = 0, next = UINT64_MAX;
        parse_segment_file_name(fs::path(files[f]).filename().string(), base);
        if (f + 1 < files.size()) parse_segment_file_name(fs::path(files[f + 1]).filename().string(), next);
        per_segment.emplace_back();
        for (const Rec& r : written)
            if (r.lsn >= base && r.lsn < next) per_segment.back().push_back(r);
    }
    std::mt19937 rng(2121);
    for (int round = 0; round < 150; ++round) {
        TempDir d("/dev/shm");
        std::vector<std::vector<uint8_t>> images = clean;
        // One to three damages, each in a random file at a random offset.
        const int n = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < n; ++k) {
            auto& image = images[rng() % images.size()];
            const uint64_t at = rng() % image.size();
            const uint64_t len = std::min<uint64_t>(1 + rng() % 3000, image.size() - at);
            switch (rng() % 3) {
                case 0: image[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                case 1: std::fill_n(image.begin() + static_cast<long>(at), len, 0); break;
                default:
                    for (uint64_t i = at; i < at + len; ++i) image[i] = static_cast<uint8_t>(rng());
            }
        }
        std::vector<Rec> expect;
        for (size_t f = 0; f < files.size(); ++f) {
            t::write_file(d.sub(fs::path(files[f]).filename().string()), images[f]);
            const auto kept = untouched(per_segment[f], clean[f], images[f]);
            expect.insert(expect.end(), kept.begin(), kept.end());
        }
        INFO("round ", round);
        {
            auto log = open_log(d.path(), 8192);
            REQUIRE(all_records(*log) == expect);
            auto more = fill(*log, 2, 500);
            REQUIRE(log->sync_now());
            expect.insert(expect.end(), more.begin(), more.end());
        }
        std::ostringstream report;
        CHECK(store_verify(d.path(), report) == 0);
        auto log = open_log(d.path(), 8192);
        REQUIRE(all_records(*log) == expect);
        CHECK(log->recovery_errors().empty());
    }
}

namespace {

// Makes [from, size of the file) of `path` a hole, as a copy made sparse
// (cp, rsync -S, tar -S) leaves the zeros of a segment or a spare.
void punch_hole(const std::string& path, uint64_t from) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const auto size = static_cast<uint64_t>(::lseek(fd, 0, SEEK_END));
    REQUIRE(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(from), off_t(size - from)) == 0);
    ::close(fd);
}

}  // namespace

// A data directory copied sparse onto a disk that then fills: a store
// through the mapping into a hole would be a SIGBUS (on tmpfs even the
// recovery scan's read of one), at every start from then on.
TEST_CASE("a segment or spare copied sparse is allocated before use: a full disk is an error, not a SIGBUS") {
    t::SmallFs fs("2m");
    if (!fs.mounted()) {
        MESSAGE("skipped: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    constexpr uint64_t kSeg = 256 * 1024;
    std::vector<Rec> recs;
    {
        auto log = open_log(fs.dir(), kSeg);
        recs = fill(*log, 8);
        REQUIRE(log->sync_now());
    }
    const std::string active = fs.dir() + "/" + segment_file_name(1);
    SUBCASE("the active segment: the start is refused with the reason, and succeeds once there is room") {
        punch_hole(active, 64 * 1024);   // past its records
        t::fill_the_rest(fs.dir());
        Options o;
        o.dir = fs.dir();
        o.segment_bytes = kSeg;
        std::string err;
        CHECK_FALSE(Log::open(o, err));
        CHECK(err.find("not allocated on disk") != std::string::npos);
        CHECK(err.find("No space left on device") != std::string::npos);
        for (const auto& e : fs::directory_iterator(fs.dir() + "/..")) {
            if (e.path().filename().string().rfind("hog-", 0) == 0) fs::remove(e.path());
        }
        auto log = open_log(fs.dir(), kSeg);
        CHECK(all_records(*log) == recs);
        CHECK(log->recovery_summary().find("NO ROOM") == std::string::npos);
    }
    SUBCASE("the spares: dropped, the store runs without them and refuses new work cleanly") {
        for (const char* name : {"reserve.spare", "reserve.spare2"}) punch_hole(fs.dir() + "/" + name, 0);
        t::fill_the_rest(fs.dir());
        auto log = open_log(fs.dir(), kSeg);
        CHECK(all_records(*log) == recs);
        CHECK(log->recovery_summary().find("NO ROOM FOR THE RESERVE") != std::string::npos);
        // Fill the active segment: the records that do not fit find no
        // segment and no spare, and are refused.
        const std::vector<uint8_t> body(4000, 7);
        uint64_t lsn = 0;
        AppendError e = AppendError::None;
        for (int i = 0; i < 100 && e == AppendError::None; ++i) e = log->append_exempt(1, body, lsn);
        CHECK(e == AppendError::DiskFull);
        CHECK(log->append(1, body, lsn) != AppendError::None);
    }
}

// What no single segment's scan sees: a second history (an old copy restored
// beside the live files), and a sealed segment cut short. Both reported at
// start-up; the overlap by store verify too.
TEST_CASE("overlapping segments and a sealed segment cut short are reported") {
    TempDir d;
    std::vector<Rec> recs;
    {
        auto log = open_log(d.path());
        recs = fill(*log, 80);
        REQUIRE(log->segment_count() >= 3);
    }
    std::vector<std::string> segs;
    for (const auto& e : fs::directory_iterator(d.path()))
        if (e.path().extension() == ".seg") segs.push_back(e.path().string());
    std::sort(segs.begin(), segs.end());
    SUBCASE("overlap") {
        // Another log's second segment: its records start at an LSN inside
        // one of this log's segments, and its name is none of theirs.
        TempDir other;
        {
            auto log = open_log(other.path());
            fill(*log, 80, 5);
        }
        std::string stray;
        for (const auto& e : fs::directory_iterator(other.path())) {
            const std::string name = e.path().filename().string();
            if (e.path().extension() == ".seg" && name != segment_file_name(1) && !fs::exists(d.path() + "/" + name))
                stray = name;
        }
        REQUIRE(!stray.empty());
        fs::copy_file(other.path() + "/" + stray, d.path() + "/" + stray);
        std::ostringstream out;
        CHECK(store_verify(d.path(), out) == 1);
        CHECK(out.str().find("OVERLAPS the previous segment") != std::string::npos);
        auto log = open_log(d.path());
        const auto& errors = log->recovery_errors();
        // It overlaps the segment before it, and the one after it overlaps it.
        REQUIRE(!errors.empty());
        CHECK(errors[0].find(stray + " overlaps the segment before it") != std::string::npos);
        for (const std::string& e : errors) CHECK(e.find(" overlaps the segment before it") != std::string::npos);
    }
    SUBCASE("a sealed segment cut short") {
        fs::resize_file(segs[0], kSegBytes - 8);
        auto log = open_log(d.path());
        const auto& errors = log->recovery_errors();
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find("not whole pages: it was cut short") != std::string::npos);
    }
    SUBCASE("a sealed segment emptied") {
        // Only the newest segment can be empty after a crash (created, not
        // yet reserved): an earlier one was removed without a word.
        fs::resize_file(segs[1], 0);
        std::ostringstream out;
        CHECK(store_verify(d.path(), out) == 1);
        CHECK(out.str().find("EMPTY though later segments exist: the records it held are LOST") != std::string::npos);
        auto log = open_log(d.path());
        const auto& errors = log->recovery_errors();
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].find(segs[1] + " is empty (0 bytes) though later segments exist") != std::string::npos);
        CHECK(quarantine_files(d.path()).size() == 1);
    }
    SUBCASE("the last segment emptied: removed, no error") {
        fs::resize_file(segs.back(), 0);
        std::ostringstream out;
        CHECK(store_verify(d.path(), out) == 0);
        auto log = open_log(d.path());
        CHECK(log->recovery_errors().empty());
    }
    SUBCASE("the last segment cut short: a torn tail, no error") {
        fs::resize_file(segs.back(), kSegBytes - 8);
        auto log = open_log(d.path());
        CHECK(log->recovery_errors().empty());
    }
}
