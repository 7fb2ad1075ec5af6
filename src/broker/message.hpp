// One published message, immutable once built and shared (refcounted) by
// every session queue, in-flight slot and the retained table: routing to N
// subscribers costs N pointer copies, never N payload copies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/persistence.hpp"

namespace hato::broker {

struct Message {
    std::string topic;
    std::vector<uint8_t> payload;
    std::vector<uint8_t> forwarded;   // mqtt::encode_forwarded_properties, encoded once
    uint8_t qos = 0;                  // as published
    bool retain = false;              // as published
    uint64_t expiry_ms = 0;           // monotonic deadline, 0 = never
    uint64_t expiry_wall_ms = 0;      // the same deadline on the wall clock (for persistence)

    bool expired(uint64_t now_ms) const { return expiry_ms != 0 && now_ms >= expiry_ms; }
    // Remaining expiry interval in whole seconds, rounded up (forwarded to receivers).
    uint32_t remaining_s(uint64_t now_ms) const {
        if (expiry_ms == 0 || now_ms >= expiry_ms) return 0;
        return static_cast<uint32_t>((expiry_ms - now_ms + 999) / 1000);
    }
    size_t byte_size() const { return topic.size() + payload.size() + forwarded.size(); }
};

using MsgPtr = std::shared_ptr<const Message>;

// Converts for persistence; `qos`/`retain` are the values this copy carries.
inline StoredMessage to_stored(const Message& m, uint8_t qos, bool retain) {
    StoredMessage s;
    s.topic = m.topic;
    s.payload = m.payload;
    s.forwarded_props = m.forwarded;
    s.qos = qos;
    s.retain = retain;
    s.expiry_wall_ms = m.expiry_wall_ms;
    return s;
}

// Rebuilds a message from storage; the monotonic deadline is derived from
// the wall-clock one. Returns nullptr if it already expired, unless
// `keep_expired` (a delivery already under way must still complete).
inline MsgPtr from_stored(StoredMessage&& s, uint64_t now_ms, uint64_t wall_now_ms,
                          bool keep_expired = false) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(s.topic);
    m->payload = std::move(s.payload);
    m->forwarded = std::move(s.forwarded_props);
    m->qos = s.qos;
    m->retain = s.retain;
    m->expiry_wall_ms = s.expiry_wall_ms;
    if (s.expiry_wall_ms != 0) {
        if (s.expiry_wall_ms > wall_now_ms) m->expiry_ms = now_ms + (s.expiry_wall_ms - wall_now_ms);
        else if (keep_expired) m->expiry_ms = 0;   // no longer forwarded with an expiry
        else return nullptr;
    }
    return m;
}

}  // namespace hato::broker
