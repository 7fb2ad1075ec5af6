// Persistence over the append log: every call becomes one record (each
// type's descriptor in broker/record_schema.hpp). It also keeps, per piece of
// state, the LSN of the record that currently holds it (LsnSlots), so it
// tells compaction which records are still live and marks superseded ones
// dead as it goes.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "broker/lsn_slots.hpp"
#include "broker/persistence.hpp"
#include "broker/topic_lsn_table.hpp"
#include "store/log.hpp"

namespace hato::broker {

class LogPersistence final : public Persistence {
public:
    // `sync` is the log's mode. With Always, tickets become durable when the
    // log is synced; with Interval and Off every append counts as durable at
    // once (acks are not held; Interval bounds the loss window instead).
    LogPersistence(store::Log& log, store::SyncMode sync) : log_(log), sync_(sync), slots_(log) {}

    void load(RecoveredState& out) override;

    Append retained_set(const StoredMessageView& m) override;
    Append retained_clear(std::string_view topic) override;
    // Retained messages are served from the log's mapping (log_retained.cpp).
    const void* last_retained_ref() const override;
    StoredMessageView retained_at(const void* ref) const override;
    void on_retained_moved(std::function<void(const void* ref)> fn) override { retained_moved_ = std::move(fn); }
    Append session_put(std::string_view client_id, uint32_t expiry_s,
                       uint64_t offline_since_wall_ms, const SessionOwner& owner = {}) override;
    Append session_remove(std::string_view client_id) override;
    Append sub_put(std::string_view client_id, std::string_view filter, uint8_t options,
                   uint32_t sub_id) override;
    Append sub_remove(std::string_view client_id, std::string_view filter) override;
    Append out_enqueue(std::string_view client_id, uint64_t seq, const StoredMessageView& m) override;
    Append out_state(std::string_view client_id, uint64_t seq, OutState st,
                     uint16_t packet_id) override;
    Append out_done(std::string_view client_id, uint64_t seq) override;
    Append qos2_in_put(std::string_view client_id, uint16_t packet_id, uint64_t digest) override;
    Append qos2_in_remove(std::string_view client_id, uint16_t packet_id) override;
    Append will_put(std::string_view client_id, const StoredMessageView& m, uint32_t delay_s,
                    std::optional<uint32_t> expiry_s, const SessionOwner& owner, int listener) override;
    Append will_remove(std::string_view client_id) override;

    // The log refuses plain appends (store::Log::refusing).
    bool full() const override;
    bool needs_room(uint64_t& bytes) const override;
    // Also one group in the log (store::Log::begin_group): a process that
    // stops while they are written leaves none of them.
    void admit_whole(bool on) override {
        admitted_ = on;
        if (on) log_.begin_group();
        else log_.end_group();
    }
    uint64_t durable_ticket() const override;
    uint64_t latest_ticket() const override { return log_.last_lsn(); }

    // Runs one compaction step when the log wants it: at least `budget`
    // records or `min_bytes` bytes, and at least kCompactionPace times the
    // bytes appended since the last call (up to kMaxPacedBytes), so
    // compaction keeps up with any sustained append rate. Call once per loop
    // pass (budget 0 there is fine) and on a timer, so an idle log shrinks too.
    void maintenance(size_t budget, uint64_t min_bytes = 0);
    static constexpr uint64_t kCompactionPace = 3;
    static constexpr uint64_t kMaxPacedBytes = 8ull << 20;

    // Records in the log that still hold state (tests, stats).
    uint64_t live_records() const;
    // Of those, records load() could not read (an unknown type, or a body
    // that does not decode: written by a newer hato), kept as they are.
    size_t unread_records() const { return slots_.unread_records(); }

private:
    struct Replay;

    // The one write path: encodes `r`, appends it (drawing on the log's
    // reserve as its descriptor says) and applies it to the slots.
    template <class R>
    Append write(const R& r);
    template <class R>
    bool draws_on_reserve(const R& r);
    Append append(uint8_t type, bool exempt, uint64_t& lsn);   // lsn: 0 when refused
    // Decodes one record and applies it to the slots and to `st`; a record
    // that does not decode (or of an unknown type) changes nothing.
    void replay_record(const store::RecordView& rec, Replay& st);
    // After the replay: each topic's current message to out.retained_sink
    // (or out.retained), in first-set order.
    void hand_over_retained(Replay& st, RecoveredState& out);

    store::Log& log_;
    store::SyncMode sync_;
    LsnSlots slots_;
    std::vector<uint8_t> body_;  // scratch for encoding
    uint64_t appended_since_maintenance_ = 0;  // bytes, for compaction pacing
    bool admitted_ = false;   // admit_whole(): every write draws on the reserve
    uint64_t* compact_slot_ = nullptr;  // set by the live predicate, read by moved
    TopicLsnTable::Entry* compact_entry_ = nullptr;  // the same, for a retained_set
    std::function<void(const void* ref)> retained_moved_;  // told of each retained_set compaction copies
};

}  // namespace hato::broker
