// A flood of wrong passwords against the password-check pool: pending checks
// count against the per-address limit, the queue is bounded (server busy),
// and an address with a clean record is checked ahead of the flood. A gate
// job holds the pool's one worker so that checks stay queued while a test
// looks at them.
#include <doctest/doctest.h>

#include <poll.h>

#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

#include "auth/authenticator.hpp"
#include "auth_test_util.hpp"
#include "auth/hash_pool.hpp"
#include "auth/login_limiter.hpp"
#include "mqtt/packet.hpp"

using namespace hato;
using auth::HashPool;
using auth::PasswordAuthenticator;
using broker::AuthRequest;
using broker::AuthVerdict;
using Lane = HashPool::Lane;
using namespace hato::auth::test;

namespace {

// Holds the pool's worker until open() (or the end of the test).
struct Gate {
    std::promise<void> release;
    std::shared_future<void> opened = release.get_future().share();
    bool open_ = false;
    void hold(HashPool& pool) {
        REQUIRE(pool.submit([f = opened] { f.wait(); return true; }) != 0);
        // Taken by the worker (the first lane is empty again).
        for (int i = 0; i < 500 && pool.queued() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        REQUIRE(pool.queued() == 0);
    }
    void open() {
        if (!open_) release.set_value();
        open_ = true;
    }
    ~Gate() { open(); }
};

struct Rig {
    HashPool pool;
    Gate gate;
    std::vector<std::tuple<broker::ConnId, uint64_t, AuthVerdict>> got;
    PasswordAuthenticator a;
    uint64_t now = 1000;
    std::vector<std::string> refusals;
    std::vector<std::tuple<bool, std::string, uint64_t>> busy;
    std::vector<bool> busy_queue_full;   // per episode start: the queue, or one address's own checks

    explicit Rig(size_t max_queued, uint32_t limit) : pool(1, max_queued) {
        a.set_anonymous_allowed({false});
        a.set_password_file(file_with("alice", "secret"));
        a.set_pool(&pool, [this](broker::ConnId c, uint64_t id, const AuthVerdict& v) { got.emplace_back(c, id, v); });
        a.set_max_failed_per_minute(limit);
        a.set_clock([this] { return now; });
        a.set_refusal_log([this](std::string_view addr, uint32_t) { refusals.emplace_back(addr); });
        a.set_busy_log([this](bool begins, std::string_view addr, uint64_t n, bool queue_full) {
            busy.emplace_back(begins, addr, n);
            if (begins) busy_queue_full.push_back(queue_full);
        });
        gate.hold(pool);
    }
    // start() from `address`; the verdict at once, or nullopt (queued).
    std::optional<AuthVerdict> login(broker::ConnId c, const char* address, const char* password) {
        a.note_peer(c, std::string(address) + ":" + std::to_string(40000 + c));
        return a.start(request(c, c, "alice", password));
    }
    void collect_until(size_t n) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (got.size() < n && std::chrono::steady_clock::now() < deadline)
            if (wait_readable(pool.event_fd(), 100)) a.collect();
    }
};

uint8_t reason(const std::optional<AuthVerdict>& v) {
    REQUIRE(v.has_value());
    return v->reason;
}

}  // namespace

TEST_CASE("hash pool: the first lane is served before the second; each lane is bounded") {
    std::vector<uint64_t> order;   // outlives the pool's workers
    std::mutex m;
    HashPool pool(1, 2);
    Gate gate;
    gate.hold(pool);
    auto job = [&](uint64_t tag) {
        return [&, tag] {
            std::lock_guard<std::mutex> lock(m);
            order.push_back(tag);
            return true;
        };
    };
    CHECK(pool.submit(job(21), Lane::Second) != 0);
    CHECK(pool.submit(job(22), Lane::Second) != 0);
    CHECK(pool.submit(job(23), Lane::Second) == 0);   // full: not queued
    CHECK(pool.submit(job(11), Lane::First) != 0);    // the other lane has room
    uint64_t cancelled = pool.submit(job(12), Lane::First);
    CHECK(pool.submit(job(13), Lane::First) == 0);
    CHECK(pool.queued(Lane::First) == 2);
    CHECK(pool.queued(Lane::Second) == 2);
    CHECK(pool.cancel(cancelled));
    CHECK(pool.submit(job(14), Lane::First) != 0);    // room again
    gate.open();
    size_t results = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (results < 5 && std::chrono::steady_clock::now() < deadline)
        if (wait_readable(pool.event_fd(), 100)) pool.drain([&](uint64_t, bool) { ++results; });
    CHECK(results == 5);   // the gate and four jobs
    CHECK(order == std::vector<uint64_t>{11, 14, 21, 22});
    CHECK(HashPool(3).max_queued() == 3 * HashPool::kQueuedPerWorker);
}

TEST_CASE("login limiter: pending checks count toward the limit; only finished failures are logged") {
    auth::LoginLimiter lim(3);
    bool first = false;
    CHECK_FALSE(lim.blocked("10.0.0.1", 1000, first, 2));
    CHECK(lim.blocked("10.0.0.1", 1000, first, 3));
    CHECK_FALSE(first);
    lim.record_failure("10.0.0.1", 1000);
    CHECK(lim.failures("10.0.0.1", 1000) == 1);
    CHECK_FALSE(lim.blocked("10.0.0.1", 1000, first, 1));
    CHECK(lim.blocked("10.0.0.1", 1000, first, 2));
    CHECK_FALSE(first);
    lim.record_failure("10.0.0.1", 1001);
    lim.record_failure("10.0.0.1", 1002);
    CHECK(lim.blocked("10.0.0.1", 1003, first, 0));
    CHECK(first);
    CHECK(lim.failures("10.0.0.1", 1000 + auth::LoginLimiter::kWindowMs) == 0);
    auth::LoginLimiter none(0);
    CHECK_FALSE(none.blocked("10.0.0.1", 1000, first, 100));
}

TEST_CASE("authenticator: checks still pending count against the failure limit") {
    Rig r(16, 3);
    for (broker::ConnId c = 1; c <= 3; ++c) CHECK_FALSE(r.login(c, "192.0.2.7", "wrong").has_value());
    CHECK(r.a.pending_from("192.0.2.7") == 3);
    // None has finished, yet the address is at its limit: refused at once,
    // the right password too, as busy (nothing has failed yet: come back).
    CHECK(reason(r.login(4, "192.0.2.7", "wrong")) == mqtt::rc::ServerBusy);
    CHECK(reason(r.login(5, "192.0.2.7", "secret")) == mqtt::rc::ServerBusy);
    CHECK(r.refusals.empty());
    // Logged as that address's doing, not as a full queue (it holds 3 of 16).
    CHECK(r.busy_queue_full == std::vector<bool>{false});
    CHECK_FALSE(r.login(6, "192.0.2.8", "secret").has_value());   // another address is served
    r.gate.open();
    r.collect_until(4);
    REQUIRE(r.got.size() == 4);
    CHECK(r.a.pending() == 0);
    CHECK(r.a.pending_from("192.0.2.7") == 0);
    // Finished, they are failures now: refused and logged once.
    CHECK(reason(r.login(7, "192.0.2.7", "secret")) == mqtt::rc::BadUserNameOrPassword);
    CHECK(r.refusals == std::vector<std::string>{"192.0.2.7"});
}

TEST_CASE("authenticator: a full queue refuses with server busy, logged once per episode") {
    Rig r(2, 0);   // no failure limit: only the queue bound refuses
    CHECK_FALSE(r.login(1, "192.0.2.1", "wrong").has_value());    // first lane
    CHECK_FALSE(r.login(2, "192.0.2.1", "wrong").has_value());    // second lane (pending)
    CHECK_FALSE(r.login(3, "192.0.2.1", "wrong").has_value());
    for (broker::ConnId c = 4; c <= 8; ++c)
        CHECK(reason(r.login(c, "192.0.2.1", "wrong")) == mqtt::rc::ServerBusy);
    CHECK(r.a.pending_from("192.0.2.1") == 3);   // a busy refusal is neither pending nor a failure
    REQUIRE(r.busy.size() == 1);
    CHECK(r.busy[0] == std::make_tuple(true, std::string("192.0.2.1"), uint64_t(0)));
    CHECK(r.busy_queue_full == std::vector<bool>{true});
    r.gate.open();
    r.collect_until(3);
    REQUIRE(r.got.size() == 3);
    // Drained: the episode ends with one line and its count.
    REQUIRE(r.busy.size() == 2);
    CHECK(r.busy[1] == std::make_tuple(false, std::string(), uint64_t(5)));
    CHECK_FALSE(r.login(9, "192.0.2.1", "secret").has_value());
    r.collect_until(4);
    REQUIRE(r.got.size() == 4);
    CHECK(std::get<2>(r.got[3]).reason == mqtt::rc::Success);
    CHECK(r.busy.size() == 2);

    // Another episode within the minute: refused alike, not logged; its
    // refusals are counted into the next episode's line, a minute on.
    auto episode = [&](broker::ConnId first, size_t collected) {
        Gate gate;
        gate.hold(r.pool);
        for (broker::ConnId c = first; c < first + 3; ++c) CHECK_FALSE(r.login(c, "192.0.2.1", "wrong").has_value());
        for (broker::ConnId c = first + 3; c < first + 5; ++c)
            CHECK(reason(r.login(c, "192.0.2.1", "wrong")) == mqtt::rc::ServerBusy);
        gate.open();
        r.collect_until(collected);
        REQUIRE(r.got.size() == collected);
    };
    r.now += 30000;
    episode(10, 7);
    CHECK(r.busy.size() == 2);
    r.now += 30000;
    episode(20, 10);
    REQUIRE(r.busy.size() == 4);
    CHECK(std::get<0>(r.busy[2]));
    CHECK(r.busy[3] == std::make_tuple(false, std::string(), uint64_t(4)));

    // An episode within the minute, then no more: its count is logged by
    // the tick once the minute is over.
    r.now += 10000;
    episode(30, 13);
    r.a.on_tick();
    CHECK(r.busy.size() == 4);
    r.now += 50000;
    r.a.on_tick();
    REQUIRE(r.busy.size() == 5);
    CHECK(r.busy[4] == std::make_tuple(false, std::string(), uint64_t(2)));
    r.now += 60000;
    r.a.on_tick();
    CHECK(r.busy.size() == 5);
}

TEST_CASE("authenticator: a clean address is checked ahead of a flood that changes address") {
    Rig r(64, 30);
    broker::ConnId c = 1;
    // Each flooding address: its first CONNECT has a clean record, the rest
    // wait behind it (pending), in the second lane.
    for (const char* flooder : {"127.0.0.2", "127.0.0.3", "127.0.0.4"})
        for (int i = 0; i < 10; ++i) CHECK_FALSE(r.login(c++, flooder, "wrong").has_value());
    CHECK(r.pool.queued(Lane::First) == 3);
    CHECK(r.pool.queued(Lane::Second) == 27);
    const broker::ConnId device = c;
    CHECK_FALSE(r.login(device, "127.0.0.1", "secret").has_value());
    CHECK(r.pool.queued(Lane::First) == 4);
    r.gate.open();
    r.collect_until(31);
    REQUIRE(r.got.size() == 31);
    size_t at = 0;
    while (at < r.got.size() && std::get<0>(r.got[at]) != device) ++at;
    CHECK(at == 3);   // behind one check per flooding address, not behind 30
    CHECK(std::get<2>(r.got[at]).reason == mqtt::rc::Success);
    // An address that failed this minute goes to the second lane even with
    // nothing pending; the device's address (no failure) still to the first.
    Gate again;
    again.hold(r.pool);
    CHECK_FALSE(r.login(c + 1, "127.0.0.2", "wrong").has_value());
    CHECK(r.pool.queued(Lane::Second) == 1);
    CHECK_FALSE(r.login(c + 2, "127.0.0.1", "other").has_value());
    CHECK(r.pool.queued(Lane::First) == 1);
}

TEST_CASE("authenticator: cancelled, dropped and reloaded checks leave no pending count behind") {
    Rig r(4, 3);
    // A connection that closes (or reaches the CONNECT deadline) while its
    // check waits: the broker cancels it, and the address is free again.
    for (broker::ConnId c = 1; c <= 20; ++c) {
        CHECK_FALSE(r.login(c, "192.0.2.5", "wrong").has_value());
        r.a.cancel(c, c);
    }
    CHECK(r.a.pending_from("192.0.2.5") == 0);
    CHECK(r.a.pending() == 0);
    // A cancel for another request of the connection changes nothing.
    CHECK_FALSE(r.login(21, "192.0.2.5", "wrong").has_value());
    r.a.cancel(21, 999);
    CHECK(r.a.pending_from("192.0.2.5") == 1);
    // A reload while checks wait: one that passes against the file it
    // started with is checked again against the new one; all are counted
    // out when they finish.
    CHECK_FALSE(r.login(22, "192.0.2.5", "secret").has_value());
    r.a.set_password_file(file_with("alice", "changed"));
    CHECK(r.a.pending_from("192.0.2.5") == 2);
    // A connection closed before its CONNECT was checked is forgotten.
    r.a.note_peer(23, "192.0.2.6:1");
    r.a.forget_peer(23);
    r.gate.open();
    r.collect_until(2);
    REQUIRE(r.got.size() == 2);
    CHECK(r.a.pending() == 0);
    CHECK(r.a.pending_from("192.0.2.5") == 0);
    CHECK(std::get<2>(r.got[1]).reason == mqtt::rc::BadUserNameOrPassword);   // checked again: "secret" is gone
    // Two failures so far (the cancelled ones cost no hash, counted nothing).
    CHECK_FALSE(r.login(24, "192.0.2.5", "changed").has_value());
    r.collect_until(3);
    REQUIRE(r.got.size() == 3);
    CHECK(std::get<2>(r.got[2]).reason == mqtt::rc::Success);
}
