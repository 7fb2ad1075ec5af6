// Password checks off the reactor: the worker pool, the per-address failure
// limit, the cache of verified passwords, and PasswordAuthenticator over them.
#include <doctest/doctest.h>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "auth/authenticator.hpp"
#include "auth_test_util.hpp"
#include "auth/hash_pool.hpp"
#include "auth/login_limiter.hpp"
#include "auth/verified_cache.hpp"
#include "mqtt/packet.hpp"

using namespace hato;
using auth::HashPool;
using auth::LoginLimiter;
using auth::PasswordAuthenticator;
using auth::VerifiedCache;
using broker::AuthRequest;
using broker::AuthVerdict;
using namespace hato::auth::test;

namespace {

// Drains `pool` until `want` results arrived (or 5 s passed).
std::vector<std::pair<uint64_t, bool>> drain_n(HashPool& pool, size_t want) {
    std::vector<std::pair<uint64_t, bool>> got;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
        if (!wait_readable(pool.event_fd(), 100)) continue;
        pool.drain([&](uint64_t t, bool r) { got.emplace_back(t, r); });
    }
    return got;
}

struct Verdicts {
    std::vector<std::tuple<broker::ConnId, uint64_t, AuthVerdict>> got;
    PasswordAuthenticator::ResultSink sink() {
        return [this](broker::ConnId c, uint64_t id, const AuthVerdict& v) { got.emplace_back(c, id, v); };
    }
};

// Collects until `n` verdicts arrived (or 5 s passed).
void collect_n(PasswordAuthenticator& a, HashPool& pool, Verdicts& v, size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (v.got.size() < n && std::chrono::steady_clock::now() < deadline)
        if (wait_readable(pool.event_fd(), 100)) a.collect();
}

}  // namespace

TEST_CASE("hash pool: jobs run on worker threads and come back through the eventfd") {
    HashPool pool(2);
    REQUIRE(pool.ok());
    std::atomic<int> on_caller{0};
    const auto caller = std::this_thread::get_id();
    std::vector<uint64_t> tickets;
    for (int i = 0; i < 6; ++i)
        tickets.push_back(pool.submit([&, i] {
            if (std::this_thread::get_id() == caller) ++on_caller;
            return i % 2 == 0;
        }));
    auto got = drain_n(pool, 6);
    REQUIRE(got.size() == 6);
    CHECK(on_caller == 0);
    for (auto& [ticket, result] : got) {
        auto pos = std::find(tickets.begin(), tickets.end(), ticket) - tickets.begin();
        REQUIRE(pos < 6);
        CHECK(result == (pos % 2 == 0));
    }
    CHECK(pool.queued() == 0);
}

TEST_CASE("hash pool: a queued job can be cancelled; destruction does not wait for queued jobs") {
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::atomic<bool> second_ran{false};
    {
        HashPool pool(1);
        uint64_t first = pool.submit([gate] { gate.wait(); return true; });
        uint64_t second = pool.submit([&] { second_ran = true; return true; });
        pool.submit([] { return true; });   // still queued when the pool goes
        CHECK(pool.cancel(second));
        CHECK_FALSE(pool.cancel(second));
        release.set_value();
        auto got = drain_n(pool, 1);
        REQUIRE(got.size() >= 1);
        CHECK(got[0].first == first);
    }
    CHECK_FALSE(second_ran);
}

TEST_CASE("login limiter: failures per address in one-minute windows") {
    LoginLimiter lim(3);
    bool first = false;
    for (int i = 0; i < 3; ++i) {
        CHECK_FALSE(lim.blocked("10.0.0.1", 1000, first));
        lim.record_failure("10.0.0.1", 1000 + uint64_t(i));
    }
    CHECK(lim.blocked("10.0.0.1", 2000, first));
    CHECK(first);                                   // the first refusal is the one to log
    CHECK(lim.blocked("10.0.0.1", 3000, first));
    CHECK_FALSE(first);
    CHECK_FALSE(lim.blocked("10.0.0.2", 3000, first));   // another address is not affected
    CHECK_FALSE(lim.blocked("10.0.0.1", 1000 + LoginLimiter::kWindowMs, first));   // a new minute
    CHECK(lim.tracked() == 0);

    LoginLimiter none(0);
    for (int i = 0; i < 100; ++i) none.record_failure("x", 0);
    CHECK_FALSE(none.blocked("x", 1, first));
}

TEST_CASE("login limiter: the number of addresses tracked is bounded") {
    LoginLimiter lim(1, 4);
    for (int i = 0; i < 10; ++i) lim.record_failure("a" + std::to_string(i), uint64_t(i));
    CHECK(lim.tracked() <= 4);
    bool first = false;
    CHECK(lim.blocked("a9", 20, first));   // the newest are kept
    CHECK_FALSE(lim.blocked("a0", 20, first));
}

TEST_CASE("login limiter: the port is not part of the address") {
    CHECK(auth::host_of("192.0.2.1:50000") == "192.0.2.1");
    CHECK(auth::host_of("2001:db8::1:50000") == "2001:db8::1");
    CHECK(auth::host_of("?") == "?");
}

TEST_CASE("verified cache: keyed digests, bounded, cleared with a new generation") {
    VerifiedCache cache(2);
    std::string k1 = cache.key("alice", "secret");
    CHECK(k1.size() == 32);
    CHECK(k1.find("secret") == std::string::npos);
    CHECK(cache.key("ab", "c") != cache.key("a", "bc"));
    CHECK(VerifiedCache(2).key("alice", "secret") != k1);   // another salt
    CHECK_FALSE(cache.contains(k1));
    cache.insert(k1);
    CHECK(cache.contains(k1));
    cache.insert(cache.key("bob", "b"));
    cache.insert(cache.key("carol", "c"));
    CHECK(cache.size() == 2);
    CHECK_FALSE(cache.contains(k1));   // oldest out first
    uint64_t gen = cache.generation();
    cache.clear();
    CHECK(cache.size() == 0);
    CHECK(cache.generation() != gen);
}

TEST_CASE("authenticator on a pool: the verdict comes later, then from the cache") {
    HashPool pool(1);
    Verdicts v;
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "secret"));
    a.set_pool(&pool, v.sink());

    CHECK_FALSE(a.start(request(1, 11, "alice", "secret")).has_value());
    CHECK_FALSE(a.start(request(2, 12, "alice", "wrong")).has_value());
    CHECK(a.pending() == 2);
    collect_n(a, pool, v, 2);
    REQUIRE(v.got.size() == 2);
    for (auto& [conn, id, verdict] : v.got) {
        CHECK(id == conn + 10);
        CHECK(verdict.reason == (conn == 1 ? mqtt::rc::Success : mqtt::rc::BadUserNameOrPassword));
        CHECK(verdict.user_verified == (conn == 1));
    }
    CHECK(a.pending() == 0);
    CHECK(a.cached() == 1);

    // Known now: answered at once, no hashing.
    std::optional<AuthVerdict> again = a.start(request(3, 13, "alice", "secret"));
    REQUIRE(again.has_value());
    CHECK(again->reason == mqtt::rc::Success);
    CHECK(again->user_verified);
    CHECK_FALSE(a.start(request(4, 14, "alice", "Secret")).has_value());   // not a cached pair
    collect_n(a, pool, v, 3);

    // A reload empties the cache: the old password must be checked again.
    a.set_password_file(file_with("alice", "new"));
    CHECK(a.cached() == 0);
    CHECK_FALSE(a.start(request(5, 15, "alice", "secret")).has_value());
    collect_n(a, pool, v, 4);
    REQUIRE(v.got.size() == 4);
    CHECK(std::get<2>(v.got[3]).reason == mqtt::rc::BadUserNameOrPassword);
}

// A reload that removes a user or changes a password while that user's
// check is queued or running: the check is done again against the new file.
TEST_CASE("authenticator: a check that passed against a file a reload replaced is checked again") {
    HashPool pool(1);
    Verdicts v;
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "secret"));
    a.set_pool(&pool, v.sink());

    CHECK_FALSE(a.start(request(1, 11, "alice", "secret")).has_value());
    a.set_password_file(file_with("alice", "changed"));   // the reload, before the verdict is collected
    collect_n(a, pool, v, 1);
    REQUIRE(v.got.size() == 1);
    CHECK(std::get<2>(v.got[0]).reason == mqtt::rc::BadUserNameOrPassword);
    CHECK(a.pending() == 0);
    CHECK(a.cached() == 0);

    CHECK_FALSE(a.start(request(2, 12, "alice", "changed")).has_value());
    a.set_password_file(file_with("alice", "changed"));   // the same password: accepted after the second check
    collect_n(a, pool, v, 2);
    REQUIRE(v.got.size() == 2);
    CHECK(std::get<2>(v.got[1]).reason == mqtt::rc::Success);
    CHECK(a.cached() == 1);

    a.set_password_file(file_with("bob", "pw"));
    CHECK_FALSE(a.start(request(3, 13, "bob", "pw")).has_value());
    a.set_password_file(nullptr);   // no file any more: a user name alone, and anonymous is refused here
    collect_n(a, pool, v, 3);
    REQUIRE(v.got.size() == 3);
    CHECK(std::get<2>(v.got[2]).reason == mqtt::rc::NotAuthorized);
}

TEST_CASE("authenticator: over the failure limit an address is refused without hashing, logged once") {
    HashPool pool(1);
    Verdicts v;
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "secret"));
    a.set_pool(&pool, v.sink());
    a.set_max_failed_per_minute(2);
    uint64_t now = 1000;
    a.set_clock([&] { return now; });
    std::vector<std::string> logged;
    a.set_refusal_log([&](std::string_view addr, uint32_t limit) {
        CHECK(limit == 2);
        logged.emplace_back(addr);
    });

    for (broker::ConnId c = 1; c <= 2; ++c) {
        a.note_peer(c, "192.0.2.7:4000" + std::to_string(c));
        CHECK_FALSE(a.start(request(c, c, "alice", "wrong")).has_value());
    }
    collect_n(a, pool, v, 2);
    REQUIRE(v.got.size() == 2);

    // Over the limit: even the right password is refused at once (a guesser
    // must not learn that a guess matched).
    for (broker::ConnId c = 3; c <= 5; ++c) {
        a.note_peer(c, "192.0.2.7:5000" + std::to_string(c));
        std::optional<AuthVerdict> r = a.start(request(c, c, "alice", "secret"));
        REQUIRE(r.has_value());
        CHECK(r->reason == mqtt::rc::BadUserNameOrPassword);
    }
    CHECK(a.pending() == 0);
    CHECK(logged == std::vector<std::string>{"192.0.2.7"});

    a.note_peer(6, "192.0.2.8:1");   // another address is served
    CHECK_FALSE(a.start(request(6, 6, "alice", "secret")).has_value());
    collect_n(a, pool, v, 3);
    REQUIRE(v.got.size() == 3);
    CHECK(std::get<2>(v.got[2]).reason == mqtt::rc::Success);

    now += LoginLimiter::kWindowMs;   // the next minute: checked again, logged again when over
    a.note_peer(7, "192.0.2.7:1");
    CHECK_FALSE(a.start(request(7, 7, "alice", "wrong")).has_value());
    collect_n(a, pool, v, 4);
    REQUIRE(v.got.size() == 4);
}

TEST_CASE("authenticator: a cancelled check gives no verdict, but a hash already spent still counts") {
    HashPool pool(1);
    Verdicts v;
    PasswordAuthenticator a;
    a.set_anonymous_allowed({false});
    a.set_password_file(file_with("alice", "secret"));
    a.set_pool(&pool, v.sink());
    a.set_max_failed_per_minute(1);
    a.set_clock([] { return uint64_t(1000); });

    a.note_peer(1, "192.0.2.9:1");
    CHECK_FALSE(a.start(request(1, 1, "alice", "wrong")).has_value());
    // Wait until the worker finished it (its result is ready), then cancel.
    REQUIRE(wait_readable(pool.event_fd()));
    a.cancel(1, 1);
    a.collect();
    CHECK(v.got.empty());
    CHECK(a.pending() == 0);
    a.note_peer(2, "192.0.2.9:2");
    std::optional<AuthVerdict> r = a.start(request(2, 2, "alice", "secret"));
    REQUIRE(r.has_value());   // the failure counted: over the limit of 1
    CHECK(r->reason == mqtt::rc::BadUserNameOrPassword);
}

TEST_CASE("authenticator: no password file or no user name never reaches the pool") {
    HashPool pool(1);
    Verdicts v;
    PasswordAuthenticator a;
    a.set_anonymous_allowed({true});
    a.set_pool(&pool, v.sink());
    std::optional<AuthVerdict> r = a.start(request(1, 1, "admin", "x"));
    REQUIRE(r.has_value());
    CHECK(r->reason == mqtt::rc::Success);
    CHECK_FALSE(r->user_verified);   // a name alone proves nothing: anonymous rules
    AuthRequest cert = request(2, 2, "admin", "x");
    cert.identity = "sensor-1";
    r = a.start(cert);
    REQUIRE(r.has_value());
    CHECK(r->user_verified);
    CHECK(a.pending() == 0);
}
