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
#include <optional>
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
    // `stats` may be a member not constructed yet: it is only written by sends.
    HeldAcks(Transport& t, Persistence& p, Stats& stats) : transport_(t), persist_(p), stats_(stats) {}

    // Sends the ack now if nothing is held for `c` and `ticket` is durable,
    // else holds it. `counts_inbound`: sending it frees a receive-maximum slot.
    void send(Connection& c, mqtt::PacketType type, uint16_t id, uint8_t reason, uint64_t ticket,
              bool counts_inbound);
    // The same for an encoded packet (held: copied). A packet with nothing
    // to wait for (ticket 0) behind held ones goes out right after the last
    // of them, not after what other connections hold. `publish_payload`: it
    // is a PUBLISH with that many payload bytes, counted in Stats when it
    // goes out (never, if its connection goes first).
    void send_bytes(Connection& c, std::span<const uint8_t> bytes, uint64_t ticket, bool counts_inbound = false,
                    std::optional<uint64_t> publish_payload = std::nullopt);

    // The packet just queued for `c` (a CONNACK or SUBACK, held itself or
    // behind c's last held packet) holds back everything sent to `c` after
    // it (Connection::output_held) until it goes out. Nothing if it went out.
    void hold_output(Connection& c);

    // The broker is done with `c` and closes it: if packets are held for it
    // (a CONNACK, PUBACKs, a DISCONNECT behind them), the transport is
    // closed once the last of them is sent, or at `due_ms` if that has not
    // happened by then (a sync that keeps failing). A client that pipelines
    // CONNECT ... DISCONNECT gets its answers, as it would had nothing been
    // held. False: nothing is held, the caller closes now.
    bool close_when_sent(const Connection& c, uint64_t due_ms);
    // Closes the connections whose close_when_sent deadline has passed.
    void close_overdue(uint64_t now_ms);

    // Sends the held packets whose tickets are durable, oldest first. `find`
    // maps a ConnId to its live Connection, or nullptr once it is gone.
    template <class Find>
    void release(Find&& find) {
        const uint64_t durable = persist_.durable_ticket();
        // Tickets grow in the order packets were queued, so the front is the oldest.
        while (!held_.empty() && held_.front().ticket <= durable) {
            Held& h = held_.front();
            if (Connection* c = find(h.conn)) sent(*c, h);
            else sent_to_closing(h);
            forget(h);
            held_.pop_front();
            ++front_serial_;
        }
    }

    size_t size() const { return held_.size(); }

private:
    // One held packet and those queued right behind it (nothing of their own
    // to wait for), in order, in one buffer: a held PINGRESP costs 2 bytes.
    struct Held {
        ConnId conn = 0;
        uint64_t ticket = 0;
        bool holds_output = false;   // a CONNACK/SUBACK that output waits behind
        uint32_t inbound = 0;        // of its packets, those that free a receive-maximum slot
        uint32_t packets = 1;        // in `bytes`: the transport counts one per send
        std::vector<uint8_t> bytes;
        uint32_t publishes = 0;      // of its packets, PUBLISHes (Stats::messages_out)
        uint64_t publish_payload = 0;
    };
    // Connection::held_bytes counts an entry's bytes and this much more.
    static constexpr uint64_t kEntryCost = sizeof(Held);
    // Per connection with held packets: where its last one is, and the last
    // one that has packets queued behind it (serials, entries are numbered
    // in queue order).
    struct PerConn {
        uint64_t last_serial = 0;
        uint64_t followed_end = 0;   // 1 + the serial of the last entry with followers (0: none)
        uint32_t output_holds = 0;   // held entries with holds_output
        uint64_t close_due_ms = 0;   // close_when_sent: close by then (0: not closing)
        bool closed = false;         // closing, and the transport closed already (overdue)
    };
    void sent(Connection& c, const Held& h);
    void sent_to_closing(const Held& h);   // the broker dropped h.conn: the transport may still be open
    void forget(const Held& h);
    void put_out(Connection& c, std::span<const uint8_t> bytes, uint32_t inbound);
    void count_publishes(const Held& h);
    static void add_held_bytes(Connection& c, uint64_t n);

    Transport& transport_;
    Persistence& persist_;
    Stats& stats_;
    std::deque<Held> held_;
    uint64_t front_serial_ = 0;   // held_.front()'s serial: entries are numbered in queue order
    std::unordered_map<ConnId, PerConn> conns_;
    std::vector<ConnId> closing_;   // conns_ with a close_due_ms (or since erased): what close_overdue looks at
    std::vector<uint8_t> scratch_;   // encoding buffer: only a held ack copies its bytes
};

}  // namespace hato::broker
