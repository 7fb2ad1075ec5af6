#include "broker/back_pressure.hpp"

namespace hato::broker {

void BackPressure::block(Connection& c, uint64_t now_ms, bool hold_intake) {
    if (!c.output_blocked) {
        c.output_blocked = true;
        c.blocked_since_ms = now_ms;
        c.episode_dropped = 0;
        blocked_.insert(c.id);
    }
    if (hold_intake && cfg_.slow_consumer_ms != 0 && !c.holds_intake && !c.slow_consumer && !c.own_bridge) {
        if (now_ms < c.intake_hold_ms) {
            c.slow_consumer = true;   // reported when it first fell behind
            c.slow_again = true;
        } else {
            c.holds_intake = true;
            c.intake_hold_ms = now_ms;
            if (intake_holders_++ == 0) transport_.set_intake(false);
        }
    }
    if (!c.reading_paused) {
        c.reading_paused = true;
        transport_.set_reading(c.id, false);
    }
}

void BackPressure::make_slow_consumer(Connection& c, std::string_view client_id) {
    release_intake(c);
    c.slow_consumer = true;
    transport_.slow_consumer(c.id, client_id, true, c.episode_dropped);
}

void BackPressure::release_intake(Connection& c) {
    if (!c.holds_intake) return;
    c.holds_intake = false;
    if (intake_holders_ > 0 && --intake_holders_ == 0) transport_.set_intake(true);
}

void BackPressure::end(Connection& c, std::string_view client_id, uint64_t now_ms) {
    if (!c.output_blocked) return;
    const bool was_slow = c.slow_consumer;
    release_intake(c);
    c.slow_consumer = false;
    c.output_blocked = false;
    blocked_.erase(c.id);
    if (was_slow) {
        c.intake_hold_ms = now_ms + kCoolDownFactor * cfg_.slow_consumer_ms;
        if (!c.slow_again) transport_.slow_consumer(c.id, client_id, false, c.episode_dropped);
    }
    c.slow_again = false;
    c.episode_dropped = 0;
}

}  // namespace hato::broker
