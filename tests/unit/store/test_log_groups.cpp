// Groups of records (Log::begin_group/end_group): a group the process left
// open at the end of the log is dropped whole at the next start, in the
// newest segment and in the sealed one it began in; a closed group reads as
// records always did.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/frame.hpp"
#include "store/log.hpp"
#include "temp_dir.hpp"

using namespace hato::store;
using hato::store::test::TempDir;
namespace t = hato::store::test;

namespace {

constexpr uint64_t kSegBytes = 32768;

std::unique_ptr<Log> open_log(const std::string& dir) {
    Options o;
    o.dir = dir;
    o.segment_bytes = kSegBytes;
    std::string err;
    auto log = Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

std::vector<uint64_t> lsns(Log& log) {
    std::vector<uint64_t> out;
    log.replay([&](const RecordView& r) { out.push_back(r.lsn); });
    return out;
}

uint64_t add(Log& log, size_t bytes) {
    const std::vector<uint8_t> body(bytes, 0x5A);
    uint64_t lsn = 0;
    REQUIRE(log.append(3, body, lsn) == AppendError::None);
    return lsn;
}

}  // namespace

// The process stopped while routing one QoS 2 message: its copies queued for
// some sessions were kept, its id was not, and the publisher's resend was
// taken as a new message (a second copy for those sessions).
TEST_CASE("a group left open is dropped whole at the next start; the log goes on after what was kept") {
    TempDir d;
    {
        auto log = open_log(d.path());
        add(*log, 100);
        add(*log, 200);
        log->begin_group();
        add(*log, 300);
        add(*log, 400);
        // No end_group: the process stops here (its mapped writes stay in
        // the page cache, as after kill -9).
    }
    auto log = open_log(d.path());
    CHECK(lsns(*log) == std::vector<uint64_t>{1, 2});
    CHECK(log->recovery_summary().find("dropped 2 record(s) of a group left open") != std::string::npos);
    CHECK(add(*log, 50) == 3);
    log.reset();
    CHECK(lsns(*open_log(d.path())) == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("a closed group is kept, and its records carry no mark an older hato would refuse") {
    TempDir d;
    {
        auto log = open_log(d.path());
        add(*log, 100);
        log->begin_group();
        add(*log, 300);
        add(*log, 400);
        log->end_group();
        add(*log, 10);
        REQUIRE(log->sync_now());
    }
    const auto image = t::read_file(t::segment_files(d.path()).at(0));
    for (uint64_t off = 0; off + kHeaderBytes <= image.size() && image[off] != 0;) {
        CHECK_FALSE(group_open(image.data() + off));
        off += record_span(read_record(image.data() + off).body.size());
    }
    CHECK(lsns(*open_log(d.path())) == std::vector<uint64_t>{1, 2, 3, 4});
}

TEST_CASE("a group left open across new segments: they go, the one it began in is cut, nothing is set aside") {
    TempDir d;
    std::vector<uint64_t> kept;
    {
        auto log = open_log(d.path());
        for (int i = 0; i < 20; ++i) kept.push_back(add(*log, 1000));   // most of the first segment
        log->begin_group();
        for (int i = 0; i < 60; ++i) add(*log, 1000);   // on through two more
        REQUIRE(log->segment_count() == 3);
    }
    {
        auto log = open_log(d.path());
        CHECK(lsns(*log) == kept);
        CHECK(log->recovery_errors().empty());   // not damage
        CHECK(log->segment_count() == 1);
        CHECK(add(*log, 10) == 21);   // the log goes on where the kept records end
        kept.push_back(21);
    }
    auto log = open_log(d.path());
    CHECK(lsns(*log) == kept);
    CHECK(log->recovery_summary().find("set aside") == std::string::npos);
    CHECK_FALSE(std::filesystem::exists(d.path() + "/quarantine"));
}

TEST_CASE("a group left open from the start of the log leaves an empty log") {
    TempDir d;
    {
        auto log = open_log(d.path());
        log->begin_group();
        for (int i = 0; i < 40; ++i) add(*log, 1000);
    }
    {
        auto log = open_log(d.path());
        CHECK(lsns(*log).empty());
        CHECK(add(*log, 10) == 1);
    }
    CHECK(lsns(*open_log(d.path())) == std::vector<uint64_t>{1});
}
