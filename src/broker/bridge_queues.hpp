// The bridges' outbound queues as the log holds them, for `hato store dump`
// and `hato store verify`: the out_enqueue / out_done / session_remove
// records of the "$bridge/<name>" sessions, replayed in log order and
// decoded by the same descriptors as recovery (record_schema.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "broker/record_schema.hpp"
#include "store/log.hpp"

namespace hato::broker {

struct BridgeQueue {
    std::string name;           // the bridge's name ("$bridge/" removed)
    uint64_t messages = 0;      // queued or in flight, not yet acknowledged upstream
    uint64_t bytes = 0;         // their topics and payloads
    uint64_t oldest_lsn = 0;    // where the oldest is written (0: empty)
    uint64_t malformed = 0;     // records of this queue that do not decode
};

class BridgeQueueTally {
public:
    void add(const store::RecordView& rec);
    std::vector<BridgeQueue> result() const;

private:
    struct Item {
        uint64_t lsn = 0;
        uint64_t bytes = 0;
    };
    struct Queue {
        std::map<uint64_t, Item> items;   // by seq
        uint64_t malformed = 0;
    };
    // Each queue record's effect; `in` is past the record's key.
    static void count(Queue& q, rec::OutEnqueue& r, uint64_t lsn, BodyReader& in);
    static void count(Queue& q, rec::OutDone& r, uint64_t lsn, BodyReader& in);
    static void count(Queue& q, rec::SessionRemove& r, uint64_t lsn, BodyReader& in);
    static void count(Queue& q, rec::SessionPut& r, uint64_t lsn, BodyReader& in);

    std::map<std::string, Queue> queues_;
};

}  // namespace hato::broker
