// Reconnect backoff: exponential ceiling, full jitter, never below min, capped.
#include <doctest/doctest.h>

#include "bridge/backoff.hpp"

using hato::bridge::Backoff;

TEST_CASE("backoff ceilings double from min up to max") {
    Backoff b(1000, 120000, 1);
    uint64_t expect[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000};
    for (uint64_t e : expect) {
        CHECK(b.ceiling_ms() == e);
        uint64_t d = b.next_delay_ms();
        CHECK(d >= 1000);
        CHECK(d <= e);
    }
    b.reset();
    CHECK(b.ceiling_ms() == 1000);
    CHECK(b.attempts() == 0);
}

TEST_CASE("backoff jitter spreads the delays") {
    Backoff b(100, 100000, 42);
    for (int i = 0; i < 12; ++i) b.next_delay_ms();
    uint64_t lo = ~0ull, hi = 0;
    for (int i = 0; i < 200; ++i) {
        uint64_t d = b.next_delay_ms();
        CHECK(d >= 100);
        CHECK(d <= 100000);
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    CHECK(hi - lo > 50000);   // full jitter, not a fixed delay
}

TEST_CASE("backoff attempts in an outage stay within the exponential bound") {
    // 20 s of outage with min 1 s, max 120 s: the ceilings 1+2+4+8 s already
    // exceed 20 s only if every delay hits its cap; with delays >= min the
    // attempts are at most 20.
    Backoff b(1000, 120000, 7);
    uint64_t t = 0;
    int attempts = 0;
    while (t < 20000) {
        t += b.next_delay_ms();
        ++attempts;
    }
    CHECK(attempts <= 20);
    CHECK(attempts >= 2);
}

TEST_CASE("backoff with max below min uses min") {
    Backoff b(500, 100, 3);
    CHECK(b.next_delay_ms() == 500);
    CHECK(b.next_delay_ms() == 500);
}
