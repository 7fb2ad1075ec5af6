// Appends after recovery: the active segment's cached tail is dropped and
// faulted in again page by page (store/segment.cpp, prepare_appends). What
// the dropped pages held, synced or only in the page cache, must survive.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "store/log.hpp"
#include "temp_dir.hpp"

using namespace hato::store;
using hato::store::test::TempDir;

namespace {

std::unique_ptr<Log> open_log(const std::string& dir) {
    Options o;
    o.dir = dir;
    o.segment_bytes = 8ull << 20;  // room for several 2 MiB folios
    std::string err;
    auto log = Log::open(o, err);
    REQUIRE_MESSAGE(log, err);
    return log;
}

std::vector<uint8_t> body_of(uint64_t i) {
    std::vector<uint8_t> b(200 + i % 57);
    for (size_t k = 0; k < b.size(); k++) b[k] = uint8_t(i * 31 + k);
    return b;
}

void append_n(Log& log, uint64_t from, uint64_t n, bool sync_each_64) {
    for (uint64_t i = from; i < from + n; i++) {
        uint64_t lsn = 0;
        REQUIRE(log.append(1, body_of(i), lsn) == AppendError::None);
        CHECK(lsn == i + 1);
        if (sync_each_64 && i % 64 == 63) REQUIRE(log.sync_now());
    }
}

void check_all(Log& log, uint64_t n) {
    uint64_t seen = 0;
    log.replay([&](const RecordView& r) {
        REQUIRE(r.lsn == seen + 1);
        const std::vector<uint8_t> want = body_of(seen);
        CHECK(std::vector<uint8_t>(r.body.begin(), r.body.end()) == want);
        seen++;
    });
    CHECK(seen == n);
}

}  // namespace

TEST_CASE("records before and after a reopen survive the dropped tail cache, synced or not") {
    TempDir d;
    const uint64_t first = 12000;  // about 3 MiB: the tail lies past a 2 MiB boundary
    {
        auto log = open_log(d.path());
        append_n(*log, 0, first, true);
        // The last records stay unsynced: only the page cache holds them.
        append_n(*log, first, 100, false);
    }
    {
        auto log = open_log(d.path());
        check_all(*log, first + 100);
        append_n(*log, first + 100, 5000, true);
        REQUIRE(log->sync_now());
    }
    auto log = open_log(d.path());
    check_all(*log, first + 5100);
}
