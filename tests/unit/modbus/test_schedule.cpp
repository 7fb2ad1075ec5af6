// A device's next request and its bound on waiting writes: a flood of
// writes neither starves the polls nor queues without limit.
#include <doctest/doctest.h>

#include <string>

#include "modbus/schedule.hpp"

using namespace hato::modbus;

namespace {
// The requests a device sends with `writes` queued and a poll due every
// `poll_every` requests (a poll cycle of one read).
std::string run(size_t writes, size_t requests, size_t poll_every) {
    std::string out;
    DeviceTurn t;
    for (size_t i = 0; i < requests; ++i) {
        t.write_queued = writes > 0;
        t.poll_due = i % poll_every == 0 || t.poll_due;
        switch (next_request(t)) {
        case NextRequest::Write:
            --writes;
            ++t.writes_in_row;
            out += 'w';
            break;
        case NextRequest::Poll:
            t.poll_due = false;
            t.writes_in_row = 0;
            out += 'p';
            break;
        case NextRequest::Readback:
            t.readback_due = false;
            out += 'r';
            break;
        case NextRequest::Wait: out += '.'; break;
        }
    }
    return out;
}
}  // namespace

TEST_CASE("writes go first but a due poll runs after a few of them") {
    CHECK(kWritesBetweenPolls == 4);
    // A poll due all the time: four writes, then the poll, and again.
    CHECK(run(1000, 15, 1) == "wwwwpwwwwpwwwwp");
    // Once the poll ran and the next is not due: writes one after another.
    CHECK(run(10, 11, 1000) == "wwwwpwwwwww");
    // Nothing queued and no poll due: wait.
    CHECK(run(0, 3, 1000) == "p..");
}

TEST_CASE("a read-back goes before a poll that waited its turn") {
    DeviceTurn t;
    t.write_queued = true;
    t.readback_due = true;
    t.poll_due = true;
    t.writes_in_row = kWritesBetweenPolls;
    CHECK(next_request(t) == NextRequest::Readback);
    t.readback_due = false;
    CHECK(next_request(t) == NextRequest::Poll);
    t.writes_in_row = 0;
    CHECK(next_request(t) == NextRequest::Write);
}

TEST_CASE("waiting writes are bounded and refusals counted") {
    WriteQueueBound b(3);
    CHECK(b.admit());
    CHECK(b.admit());
    CHECK(b.admit());
    CHECK_FALSE(b.admit());
    CHECK_FALSE(b.admit());
    CHECK(b.queued() == 3);
    CHECK(b.refused() == 2);
    b.done();
    CHECK(b.admit());
    CHECK_FALSE(b.admit());
    CHECK(b.refused() == 3);
    CHECK(WriteQueueBound().limit() == kMaxQueuedWrites);
}
