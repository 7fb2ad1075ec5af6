// Packets that wait for the persisted state they depend on: PUBACK/PUBREC/
// PUBCOMP/PUBREL, CONNACK/SUBACK/UNSUBACK, and a QoS 2 PUBLISH to a persistent
// session (its packet id must be durable before the receiver holds it). A
// packet goes out only once its ticket is durable, and never before one held
// earlier for the same connection (a PUBCOMP must not overtake a PUBREC, a
// PUBREL its PUBLISH).
//
// Behind a held CONNACK or SUBACK a connection's whole output waits
// (hold_output): nothing may precede a CONNACK, and the retained messages
// that follow a SUBACK must not overtake it (clients such as Paho's
// embedded C one drop a PUBLISH for a subscription not yet acknowledged),
// nor live messages the new subscription matched.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "broker/broker.hpp"
#include "broker/client_state.hpp"
#include "broker/persistence.hpp"
#include "mqtt/packet.hpp"

namespace hato::broker {

class HeldAcks {
public:
    HeldAcks(Transport& t, Persistence& p) : transport_(t), persist_(p) {}

    // Sends the ack now if nothing is held for `c` and `ticket` is durable,
    // else holds it. `counts_inbound`: sending it frees a receive-maximum slot.
    void send(Connection& c, mqtt::PacketType type, uint16_t id, uint8_t reason, uint64_t ticket,
              bool counts_inbound);
    // The same for an encoded packet (held: copied).
    void send_bytes(Connection& c, std::span<const uint8_t> bytes, uint64_t ticket, bool counts_inbound = false);

    // From now until its held packets are out, everything sent to `c` waits
    // behind them (Connection::output_held). Only while something is held.
    void hold_output(Connection& c) { c.output_held = c.held_acks > 0; }
    // Bytes waiting behind a hold_output() for `c` (its output limit counts them).
    uint64_t held_output_bytes(ConnId id) const {
        auto it = output_bytes_.find(id);
        return it == output_bytes_.end() ? 0 : it->second;
    }

    // Sends the held acks whose tickets are durable, oldest first. `find`
    // maps a ConnId to its live Connection, or nullptr once it is gone.
    template <class Find>
    void release(Find&& find) {
        const uint64_t durable = persist_.durable_ticket();
        // Tickets grow in the order acks were queued, so the front is the oldest.
        while (!held_.empty() && held_.front().ticket <= durable) {
            Held& h = held_.front();
            if (h.output) uncount_output(h);
            if (Connection* c = find(h.conn)) sent(*c, h.bytes, h.counts_inbound);
            else output_bytes_.erase(h.conn);
            held_.pop_front();
        }
    }

    size_t size() const { return held_.size(); }

private:
    struct Held {
        ConnId conn = 0;
        uint64_t ticket = 0;
        bool counts_inbound = false;
        bool output = false;   // counted in output_bytes_ (held by hold_output)
        std::vector<uint8_t> bytes;
    };
    void sent(Connection& c, std::span<const uint8_t> bytes, bool counts_inbound, bool was_held = true);
    void uncount_output(const Held& h);

    Transport& transport_;
    Persistence& persist_;
    std::deque<Held> held_;
    std::unordered_map<ConnId, uint64_t> output_bytes_;   // per connection with output_held
    std::vector<uint8_t> scratch_;   // encoding buffer: only a held ack copies its bytes
};

}  // namespace hato::broker
