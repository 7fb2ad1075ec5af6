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

void HeldAcks::send_bytes(Connection& c, std::span<const uint8_t> bytes, uint64_t ticket, bool counts_inbound,
                          std::optional<uint64_t> publish_payload) {
    const uint32_t publishes = publish_payload ? 1 : 0;
    const uint64_t payload = publish_payload.value_or(0);
    if (c.held_acks == 0 && ticket <= persist_.durable_ticket()) {
        put_out(c, bytes, counts_inbound ? 1 : 0);
        stats_.messages_out += publishes;
        stats_.publish_bytes_out += payload;
        return;
    }
    PerConn& pc = conns_[c.id];
    add_held_bytes(c, bytes.size());
    if (c.held_acks > 0) {
        Held& last = held_[pc.last_serial - front_serial_];
        if (ticket <= last.ticket) {   // nothing more to wait for than c's last held packet: right behind it
            last.bytes.insert(last.bytes.end(), bytes.begin(), bytes.end());
            last.inbound += counts_inbound ? 1 : 0;
            ++last.packets;
            last.publishes += publishes;
            last.publish_payload += payload;
            pc.followed_end = pc.last_serial + 1;
            return;
        }
    }
    held_.push_back({c.id, ticket, false, counts_inbound ? 1u : 0u, 1, {bytes.begin(), bytes.end()}, publishes,
                     payload});
    add_held_bytes(c, kEntryCost);
    pc.last_serial = front_serial_ + held_.size() - 1;
    ++c.held_acks;
}

// Saturates: a connection with 4 GiB held is over any output limit anyway.
void HeldAcks::add_held_bytes(Connection& c, uint64_t n) {
    c.held_bytes = uint32_t(std::min<uint64_t>(UINT32_MAX, c.held_bytes + n));
}

void HeldAcks::hold_output(Connection& c) {
    auto it = conns_.find(c.id);
    if (c.held_acks == 0 || it == conns_.end()) return;   // it went out: nothing to wait for
    // The packet is the last held one or behind it: output waits for that one.
    Held& last = held_[it->second.last_serial - front_serial_];
    if (last.holds_output) return;
    last.holds_output = true;
    ++it->second.output_holds;
    c.output_held = true;
}

void HeldAcks::put_out(Connection& c, std::span<const uint8_t> bytes, uint32_t inbound) {
    transport_.send_low_priority(c.id, bytes);
    c.inbound_pending -= std::min(c.inbound_pending, inbound);
}

void HeldAcks::count_publishes(const Held& h) {
    stats_.packets_out += h.packets - 1;
    stats_.messages_out += h.publishes;
    stats_.publish_bytes_out += h.publish_payload;
}

// `h` is the front entry (serial front_serial_).
void HeldAcks::sent(Connection& c, const Held& h) {
    put_out(c, h.bytes, h.inbound);
    count_publishes(h);
    --c.held_acks;
    c.held_bytes -= uint32_t(std::min<uint64_t>(c.held_bytes, h.bytes.size() + kEntryCost));
    if (!h.holds_output) return;
    auto it = conns_.find(h.conn);
    if (it == conns_.end() || it->second.output_holds == 0) return;
    PerConn& pc = it->second;
    if (pc.followed_end > front_serial_ + 1) {
        // Output went on queueing behind a later entry (a PUBACK held after
        // the SUBACK): it stays held until that one goes out, or what is sent
        // from now on would overtake what is queued there (MQTT-4.6.0-6).
        Held& later = held_[pc.followed_end - 1 - front_serial_];
        if (!later.holds_output) {
            later.holds_output = true;
            return;   // the hold moved: output_holds unchanged
        }
    }
    if (--pc.output_holds == 0) c.output_held = false;
}

void HeldAcks::sent_to_closing(const Held& h) {
    auto it = conns_.find(h.conn);
    if (it == conns_.end() || it->second.close_due_ms == 0 || it->second.closed) return;
    transport_.send_low_priority(h.conn, h.bytes);
    count_publishes(h);
}

void HeldAcks::forget(const Held& h) {
    auto it = conns_.find(h.conn);
    if (it == conns_.end() || it->second.last_serial != front_serial_) return;
    // Its last held packet: a closing connection has been sent all it was owed.
    if (it->second.close_due_ms != 0 && !it->second.closed) transport_.close(h.conn);
    conns_.erase(it);
}

bool HeldAcks::close_when_sent(const Connection& c, uint64_t due_ms) {
    auto it = conns_.find(c.id);
    if (c.held_acks == 0 || it == conns_.end()) return false;
    it->second.close_due_ms = std::max<uint64_t>(due_ms, 1);
    closing_.push_back(c.id);
    return true;
}

void HeldAcks::close_overdue(uint64_t now_ms) {
    std::erase_if(closing_, [&](ConnId id) {
        auto it = conns_.find(id);
        if (it == conns_.end() || it->second.closed) return true;   // sent and closed, or closed already
        if (now_ms < it->second.close_due_ms) return false;
        it->second.closed = true;   // what is still held for it is dropped when it comes due
        transport_.close(id);
        return true;
    });
}

}  // namespace hato::broker
