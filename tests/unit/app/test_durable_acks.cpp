// The durable-acknowledgement driver (app/durable_acks.hpp) on a fake store
// and loop: one sync in flight per pass, releases in LSN order only after
// every fd synced, failures release nothing and are retried.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "app/durable_acks.hpp"

using namespace hato::app;
using hato::store::SyncMode;

namespace {

// Records everything the driver does; fsyncs complete when the test says.
struct FakeIo : SyncIo {
    uint64_t last = 0, durable = 0, bytes = 0, ticket = 0, now = 0, wake = 0;
    int fds_per_sync = 1;
    std::vector<std::function<void(int)>> pending;   // fsyncs not yet completed
    std::vector<std::string> events;

    void append(int n) { last += uint64_t(n); bytes += 100 * uint64_t(n); }
    uint64_t last_lsn() const override { return last; }
    uint64_t durable_lsn() const override { return durable; }
    uint64_t appended_bytes() const override { return bytes; }
    hato::store::Log::SyncBatch begin_sync() override {
        events.push_back("begin " + std::to_string(last));
        hato::store::Log::SyncBatch b;
        for (int i = 0; i < fds_per_sync; ++i) b.fds.push_back(10 + i);
        b.lsn = last;
        return b;
    }
    void end_sync(uint64_t lsn, bool ok) override {
        events.push_back("end " + std::to_string(lsn) + (ok ? " ok" : " failed"));
        if (ok) durable = lsn;
    }
    uint64_t durable_ticket() const override { return ticket; }
    void fsync_async(int, std::function<void(int)> done) override { pending.push_back(std::move(done)); }
    void wake_at_us(uint64_t t) override { wake = t; }
    uint64_t now_us() const override { return now; }

    // Completes the oldest pending fsync with `result` (0 or -errno).
    void complete(int result = 0) {
        auto done = std::move(pending.front());
        pending.erase(pending.begin());
        done(result);
    }
};

struct Fixture {
    FakeIo io;
    Histogram latency{kSyncLatencyBoundsS};
    int released = 0, settled = 0;
    DurableAcks make(SyncMode mode, GroupCommitPolicy policy = {}, uint64_t interval_ms = 0) {
        return DurableAcks(io, mode, interval_ms, policy, latency,
                           {[this] {
                                ++released;
                                io.events.push_back("release");
                            },
                            [this] { ++settled; }});
    }
};

}  // namespace

TEST_CASE("sync = always: one sync per pass at most, released only when it ends") {
    Fixture f;
    DurableAcks acks = f.make(SyncMode::Always);
    acks.on_pass_end();
    CHECK(f.io.events.empty());   // nothing appended: no sync
    f.io.append(3);
    acks.on_pass_end();
    CHECK(acks.in_flight());
    f.io.append(2);
    acks.on_pass_end();   // in flight: the new records wait
    acks.on_pass_end();
    CHECK(f.io.pending.size() == 1);
    CHECK(f.released == 0);
    f.io.complete();
    CHECK_FALSE(acks.in_flight());
    CHECK(f.released == 1);
    CHECK(f.settled == 1);
    CHECK(f.latency.count() == 1);
    acks.on_pass_end();   // the records that waited
    f.io.complete();
    CHECK(f.io.events == std::vector<std::string>{"begin 3", "end 3 ok", "release", "begin 5", "end 5 ok", "release"});
}

TEST_CASE("a sync over several files releases once, after the last one") {
    Fixture f;
    f.io.fds_per_sync = 3;
    DurableAcks acks = f.make(SyncMode::Always);
    f.io.append(1);
    acks.on_pass_end();
    f.io.complete();
    f.io.complete();
    CHECK(f.released == 0);
    CHECK(acks.in_flight());
    f.io.complete();
    CHECK(f.released == 1);
}

TEST_CASE("a failed sync releases nothing and is not tried again: the broker is to restart") {
    Fixture f;
    f.io.fds_per_sync = 2;
    DurableAcks acks = f.make(SyncMode::Always);
    f.io.append(4);
    acks.on_pass_end();
    f.io.complete(-5);   // EIO
    f.io.complete(0);
    CHECK(f.released == 0);
    CHECK(f.settled == 0);
    CHECK(acks.failing());
    CHECK(f.io.durable == 0);
    CHECK(acks.lost());
    f.io.append(5);
    acks.on_pass_end();
    acks.on_pass_end();
    CHECK(acks.failing());
    CHECK(f.released == 0);
    CHECK(f.io.events == std::vector<std::string>{"begin 4", "end 4 failed"});
}

TEST_CASE("inline completions (epoll) release within the pass end") {
    struct InlineIo final : FakeIo {
        void fsync_async(int, std::function<void(int)> done) override { done(0); }
    };
    InlineIo io;
    Histogram latency{kSyncLatencyBoundsS};
    int released = 0;
    DurableAcks acks(io, SyncMode::Always, 0, {}, latency, {[&] { ++released; }, [] {}});
    io.fds_per_sync = 2;
    io.append(1);
    acks.on_pass_end();
    CHECK(released == 1);
    CHECK_FALSE(acks.in_flight());
}

TEST_CASE("a window holds the sync back until it expires, and asks the loop to wake") {
    Fixture f;
    DurableAcks acks = f.make(SyncMode::Always, GroupCommitPolicy{1000, 0});
    f.io.now = 100;
    f.io.append(1);
    acks.on_pass_end();
    CHECK(f.io.events.empty());
    CHECK(f.io.wake == 1100);
    f.io.now = 1100;
    acks.on_pass_end();
    CHECK(f.io.events == std::vector<std::string>{"begin 1"});
}

TEST_CASE("records already durable at start (recovered) settle without a sync: the loop does not spin") {
    Fixture f;
    f.io.last = f.io.durable = 5;   // what recovery found on disk
    f.io.bytes = 500;
    f.io.fds_per_sync = 0;          // the log has no dirty file to sync
    DurableAcks acks = f.make(SyncMode::Always, GroupCommitPolicy{1000, 0});
    f.io.now = 100;
    acks.on_pass_end();
    CHECK(f.io.wake == 1100);
    f.io.now = 1100;
    acks.on_pass_end();             // the window expired: an empty batch settles them
    CHECK(f.io.wake == 0);          // no deadline in the past for the loop to spin on
    CHECK(!acks.in_flight());
    f.io.events.clear();
    f.io.now = 5000;
    acks.on_pass_end();             // and nothing more is done until something is appended
    CHECK(f.io.events.empty());
    CHECK(f.io.wake == 0);
    CHECK(f.latency.count() == 0);  // an empty batch is not a sync
}

TEST_CASE("sync = interval: ticks start syncs; pass ends release what persistence reports durable") {
    Fixture f;
    DurableAcks acks = f.make(SyncMode::Interval, {}, 500);
    f.io.append(2);
    acks.on_tick(100);
    CHECK(f.io.events.empty());
    acks.on_tick(500);
    CHECK(f.io.events == std::vector<std::string>{"begin 2"});
    f.io.complete();
    CHECK(f.released == 1);
    f.io.ticket = 7;
    acks.on_pass_end();
    acks.on_pass_end();   // unchanged ticket: nothing new
    CHECK(f.released == 2);
}

TEST_CASE("sync = off: no syncs, the durable ticket alone releases") {
    Fixture f;
    DurableAcks acks = f.make(SyncMode::Off);
    f.io.append(5);
    acks.on_tick(100000);
    acks.on_pass_end();
    CHECK(f.released == 0);
    f.io.ticket = 5;
    acks.on_pass_end();
    CHECK(f.released == 1);
    CHECK(f.io.events == std::vector<std::string>{"release"});
}
