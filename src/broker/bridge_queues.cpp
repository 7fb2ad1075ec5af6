#include "broker/bridge_queues.hpp"

#include "broker/state_records.hpp"

namespace hato::broker {

namespace {

constexpr std::string_view kBridgePrefix = "$bridge/";

}  // namespace

void BridgeQueueTally::add(const store::RecordView& rec) {
    const auto type = static_cast<StateRecord>(rec.type);
    if (type != StateRecord::OutEnqueue && type != StateRecord::OutDone && type != StateRecord::SessionRemove &&
        type != StateRecord::SessionPut)
        return;
    BodyReader r(rec.body);
    const std::string_view client = r.str();
    if (!r.ok() || client.substr(0, kBridgePrefix.size()) != kBridgePrefix) return;
    Queue& q = queues_[std::string(client.substr(kBridgePrefix.size()))];
    switch (type) {
        case StateRecord::OutEnqueue: {
            const uint64_t seq = r.u64();
            const std::string_view topic = r.str();
            const auto payload = r.bytes();
            if (!r.ok()) {
                ++q.malformed;
                return;
            }
            q.items[seq] = Item{rec.lsn, topic.size() + payload.size()};
            return;
        }
        case StateRecord::OutDone: {
            const uint64_t seq = r.u64();
            if (!r.ok()) {
                ++q.malformed;
                return;
            }
            q.items.erase(seq);
            return;
        }
        case StateRecord::SessionRemove:
            q.items.clear();
            return;
        default:
            return;   // SessionPut: the queue exists (shown even while empty)
    }
}

std::vector<BridgeQueue> BridgeQueueTally::result() const {
    std::vector<BridgeQueue> out;
    for (const auto& [name, q] : queues_) {
        BridgeQueue b;
        b.name = name;
        b.malformed = q.malformed;
        for (const auto& [seq, item] : q.items) {
            ++b.messages;
            b.bytes += item.bytes;
            if (b.oldest_lsn == 0 || item.lsn < b.oldest_lsn) b.oldest_lsn = item.lsn;
        }
        out.push_back(std::move(b));
    }
    return out;
}

}  // namespace hato::broker
