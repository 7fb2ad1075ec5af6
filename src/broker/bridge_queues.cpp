#include "broker/bridge_queues.hpp"

#include <type_traits>

#include "broker/config.hpp"
#include "broker/record_schema.hpp"

namespace hato::broker {

namespace {

// The records that change a bridge's queue: its session's and its messages'.
template <class R>
constexpr bool kQueueRecord = std::is_same_v<R, rec::OutEnqueue> || std::is_same_v<R, rec::OutDone> ||
                              std::is_same_v<R, rec::SessionRemove> || std::is_same_v<R, rec::SessionPut>;

}  // namespace

void BridgeQueueTally::add(const store::RecordView& rec) {
    rec::visit(rec.type, [&](auto& r) {
        using R = std::remove_reference_t<decltype(r)>;
        if constexpr (kQueueRecord<R>) {
            BodyReader in(rec.body);
            r.read_key(in);   // the client comes first: empty if it does not decode
            if (!r.client.starts_with(Config::kBridgeClientIdPrefix)) return;
            Queue& q = queues_[std::string(r.client.substr(Config::kBridgeClientIdPrefix.size()))];
            count(q, r, rec.lsn, in);
        }
    });
}

void BridgeQueueTally::count(Queue& q, rec::OutEnqueue& r, uint64_t lsn, BodyReader& in) {
    if (!rec::decode_rest(r, in)) {
        ++q.malformed;
        return;
    }
    q.items[r.seq] = Item{lsn, r.msg.topic.size() + r.msg.payload.size()};
}

void BridgeQueueTally::count(Queue& q, rec::OutDone& r, uint64_t, BodyReader& in) {
    if (!rec::decode_rest(r, in)) {
        ++q.malformed;
        return;
    }
    q.items.erase(r.seq);
}

void BridgeQueueTally::count(Queue& q, rec::SessionRemove&, uint64_t, BodyReader&) { q.items.clear(); }

// The queue exists (shown even while empty).
void BridgeQueueTally::count(Queue&, rec::SessionPut&, uint64_t, BodyReader&) {}

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
