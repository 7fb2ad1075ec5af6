#include "broker/held_acks.hpp"

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
    held_.push_back({c.id, ticket, counts_inbound, {bytes.begin(), bytes.end()}});
    ++c.held_acks;
}

void HeldAcks::sent(Connection& c, std::span<const uint8_t> bytes, bool counts_inbound, bool was_held) {
    transport_.send_low_priority(c.id, bytes);
    if (was_held) --c.held_acks;
    if (counts_inbound && c.inbound_pending > 0) --c.inbound_pending;
}

}  // namespace hato::broker
