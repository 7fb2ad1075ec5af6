// What a device does next when it is free, and how many writes it may have
// waiting: a flood of writes from MQTT must neither grow memory without
// bound nor stop the polls (a device that is only written looks online
// while its values go stale).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hato::modbus {

// Writes one device may have queued or in flight; more are refused at once.
constexpr size_t kMaxQueuedWrites = 64;
// Writes sent in a row before a due poll read takes its turn.
constexpr size_t kWritesBetweenPolls = 4;

enum class NextRequest : uint8_t { Write, Readback, Poll, Wait };

struct DeviceTurn {
    bool write_queued = false;
    bool readback_due = false;     // a write succeeded: read the point back
    bool poll_due = false;         // a poll cycle runs, or its slot has come
    size_t writes_in_row = 0;      // writes sent since the last poll read
};

// Writes go first (an operator waits for them) but never more than
// kWritesBetweenPolls of them while a poll is due.
NextRequest next_request(const DeviceTurn& t);

// Counts one device's writes from accepted to answered.
class WriteQueueBound {
public:
    explicit WriteQueueBound(size_t limit = kMaxQueuedWrites) : limit_(limit) {}
    // False (and counted as refused) when `limit` writes already wait.
    bool admit();
    void done() {
        if (queued_ > 0) --queued_;
    }
    size_t queued() const { return queued_; }
    uint64_t refused() const { return refused_; }
    size_t limit() const { return limit_; }

private:
    size_t limit_;
    size_t queued_ = 0;
    uint64_t refused_ = 0;
};

}  // namespace hato::modbus
