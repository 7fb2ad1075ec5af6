// Back-pressure on connections whose output is over max_output_bytes:
// forwards to such a connection wait and its input is not read until its
// output drained below half the limit; meanwhile nobody's input is read
// either (the intake is held), for at most slow_consumer_ms. What would
// arrive is mostly more output for it, and back-pressure loses nothing
// where dropping would. One switch for everyone rather than per publisher:
// which publishers feed a receiver is known only per message, and a stop
// costs nothing per message. After slow_consumer_ms it is a slow consumer:
// its QoS 0 is dropped and the others run at full speed. One that was a
// slow consumer lately (kCoolDownFactor x slow_consumer_ms since it caught
// up) is slow again at once: a client that falls behind over and over (an
// HMI on flaky Wi-Fi) would otherwise hold everyone's intake again at each
// fall, the bound per episode being none over time.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "broker/broker.hpp"
#include "broker/client_state.hpp"
#include "broker/config.hpp"

namespace hato::broker {

class BackPressure {
public:
    static constexpr uint64_t kCoolDownFactor = 10;

    BackPressure(const Config& cfg, Transport& t) : cfg_(cfg), transport_(t) {}

    // Its output: what the transport queued and what HeldAcks holds for it.
    bool over_limit(const Connection& c) const {
        return cfg_.max_output_bytes != 0 && over_limit(transport_.queued_bytes(c.id) + c.held_bytes);
    }
    // The same for `queued` bytes of output, for a caller that has the count already.
    bool over_limit(uint64_t queued) const { return cfg_.max_output_bytes != 0 && queued > cfg_.max_output_bytes; }
    // Hysteresis: a blocked connection resumes only below half the limit.
    bool drained(const Connection& c) const { return drained(transport_.queued_bytes(c.id) + c.held_bytes); }
    bool drained(uint64_t queued) const { return queued <= cfg_.max_output_bytes / 2; }
    // Stops forwarding to `c` and reading from it; with `hold_intake`, everyone's input too.
    void block(Connection& c, uint64_t now_ms, bool hold_intake);
    // Held the intake for slow_consumer_ms: a slow consumer from here on.
    bool held_too_long(const Connection& c, uint64_t now_ms) const {
        return c.holds_intake && now_ms - c.intake_hold_ms >= cfg_.slow_consumer_ms;
    }
    void make_slow_consumer(Connection& c, std::string_view client_id);
    // Ends c's back-pressure episode (drained, or gone); `client_id` names it in the report.
    void end(Connection& c, std::string_view client_id, uint64_t now_ms);

    bool any() const { return !blocked_.empty(); }
    bool intake_held() const { return intake_holders_ != 0; }   // everyone's input stopped
    // The blocked connections (a copy: handling one may end others).
    std::vector<ConnId> blocked() const { return {blocked_.begin(), blocked_.end()}; }
    void forget(ConnId id) { blocked_.erase(id); }   // one that is gone

private:
    void release_intake(Connection& c);   // the last holder resumes everyone's input

    const Config& cfg_;
    Transport& transport_;
    std::unordered_set<ConnId> blocked_;
    size_t intake_holders_ = 0;   // blocked connections with holds_intake set
};

}  // namespace hato::broker
