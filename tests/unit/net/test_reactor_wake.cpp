// Reactor::wake_at_us: the loop runs a pass at the deadline although no
// event comes and the tick is far off (group commit's window), on each backend.
#include <atomic>
#include <chrono>
#include <thread>

#include "net/reactor_core.hpp"
#include "net_test_util.hpp"

using namespace nettest;

namespace {

// Stops the loop at the first pass end at or after `until_us`; a second
// deadline set from a pass end works like the first.
struct WakeHandler : TestHandler {
    uint64_t until_us = 0;
    uint64_t next_deadline_us = 0;   // set once from the first pass end that sees the first deadline
    std::atomic<uint64_t> stopped_at_us{0};
    void on_pass_end() override {
        ++passes;
        const uint64_t now = hato::net::monotonic_us();
        if (now < until_us) return;
        if (next_deadline_us) {
            until_us = next_deadline_us;
            next_deadline_us = 0;
            reactor->wake_at_us(until_us);
            return;
        }
        stopped_at_us = now;
        reactor->stop();
    }
};

}  // namespace

TEST_CASE("wake_at_us runs a pass at its deadline, long before the tick") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        std::string note;
        auto r = Reactor::create(b, note);
        REQUIRE(r);
        r->set_tick_interval(20000);
        WakeHandler h;
        h.reactor = r.get();
        const uint64_t start = hato::net::monotonic_us();
        h.until_us = start + 30000;
        h.next_deadline_us = start + 60000;
        r->wake_at_us(h.until_us);
        // A safety net only: the tick is 20 s away.
        std::thread guard([&] {
            for (int i = 0; i < 500 && !h.stopped_at_us; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
            r->stop();
        });
        // On a thread of its own: the teardown of an io_uring ring a thread
        // ran interrupts that thread's later blocking calls (EINTR), which
        // would end the next case's epoll_wait early.
        std::thread loop([&] { r->run(h); });
        loop.join();
        guard.join();
        REQUIRE(h.stopped_at_us != 0);
        CHECK(h.stopped_at_us >= start + 60000);
        CHECK(h.stopped_at_us < start + 4000000);
        CHECK(h.passes.load() < 50);   // no spinning while waiting
    }
}

namespace {
struct FirstPassHandler : TestHandler {
    std::atomic<uint64_t> first_pass_us{0};
    void on_pass_end() override {
        if (!first_pass_us) first_pass_us = hato::net::monotonic_us();
        ++passes;
    }
};
}  // namespace

TEST_CASE("wake_at_us(0) clears the deadline") {
    for (Backend b : backends()) {
        CAPTURE(std::string(backend_name(b)));
        std::string note;
        auto r = Reactor::create(b, note);
        REQUIRE(r);
        r->set_tick_interval(400);
        FirstPassHandler h;
        h.reactor = r.get();
        const uint64_t start = hato::net::monotonic_us();
        r->wake_at_us(start + 20000);
        r->wake_at_us(0);
        // Seen at the tick's pass (a stop from another thread does not wake the loop).
        std::thread guard([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            r->stop();
        });
        // On a thread of its own: the teardown of an io_uring ring a thread
        // ran interrupts that thread's later blocking calls (EINTR), which
        // would end the next case's epoll_wait early.
        std::thread loop([&] { r->run(h); });
        loop.join();
        guard.join();
        REQUIRE(h.first_pass_us.load() != 0);
        CHECK(h.first_pass_us.load() >= start + 100000);   // nothing ran for the cleared deadline
    }
}
