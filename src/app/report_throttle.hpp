// A log line about something that can happen thousands of times a second (a
// refused connection, an accept out of descriptors, a bridge's dropped QoS 0)
// goes out at most once per interval, carrying how many happened since the
// last one: the log lives on flash and must stay readable.
#pragma once

#include <cstdint>
#include <optional>

namespace hato::app {

class ReportThrottle {
public:
    explicit ReportThrottle(uint64_t interval_ms) : interval_ms_(interval_ms) {}

    // Counts `n` more events at `now_ms`.
    void add(uint64_t n = 1) { pending_ += n; }

    // The events counted since the last report, if one is due at `now_ms`
    // (the first is always due); the count then starts again.
    std::optional<uint64_t> due(uint64_t now_ms) {
        if (reported_ && now_ms - last_ms_ < interval_ms_) return std::nullopt;
        reported_ = true;
        last_ms_ = now_ms;
        const uint64_t n = pending_;
        pending_ = 0;
        return n;
    }

    // add(n), then due(now_ms).
    std::optional<uint64_t> note(uint64_t now_ms, uint64_t n = 1) {
        add(n);
        return due(now_ms);
    }

private:
    uint64_t interval_ms_;
    bool reported_ = false;
    uint64_t last_ms_ = 0;
    uint64_t pending_ = 0;
};

}  // namespace hato::app
