// The one narrow interface between routing and durable state. The broker
// calls it whenever state that must survive a restart changes; the durable
// implementation (log_persistence) turns each call into an append-log
// record, MemoryPersistence forgets everything.
//
// Every write returns an Append: either stored, with a *ticket* (the log
// sequence number), or refused with the reason. A PUBACK/PUBREC that depends
// on a write leaves only once durable_ticket() >= that ticket (group commit:
// the wiring syncs once per loop pass, then calls Broker::on_durable).
// Ticket 0 means "nothing to wait for". A refused write must never be
// acknowledged as a success: an Append cannot be ignored ([[nodiscard]])
// and a refused one has no ticket to read (Ticket).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hato::broker {

// Why a write was refused. Removals (acks, *_remove, retained_clear) and
// updates of an existing session draw on a reserve, so they are refused only
// on I/O errors; new durable work is refused when the store is full.
enum class AppendStatus : uint8_t {
    Stored,
    QuotaExceeded,  // [storage] max_bytes reached
    DiskFull,       // the file system is full (ENOSPC)
    TooLarge,       // larger than a segment: can never be stored
    IoError,        // read-only file system, EIO, failed sync
};

inline const char* append_status_name(AppendStatus s) {
    switch (s) {
    case AppendStatus::Stored: return "stored";
    case AppendStatus::QuotaExceeded: return "max_bytes reached";
    case AppendStatus::DiskFull: return "disk full";
    case AppendStatus::TooLarge: return "record larger than a segment";
    case AppendStatus::IoError: return "I/O error";
    }
    return "?";
}

// A stored write's LSN. A refused write has none, and any number read from
// it would be a lie an ack could wait on (0 even means "durable now"), so
// reading the ticket of a refused Append is a programming error that stops
// the process instead of acknowledging a write that was never stored:
// check ok() first.
class Ticket {
public:
    Ticket() = default;
    operator uint64_t() const {   // NOLINT: implicit, so a checked ticket reads as a number
        if (lsn_ == kNone) std::abort();
        return lsn_;
    }

private:
    friend struct Append;
    static constexpr uint64_t kNone = ~uint64_t(0);   // never an LSN
    explicit Ticket(uint64_t lsn) : lsn_(lsn) {}
    uint64_t lsn_ = kNone;
};

// Default-constructed: nothing stored yet.
struct [[nodiscard]] Append {
    Ticket ticket;
    AppendStatus status = AppendStatus::IoError;

    static Append stored(uint64_t lsn) { return {Ticket(lsn), AppendStatus::Stored}; }
    static Append refused(AppendStatus why) { return {Ticket(), why}; }
    bool ok() const { return status == AppendStatus::Stored; }
};

// Bytes a stored record may add to the MQTT packet it holds: the frame, the
// client id and user name (MQTT strings, at most 64 KiB each) and the fixed
// fields. [limits] max_packet_size plus this must fit in one segment.
constexpr uint64_t kMaxRecordOverhead = 2 * (65535 + 4) + 4096;

// A message as stored: everything needed to deliver it again after a restart.
// For a queued delivery (out_enqueue) qos and retain are the values this copy
// goes out with, and it also carries its subscription identifiers and the
// shared subscription it came through; retained messages leave both empty.
struct StoredMessage {
    std::string topic;
    std::vector<uint8_t> payload;
    std::vector<uint8_t> forwarded_props;  // mqtt::encode_forwarded_properties output
    uint8_t qos = 0;
    bool retain = false;
    uint64_t expiry_wall_ms = 0;           // absolute (CLOCK_REALTIME ms), 0 = never
    std::vector<uint32_t> sub_ids;         // in the order they go out
    std::string share_filter;              // "$share/group/filter" it was routed through, empty = none
    uint64_t queued_wall_ms = 0;           // when it was queued (CLOCK_REALTIME ms), 0 = not recorded
};

// The same as views (into a Message, or into the store's memory during
// load()); valid only during the call that passes it.
struct StoredMessageView {
    std::string_view topic;
    std::span<const uint8_t> payload;
    std::span<const uint8_t> forwarded_props;
    uint8_t qos = 0;
    bool retain = false;
    uint64_t expiry_wall_ms = 0;
    std::span<const uint32_t> sub_ids;
    std::string_view share_filter;
    uint64_t queued_wall_ms = 0;

    StoredMessageView() = default;
    StoredMessageView(const StoredMessage& m)   // NOLINT: implicit on purpose
        : topic(m.topic), payload(m.payload), forwarded_props(m.forwarded_props), qos(m.qos),
          retain(m.retain), expiry_wall_ms(m.expiry_wall_ms), sub_ids(m.sub_ids),
          share_filter(m.share_filter), queued_wall_ms(m.queued_wall_ms) {}
    StoredMessage owned() const {
        return {std::string(topic), {payload.begin(), payload.end()},
                {forwarded_props.begin(), forwarded_props.end()}, qos, retain, expiry_wall_ms,
                {sub_ids.begin(), sub_ids.end()}, std::string(share_filter), queued_wall_ms};
    }
};

// Whose access rights a session's deliveries are checked against: the user
// that created it. Stored with the session, so a queue waiting for an
// offline client is judged by its owner's rules after a restart too.
enum class OwnerSource : uint8_t {
    Unknown = 0,      // stored before owners were: the next CONNECT claims the session
    Anonymous = 1,    // no user name
    Password = 2,     // the CONNECT user name, as the authenticator accepted it
    Certificate = 3,  // a TLS client certificate's identity (identity_as_username)
};

struct SessionOwner {
    OwnerSource source = OwnerSource::Unknown;
    std::string_view username;   // Password and Certificate only
};

// Where a queued message stands in its session's outbound flow.
enum class OutState : uint8_t {
    Queued = 0,    // not sent yet
    Inflight = 1,  // PUBLISH sent with packet_id, waiting PUBACK / PUBREC
    Pubrel = 2,    // QoS 2: PUBREC received, PUBREL sent, waiting PUBCOMP
};

struct RecoveredSub {
    std::string filter;        // as subscribed (may be $share/...)
    uint8_t options = 0;       // SUBSCRIBE options byte (qos | nl<<2 | rap<<3 | rh<<4)
    uint32_t sub_id = 0;       // 0 = none
};

struct RecoveredOut {
    uint64_t seq = 0;          // per-session order
    OutState state = OutState::Queued;
    uint16_t packet_id = 0;
    StoredMessage msg;
};

// An inbound QoS 2 id with PUBREC sent and PUBREL not yet seen, and the
// digest (message_digest) of the message it carried: 0 when unknown (stored
// by a hato that kept none).
struct InboundQos2 {
    uint16_t packet_id = 0;
    uint64_t digest = 0;
    friend bool operator==(const InboundQos2&, const InboundQos2&) = default;
};

struct RecoveredSession {
    std::string client_id;
    uint32_t expiry_s = 0;             // session expiry interval
    uint64_t offline_since_wall_ms = 0;
    OwnerSource owner_source = OwnerSource::Unknown;
    std::string username;              // Password and Certificate owners only
    std::vector<RecoveredSub> subs;
    std::vector<RecoveredOut> out;     // sorted by seq
    std::vector<InboundQos2> qos2_in;  // sorted by packet id
    // Past every seq a record of its queue still in the log names, those of
    // messages dropped at the hand-over included: a seq is never used again
    // while a record of it may still be replayed.
    uint64_t next_seq = 1;
};

// Receives retained messages one by one during load(), so a million of them
// are never held twice (once as StoredMessage, once as the broker's message).
class RetainedSink {
public:
    virtual ~RetainedSink() = default;
    virtual void expect(size_t count) = 0;    // called once, before the first add
    virtual void add(const StoredMessageView& m) = 0;
    // A hint: add() for `topic` follows a few calls later. A sink may start
    // loading the memory that insert will touch, so the cache misses of
    // consecutive topics overlap instead of queueing.
    virtual void prefetch(std::string_view topic) { (void)topic; }
    // Instead of add(m), from a persistence that serves stored records from
    // memory: `ref` names m's record (Persistence::retained_at).
    virtual void add_stored(const StoredMessageView& m, const void* ref) {
        (void)ref;
        add(m);
    }
};

// A will the broker held when it stopped (will_put with no will_remove
// after it): its client's connection is gone, so it is due.
struct RecoveredWill {
    std::string client_id;
    StoredMessage msg;                 // no expiry: that runs from publication
    uint32_t delay_s = 0;
    std::optional<uint32_t> expiry_s;  // its Message Expiry Interval
    OwnerSource owner_source = OwnerSource::Unknown;
    std::string username;              // Password and Certificate owners only
    int listener = -1;                 // its client's (per-listener ACL); -1: none known
};

struct RecoveredState {
    // With a sink, load() hands retained messages to it; without one, it
    // collects them in `retained`.
    RetainedSink* retained_sink = nullptr;
    std::vector<StoredMessage> retained;
    std::vector<RecoveredSession> sessions;
    std::vector<RecoveredWill> wills;
};

class Persistence {
public:
    virtual ~Persistence() = default;

    virtual void load(RecoveredState& out) = 0;  // once, at start

    virtual Append retained_set(const StoredMessageView& m) = 0;
    virtual Append retained_clear(std::string_view topic) = 0;

    // Retained messages served from storage: a persistence whose records
    // stay readable in memory (the log's mapping) lets the broker keep a
    // reference to a record instead of a copy of the message. A reference
    // is valid while its record is the topic's live retained_set; when the
    // persistence copies a live record elsewhere (compaction) it reports
    // the copy's reference to the function given to on_retained_moved.
    // The record the retained_set() just made (call right after it
    // succeeded), or nullptr: the caller then keeps its own copy.
    virtual const void* last_retained_ref() const { return nullptr; }
    // The message at `ref`, as views into the storage.
    virtual StoredMessageView retained_at(const void* ref) const {
        (void)ref;
        return {};
    }
    virtual void on_retained_moved(std::function<void(const void* ref)> fn) { (void)fn; }

    // Creates or updates a persistent session (clean sessions with expiry 0
    // are never written). offline_since 0 = connected. The default owner
    // (Unknown) is for tests and tools that do not care whose it is.
    virtual Append session_put(std::string_view client_id, uint32_t expiry_s,
                               uint64_t offline_since_wall_ms, const SessionOwner& owner = {}) = 0;
    virtual Append session_remove(std::string_view client_id) = 0;  // and all it holds

    virtual Append sub_put(std::string_view client_id, std::string_view filter,
                           uint8_t options, uint32_t sub_id) = 0;
    virtual Append sub_remove(std::string_view client_id, std::string_view filter) = 0;

    // Outbound message flow of one session, keyed by the per-session seq.
    // `m` carries the delivery's sub_ids and share_filter too.
    virtual Append out_enqueue(std::string_view client_id, uint64_t seq, const StoredMessageView& m) = 0;
    virtual Append out_state(std::string_view client_id, uint64_t seq, OutState st,
                             uint16_t packet_id) = 0;
    virtual Append out_done(std::string_view client_id, uint64_t seq) = 0;  // acked or dropped

    // Inbound QoS 2: PUBREC sent (the message itself was routed and stored
    // in the receivers' queues) / PUBREL received.
    virtual Append qos2_in_put(std::string_view client_id, uint16_t packet_id, uint64_t digest) = 0;
    virtual Append qos2_in_remove(std::string_view client_id, uint16_t packet_id) = 0;

    // A client's will while it is connected or waits out its delay (one per
    // client: a put replaces the last); removed once published, discarded
    // or cancelled.
    // `listener`: its client's, whose ACL judges it (-1: none known).
    virtual Append will_put(std::string_view client_id, const StoredMessageView& m, uint32_t delay_s,
                            std::optional<uint32_t> expiry_s, const SessionOwner& owner, int listener) = 0;
    virtual Append will_remove(std::string_view client_id) = 0;

    // True when the store refuses new QoS 1/2 messages (max_bytes reached,
    // disk full, I/O error): the publisher gets quota exceeded. It turns
    // false by itself once space returns.
    virtual bool full() const = 0;
    // True while full() is for lack of space and compaction has nothing to
    // reclaim: only dropping something can free room. `bytes`: what to drop
    // for compaction to gain a worthwhile amount (half a segment).
    virtual bool needs_room(uint64_t& bytes) const { (void)bytes; return false; }
    // While on, every write draws on the reserve, past max_bytes too: they
    // belong to one message the store admitted (full() was false), which is
    // stored whole. A part stored would reach some receivers of a message
    // whose publisher is told it was refused, and a QoS 2 publisher that
    // sends it again would give them a duplicate. See AdmittedWrites. Whole
    // across a crash too: the writes are one group in the store, dropped
    // together if the process stops before the last is written.
    virtual void admit_whole(bool on) { (void)on; }

    virtual uint64_t durable_ticket() const = 0;
    // The ticket of the latest write: a packet that waits for it waits for
    // everything written so far (an answer whose records another connection
    // of the same session wrote, and whose tickets it did not keep).
    virtual uint64_t latest_ticket() const = 0;
};

// The writes of one admitted message, for as long as this lives.
class AdmittedWrites {
public:
    AdmittedWrites(Persistence& p, bool on) : p_(on ? &p : nullptr) {
        if (p_) p_->admit_whole(true);
    }
    ~AdmittedWrites() {
        if (p_) p_->admit_whole(false);
    }
    AdmittedWrites(const AdmittedWrites&) = delete;
    AdmittedWrites& operator=(const AdmittedWrites&) = delete;

private:
    Persistence* p_;
};

// Keeps nothing; every write is stored with ticket 0 (immediately durable).
class MemoryPersistence final : public Persistence {
public:
    void load(RecoveredState&) override {}
    Append retained_set(const StoredMessageView&) override { return Append::stored(0); }
    Append retained_clear(std::string_view) override { return Append::stored(0); }
    Append session_put(std::string_view, uint32_t, uint64_t, const SessionOwner& = {}) override { return Append::stored(0); }
    Append session_remove(std::string_view) override { return Append::stored(0); }
    Append sub_put(std::string_view, std::string_view, uint8_t, uint32_t) override { return Append::stored(0); }
    Append sub_remove(std::string_view, std::string_view) override { return Append::stored(0); }
    Append out_enqueue(std::string_view, uint64_t, const StoredMessageView&) override { return Append::stored(0); }
    Append out_state(std::string_view, uint64_t, OutState, uint16_t) override { return Append::stored(0); }
    Append out_done(std::string_view, uint64_t) override { return Append::stored(0); }
    Append qos2_in_put(std::string_view, uint16_t, uint64_t) override { return Append::stored(0); }
    Append qos2_in_remove(std::string_view, uint16_t) override { return Append::stored(0); }
    Append will_put(std::string_view, const StoredMessageView&, uint32_t, std::optional<uint32_t>,
                    const SessionOwner&, int) override {
        return Append::stored(0);
    }
    Append will_remove(std::string_view) override { return Append::stored(0); }
    bool full() const override { return false; }
    uint64_t durable_ticket() const override { return 0; }
    uint64_t latest_ticket() const override { return 0; }
};

}  // namespace hato::broker
