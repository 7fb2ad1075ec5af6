// What the store writes of one operation came to. An inbound PUBLISH passes
// one down through routing, retained storage and every queue it reaches; its
// acknowledgement waits until `ticket` is durable, and is refused if a write was.
#pragma once

#include <cstdint>

#include "broker/persistence.hpp"

namespace hato::broker {

struct OpWrites {
    uint64_t ticket = 0;                           // highest ticket of the writes
    AppendStatus refusal = AppendStatus::Stored;   // a refused write, if any

    bool refused() const { return refusal != AppendStatus::Stored; }
    void add(const Append& a) {
        if (a.ok()) {
            if (a.ticket > ticket) ticket = a.ticket;
        } else if (refusal != AppendStatus::TooLarge) {   // "can never fit" wins: retrying would not help
            refusal = a.status;
        }
    }
};

// Whether deliver() queues a message whose record the store refused.
enum class IfUnstored : uint8_t { Drop, Queue };

}  // namespace hato::broker
