// Durations in fixed buckets (microseconds, roughly 1-2.5-5 steps from 50 us
// to 10 s, then overflow): recording costs a few compares, and quantiles over
// any period come from the difference of two snapshots of the counts.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace hato::broker {

class LatencyHistogram {
public:
    static constexpr std::array<uint64_t, 17> kBoundsUs = {
        50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
        100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
    using Counts = std::array<uint64_t, kBoundsUs.size() + 1>;   // the last: above every bound

    void record(uint64_t us) {
        size_t i = 0;
        while (i < kBoundsUs.size() && us > kBoundsUs[i]) ++i;
        ++counts_[i];
        sum_us_ += us;
    }
    const Counts& counts() const { return counts_; }
    uint64_t sum_us() const { return sum_us_; }

    // The q-quantile (0..1) of what was recorded between `before` and `now`,
    // in milliseconds, interpolated inside its bucket (the overflow bucket
    // answers its lower bound); none if nothing was recorded.
    static std::optional<double> quantile_ms(const Counts& now, const Counts& before, double q) {
        uint64_t total = 0;
        for (size_t i = 0; i < now.size(); ++i) total += now[i] - before[i];
        if (total == 0) return std::nullopt;
        const double rank = q * double(total);
        uint64_t below = 0;
        for (size_t i = 0; i < now.size(); ++i) {
            const uint64_t n = now[i] - before[i];
            if (n == 0 || double(below + n) < rank) {
                below += n;
                continue;
            }
            const double lo = i == 0 ? 0.0 : double(kBoundsUs[i - 1]);
            if (i == kBoundsUs.size()) return lo / 1000.0;
            const double hi = double(kBoundsUs[i]);
            const double frac = (rank - double(below)) / double(n);
            return (lo + (hi - lo) * frac) / 1000.0;
        }
        return double(kBoundsUs.back()) / 1000.0;
    }

private:
    Counts counts_{};
    uint64_t sum_us_ = 0;
};

}  // namespace hato::broker
