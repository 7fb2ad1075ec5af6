// A session's outbound in-flight window: QoS 1/2 messages sent and not yet
// acknowledged, kept in seq order and findable by packet id.
//
// Why not std::map<seq, OutItem> plus unordered_map<packet id, seq>: that
// pair cost two node allocations, two frees and a tree rebalance per
// message (about 800 instructions, 1/7 of the broker's user-space work per
// QoS 1 message). Here items live in a ring that reuses its storage, in the
// order they were sent (seqs only grow), and a small open-addressing table
// maps packet id -> seq. An acknowledged item leaves a hole that is dropped
// once it reaches the front; holes behind a stuck item are squeezed out when
// they outnumber the live items, so memory stays bounded by the window.
// A window of a few items (most of them: a subscriber acknowledges within a
// round trip) is searched by scanning the ring, whose lines the delivery
// touches anyway; the id table is built when the window grows past that and
// forgotten when it empties. With many sessions in flight, each one's table
// was a cold line twice per message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "broker/message.hpp"
#include "broker/persistence.hpp"

namespace hato::broker {

// One message in a session's outbound flow (QoS 1/2 only; QoS 0 is never queued).
struct OutItem {
    uint64_t seq = 0;
    MsgPtr msg;
    uint8_t qos = 1;                 // delivered QoS = min(published, granted)
    bool retain = false;             // retain flag as it goes out
    OutState state = OutState::Queued;
    uint16_t packet_id = 0;
    // In flight from an earlier connection and not sent again on this one:
    // it waits for room in the client's Receive Maximum (set and cleared
    // through InflightWindow, which counts them).
    bool awaiting_resend = false;
    std::vector<uint32_t> sub_ids;
    uint64_t share_key = 0;          // != 0: came through this shared group (redistributed if the member leaves)
    uint64_t queued_ms = 0;          // broker time it was queued (may wrap below 0: recover.cpp), for backlog age
    uint64_t state_ticket = 0;       // ticket of its last state record; QoS 2 packets wait for it (0: durable)

    // What it holds in a session's queue, for max_queued_bytes and the queue
    // budgets: the message and its subscription identifiers (overlapping
    // subscriptions can give one delivery thousands of them).
    uint64_t queued_bytes() const { return msg->byte_size() + sub_ids.size() * sizeof(uint32_t); }
};

class InflightWindow {
public:
    size_t size() const { return live_; }
    bool empty() const { return live_ == 0; }
    // Items awaiting their resend on this connection, and the rest: those
    // the client holds (the send quota counts these only).
    size_t awaiting_resend() const { return awaiting_; }
    size_t outstanding() const { return live_ - awaiting_; }
    void set_awaiting_resend(OutItem& item, bool awaiting);

    // The seq of the in-flight item with this packet id; 0 if none (seqs start at 1).
    uint64_t seq_of(uint16_t packet_id) const;
    bool has_packet_id(uint16_t packet_id) const { return seq_of(packet_id) != 0; }
    OutItem* find(uint64_t seq);

    // Adds an item whose packet id is not in the window. In seq order is the
    // fast path; an older seq (recovery replays in any order) is placed.
    void insert(OutItem&& item);
    // Removes the item with this seq; false if there is none.
    bool erase(uint64_t seq);

    // Visits the items in seq order. `f` may not insert or erase.
    template <class F>
    void for_each(F&& f) {
        for (size_t i = 0; i < count_; ++i) {
            OutItem& it = at(i);
            if (it.msg) f(it);
        }
    }
    // The same, until `f` returns false.
    template <class F>
    void for_each_while(F&& f) {
        for (size_t i = 0; i < count_; ++i) {
            OutItem& it = at(i);
            if (it.msg && !f(it)) return;
        }
    }
    // Moves the items `pred` accepts out, in seq order, and removes them.
    template <class Pred>
    void take_if(Pred&& pred, std::vector<OutItem>& out) {
        for (size_t i = 0; i < count_; ++i) {
            OutItem& it = at(i);
            if (it.msg && pred(it)) {
                out.push_back(std::move(it));
                drop(at(i), out.back().packet_id);
            }
        }
        pop_holes();
    }

    // Frees the storage of a window that grew large (called when the
    // session's flow state goes back to the pool, empty).
    void trim();

private:
    struct IdSlot {   // packet id -> seq; seq 0 = empty slot
        uint16_t packet_id = 0;
        uint64_t seq = 0;
        static bool is_empty(const IdSlot& s) { return s.seq == 0; }
        static uint32_t hash_of(const IdSlot& s) { return hash_id(s.packet_id); }
    };
    // Fibonacci hashing: good high bits, which is what ProbeRange::home uses.
    static uint32_t hash_id(uint16_t id) { return uint32_t(id) * 0x9E3779B1u; }

    static constexpr size_t kScanned = 8;   // ring items searched without the id table
    OutItem& at(size_t i) { return ring_[(head_ + i) & (ring_.size() - 1)]; }
    const OutItem& at(size_t i) const { return ring_[(head_ + i) & (ring_.size() - 1)]; }
    size_t index_of(uint64_t seq);   // position of `seq` among the count_ items, or count_
    void drop(OutItem& hole, uint16_t packet_id);   // makes `hole` a hole, unindexes its id
    void pop_holes();                // drops holes at the front; squeezes if too many
    void grow();
    size_t id_position(uint16_t packet_id) const;   // its slot in ids_ (not empty), or the empty one
    void index_put(uint16_t packet_id, uint64_t seq);
    void index_erase(uint16_t packet_id);
    void index_ring();               // builds the id table from the items in the ring

    // 64 bytes in all, one cache line (a window is bounded by the receive
    // maximum, 65 535, so 32-bit counts).
    std::vector<OutItem> ring_;      // power-of-two size; items [head_, head_ + count_)
    uint32_t head_ = 0;
    uint32_t count_ = 0;             // items in the ring, holes included
    uint32_t live_ = 0;              // items that are not holes
    uint32_t awaiting_ = 0;          // live items with awaiting_resend set
    std::vector<IdSlot> ids_;        // open addressing (open_table.hpp), load <= 3/4; empty: scan the ring
};

}  // namespace hato::broker
