// Failed logins per source address, in one-minute windows: over the limit,
// a CONNECT from that address is refused before any password is hashed, so
// a guesser neither gets answers nor costs the broker 90 ms per attempt.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace hato::auth {

class LoginLimiter {
public:
    static constexpr uint64_t kWindowMs = 60000;
    // Addresses tracked at most; over it, expired windows go first, then the oldest.
    static constexpr size_t kDefaultMaxAddresses = 65536;

    explicit LoginLimiter(uint32_t max_failed_per_window = 30, size_t max_addresses = kDefaultMaxAddresses)
        : max_failed_(max_failed_per_window), max_addresses_(max_addresses) {}

    void set_limit(uint32_t max_failed_per_window) { max_failed_ = max_failed_per_window; }   // 0 = none

    // Whether `address` has used up its failures in the current window,
    // counting its `pending` checks (not finished yet) as failures: else a
    // burst queued faster than checks finish is never refused. Refused by
    // finished failures alone, or only with the pending ones (those may yet
    // succeed: the client is told to come back, not that it is wrong).
    // `first_refusal` is set for the first refusal of the window by finished
    // failures (log that one: the pending ones are counted when they finish).
    enum Refusal : uint8_t { kNotRefused = 0, kRefusedWithPending, kRefusedForFailures };
    Refusal blocked(std::string_view address, uint64_t now_ms, bool& first_refusal, uint32_t pending = 0);
    void record_failure(std::string_view address, uint64_t now_ms);
    // Failures of `address` in the current window (0 once it is over).
    uint32_t failures(std::string_view address, uint64_t now_ms) const;

    size_t tracked() const { return windows_.size(); }

private:
    struct Window {
        uint64_t start_ms = 0;
        uint32_t failures = 0;
        bool refusal_reported = false;
    };
    void make_room(uint64_t now_ms);

    uint32_t max_failed_;
    size_t max_addresses_;
    std::unordered_map<std::string, Window> windows_;
};

// "192.0.2.1:50000" -> "192.0.2.1", "2001:db8::1:50000" -> "2001:db8::1":
// the port changes with every connection, the address does not.
std::string_view host_of(std::string_view peer);

}  // namespace hato::auth
