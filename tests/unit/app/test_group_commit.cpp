// Group commit's decisions (app/group_commit.hpp), on a fake clock and a
// fake store: when a sync starts, what a finished one releases.
#include <doctest/doctest.h>

#include <cstddef>
#include <vector>

#include "app/group_commit.hpp"

using hato::app::GroupCommit;
using hato::app::GroupCommitPolicy;

namespace {

// A store as the wiring sees it: records appended, 150 bytes each.
struct FakeStore {
    uint64_t lsn = 0;
    uint64_t bytes = 0;
    void append(int n = 1) {
        lsn += uint64_t(n);
        bytes += 150 * uint64_t(n);
    }
};

}  // namespace

TEST_CASE("window 0: a sync starts at the first pass end with anything pending, one at a time") {
    GroupCommit gc(GroupCommitPolicy{0, 0});
    FakeStore s;
    CHECK_FALSE(gc.due(0));   // nothing appended
    s.append(3);
    gc.note_appended(10, s.lsn, s.bytes);
    REQUIRE(gc.due(10));
    gc.started(s.lsn, s.bytes);
    CHECK(gc.in_flight());
    s.append(2);   // appended while the sync runs: the next one covers it
    gc.note_appended(20, s.lsn, s.bytes);
    CHECK_FALSE(gc.due(20));   // never two at once
    CHECK(gc.wake_at_us() == 0);
    GroupCommit::Outcome o = gc.finished(true);
    CHECK(o.durable_lsn == 3);   // not 5: those two were not in that sync
    CHECK(gc.due(30));
    gc.started(s.lsn, s.bytes);
    o = gc.finished(true);
    CHECK(o.durable_lsn == 5);
    CHECK_FALSE(gc.due(40));
}

TEST_CASE("the window: a sync waits until the oldest uncovered record waited window_us") {
    GroupCommit gc(GroupCommitPolicy{1000, 0});
    FakeStore s;
    s.append();
    gc.note_appended(5000, s.lsn, s.bytes);
    CHECK_FALSE(gc.due(5000));
    CHECK(gc.wake_at_us() == 6000);
    s.append();   // a later record does not move the deadline
    gc.note_appended(5700, s.lsn, s.bytes);
    CHECK(gc.wake_at_us() == 6000);
    CHECK_FALSE(gc.due(5999));
    CHECK(gc.due(6000));
    gc.started(s.lsn, s.bytes);
    CHECK(gc.wake_at_us() == 0);   // the completion wakes the loop
    s.append();
    gc.note_appended(6100, s.lsn, s.bytes);
    CHECK(gc.wake_at_us() == 0);
    CHECK(gc.finished(true).durable_lsn == 2);
    // The record of 6100 has its own window, counted from when it was seen.
    CHECK(gc.wake_at_us() == 7100);
    CHECK_FALSE(gc.due(7099));
    CHECK(gc.due(7100));
}

TEST_CASE("a record that waited its window during a sync goes in the next one at once") {
    GroupCommit gc(GroupCommitPolicy{1000, 0});
    FakeStore s;
    s.append();
    gc.note_appended(0, s.lsn, s.bytes);
    REQUIRE(gc.due(1000));
    gc.started(s.lsn, s.bytes);
    s.append();
    gc.note_appended(1100, s.lsn, s.bytes);
    gc.finished(true);   // a slow card: done at 3000
    CHECK(gc.due(3000));
}

TEST_CASE("sync_batch_bytes: a full batch starts the sync before the window expires") {
    GroupCommit gc(GroupCommitPolicy{5000, 4096});
    FakeStore s;
    s.append(27);   // 4050 bytes
    gc.note_appended(100, s.lsn, s.bytes);
    CHECK_FALSE(gc.due(100));
    CHECK(gc.pending_bytes() == 4050);
    s.append();
    gc.note_appended(200, s.lsn, s.bytes);
    CHECK(gc.due(200));
    gc.started(s.lsn, s.bytes);
    CHECK(gc.pending_bytes() == 0);
    CHECK(gc.finished(true).durable_lsn == 28);
}

TEST_CASE("a failed sync releases nothing, is reported once, and is retried at the next pass") {
    GroupCommit gc(GroupCommitPolicy{1000, 0});
    FakeStore s;
    s.append(4);
    gc.note_appended(0, s.lsn, s.bytes);
    gc.started(s.lsn, s.bytes);
    s.append();
    gc.note_appended(500, s.lsn, s.bytes);
    GroupCommit::Outcome o = gc.finished(false);
    CHECK(o.durable_lsn == 0);
    CHECK(o.first_failure);
    CHECK(gc.failing());
    CHECK(gc.durable_lsn() == 0);
    CHECK(gc.pending_bytes() == 5 * 150);   // all of it waits again
    // Retried without waiting for the window, but no timer: a broken disk
    // must not make the loop spin; passes and ticks drive the retries.
    CHECK(gc.due(600));
    CHECK(gc.wake_at_us() == 0);
    gc.started(s.lsn, s.bytes);
    o = gc.finished(false);
    CHECK(o.durable_lsn == 0);
    CHECK_FALSE(o.first_failure);   // logged once
    gc.started(s.lsn, s.bytes);
    o = gc.finished(true);
    CHECK(o.recovered);
    CHECK(o.durable_lsn == 5);
    CHECK_FALSE(gc.failing());
    CHECK_FALSE(gc.due(10000));
}

TEST_CASE("driven pass by pass: at most one sync in flight, releases in LSN order, never ahead of a sync") {
    for (uint64_t window : {uint64_t(0), uint64_t(300), uint64_t(2000)}) {
        CAPTURE(window);
        GroupCommit gc(GroupCommitPolicy{window, 4096});
        FakeStore s;
        std::vector<uint64_t> released;
        bool in_flight = false;
        uint64_t sync_lsn = 0;
        uint64_t sync_done_at = 0;
        uint64_t now = 0;
        int failures_left = 3;
        for (int pass = 0; pass < 2000; ++pass) {
            now += 37 + uint64_t(pass % 5) * 50;
            if (pass % 3 != 0) s.append(1 + pass % 4);
            if (in_flight && now >= sync_done_at) {
                const bool ok = !(pass % 97 == 0 && failures_left-- > 0);
                in_flight = false;
                GroupCommit::Outcome o = gc.finished(ok);
                if (o.durable_lsn) {
                    CHECK(o.durable_lsn <= sync_lsn);
                    released.push_back(o.durable_lsn);
                }
            }
            gc.note_appended(now, s.lsn, s.bytes);
            if (gc.due(now)) {
                REQUIRE_FALSE(in_flight);
                CHECK_FALSE(gc.in_flight());
                in_flight = true;
                sync_lsn = s.lsn;
                sync_done_at = now + 400;
                gc.started(sync_lsn, s.bytes);
            }
            const uint64_t wake = gc.wake_at_us();
            if (wake) CHECK(wake > now);   // never asks for a wake in the past
        }
        REQUIRE(released.size() > 10);
        for (size_t i = 1; i < released.size(); ++i) CHECK(released[i] > released[i - 1]);
    }
}
