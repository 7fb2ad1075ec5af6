// The duration histogram's quantiles over a period (the $SYS sync p50/p99),
// with the bounds the store-sync histogram uses.
#include <doctest/doctest.h>

#include "app/metrics.hpp"

using namespace hato::app;

TEST_CASE("latency histogram: quantiles of the period between two snapshots") {
    Histogram h(kSyncLatencyBoundsS);
    CHECK_FALSE(h.quantile_ms(h.counts(), h.counts(), 0.5));
    for (int i = 0; i < 98; ++i) h.observe_us(800);   // (500, 1000] us
    h.observe_us(20000);                              // (10, 25] ms
    h.observe_us(20000);
    const Histogram::Counts first = h.counts();
    const Histogram::Counts zero{};
    double p50 = *h.quantile_ms(first, zero, 0.5);
    CHECK(p50 > 0.5);
    CHECK(p50 <= 1.0);
    double p99 = *h.quantile_ms(first, zero, 0.99);
    CHECK(p99 > 10.0);
    CHECK(p99 <= 25.0);
    // Only what came after the snapshot counts.
    h.observe_us(30);
    CHECK(*h.quantile_ms(h.counts(), first, 0.99) <= 0.05);
    h.observe_us(60'000'000);   // beyond the last bound: its lower bound
    CHECK(*h.quantile_ms(h.counts(), first, 0.99) == doctest::Approx(10000.0));
}
