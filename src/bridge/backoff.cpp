#include "bridge/backoff.hpp"

#include <algorithm>

namespace hato::bridge {

Backoff::Backoff(uint64_t min_ms, uint64_t max_ms, uint64_t seed)
    : min_ms_(std::max<uint64_t>(min_ms, 1)), max_ms_(std::max(max_ms, std::max<uint64_t>(min_ms, 1))), rng_(seed) {}

uint64_t Backoff::ceiling_ms() const {
    // min * 2^attempt, saturating at max (shift bounded: no overflow).
    uint64_t c = min_ms_;
    for (uint32_t i = 0; i < attempt_ && c < max_ms_; ++i) c *= 2;
    return std::min(c, max_ms_);
}

uint64_t Backoff::next_delay_ms() {
    const uint64_t cap = ceiling_ms();
    if (attempt_ < 64) ++attempt_;
    std::uniform_int_distribution<uint64_t> pick(min_ms_, cap);
    return pick(rng_);
}

}  // namespace hato::bridge
