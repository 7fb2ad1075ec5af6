// Reconnect delays: exponential backoff with full jitter (a uniformly random
// delay in [0, min(max, min * 2^attempt)]), never below `min_ms`, so that a
// fleet of gateways does not reconnect in lockstep after an upstream outage.
#pragma once

#include <cstdint>
#include <random>

namespace hato::bridge {

class Backoff {
public:
    Backoff(uint64_t min_ms, uint64_t max_ms, uint64_t seed);
    // The delay before the next attempt; each call counts one failed attempt.
    uint64_t next_delay_ms();
    // A connection succeeded: the next failure starts from min_ms again.
    void reset() { attempt_ = 0; }
    uint32_t attempts() const { return attempt_; }
    // The cap for the current attempt (without jitter), for tests and logs.
    uint64_t ceiling_ms() const;

private:
    uint64_t min_ms_;
    uint64_t max_ms_;
    uint32_t attempt_ = 0;
    std::mt19937_64 rng_;
};

}  // namespace hato::bridge
