#include "broker/held_acks.hpp"

#include <algorithm>

#include "mqtt/codec.hpp"

namespace hato::broker {

void HeldAcks::send(Connection& c, mqtt::PacketType type, uint16_t id, uint8_t reason, uint64_t ticket,
                    bool counts_inbound) {
    scratch_.clear();
    mqtt::encode_ack(type, id, reason, c.version, scratch_);
    send_bytes(c, scratch_, ticket, counts_inbound);
}

void HeldAcks::send_bytes(Connection& c, std::span<const uint8_t> bytes, uint64_t ticket, bool counts_inbound) {
    if (c.held_acks == 0 && ticket <= persist_.durable_ticket()) return sent(c, bytes, counts_inbound, false);
    held_.push_back({c.id, ticket, counts_inbound, c.output_held, {bytes.begin(), bytes.end()}});
    if (c.output_held) output_bytes_[c.id] += bytes.size();
    ++c.held_acks;
}

void HeldAcks::sent(Connection& c, std::span<const uint8_t> bytes, bool counts_inbound, bool was_held) {
    transport_.send_low_priority(c.id, bytes);
    if (was_held && --c.held_acks == 0 && c.output_held) {
        c.output_held = false;
        output_bytes_.erase(c.id);
    }
    if (counts_inbound && c.inbound_pending > 0) --c.inbound_pending;
}

void HeldAcks::uncount_output(const Held& h) {
    auto it = output_bytes_.find(h.conn);
    if (it != output_bytes_.end()) it->second -= std::min<uint64_t>(it->second, h.bytes.size());
}

}  // namespace hato::broker
