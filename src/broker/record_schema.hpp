// One descriptor per record type of the broker's durable state: its fields,
// how they are encoded and decoded, how `hato store dump` shows them, its
// key and what it does to the state that key names (Effect). Writing and
// replay (LogPersistence), compaction liveness (LsnSlots), the dump and the
// bridges' queue tally all go through these, so a record type is written
// once: a new one is a struct here, a case in visit() and, if it names a
// new kind of key, its slot in LsnSlots and its restore in the replay.
//
// Fields are views: into the caller's data when writing, into the record
// body when reading. Decoding reads the key fields first (read_key), then
// the rest (read_rest), so liveness checks decode no more than the key.
// Layouts and extension rules: state_records.hpp.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string_view>
#include <vector>

#include "broker/persistence.hpp"
#include "broker/state_records.hpp"

namespace hato::broker::rec {

// What a record does to the state its key names.
enum class Effect : uint8_t {
    Put,     // holds the key's state until a newer put or a removal supersedes it
    Remove,  // drops the key's state; needed only while that exists, so dead at once
};

// Whether an append may draw on the log's reserve (then it is refused only
// on I/O errors): what frees space or belongs to what is already stored
// must get through on a full store, new durable work must not.
enum class Reserve : uint8_t {
    No,
    Yes,
    IfStored,  // when its key already holds a record
};

struct RetainedSet {
    static constexpr StateRecord kType = StateRecord::RetainedSet;
    static constexpr const char* kName = "retained_set";
    static constexpr Effect kEffect = Effect::Put;
    static constexpr Reserve kReserve = Reserve::No;
    StoredMessageView msg;   // key: msg.topic; no delivery fields

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct RetainedClear {
    static constexpr StateRecord kType = StateRecord::RetainedClear;
    static constexpr const char* kName = "retained_clear";
    static constexpr Effect kEffect = Effect::Remove;
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view topic;

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader&) {}
    void describe(std::ostream& os) const;
};

struct SessionPut {
    static constexpr StateRecord kType = StateRecord::SessionPut;
    static constexpr const char* kName = "session_put";
    static constexpr Effect kEffect = Effect::Put;
    // A stored session updated: after a restart on a full store, its client
    // must get in to drain its queue.
    static constexpr Reserve kReserve = Reserve::IfStored;
    std::string_view client;
    uint32_t expiry_s = 0;
    uint64_t offline_since_wall_ms = 0;
    bool has_owner = true;       // false: written before owners were (read only)
    uint8_t owner_source = 0;    // as stored; owner() judges unknown values
    std::string_view username;

    OwnerSource owner() const;
    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct SessionRemove {
    static constexpr StateRecord kType = StateRecord::SessionRemove;
    static constexpr const char* kName = "session_remove";
    static constexpr Effect kEffect = Effect::Remove;
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view client;   // and all the session holds

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader&) {}
    void describe(std::ostream& os) const;
};

struct SubPut {
    static constexpr StateRecord kType = StateRecord::SubPut;
    static constexpr const char* kName = "sub_put";
    static constexpr Effect kEffect = Effect::Put;
    static constexpr Reserve kReserve = Reserve::No;
    std::string_view client;
    std::string_view filter;
    uint8_t options = 0;
    uint32_t sub_id = 0;

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct SubRemove {
    static constexpr StateRecord kType = StateRecord::SubRemove;
    static constexpr const char* kName = "sub_remove";
    static constexpr Effect kEffect = Effect::Remove;
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view client;
    std::string_view filter;

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader&) {}
    void describe(std::ostream& os) const;
};

struct OutEnqueue {
    static constexpr StateRecord kType = StateRecord::OutEnqueue;
    static constexpr const char* kName = "out_enqueue";
    static constexpr Effect kEffect = Effect::Put;
    static constexpr Reserve kReserve = Reserve::No;
    std::string_view client;
    uint64_t seq = 0;
    // Written with its sub_ids and share_filter (the delivery extension).
    // Read back, msg.sub_ids stays empty and the ids are in `sub_ids`: the
    // body holds them unaligned.
    StoredMessageView msg;
    bool has_delivery = false;   // read: the body has the delivery extension
    std::vector<uint32_t> sub_ids;

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct OutStateSet {
    static constexpr StateRecord kType = StateRecord::OutState;
    static constexpr const char* kName = "out_state";
    static constexpr Effect kEffect = Effect::Put;
    // It belongs to a message already stored: refusing it would stall a
    // delivery in flight.
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view client;
    uint64_t seq = 0;
    uint8_t state = 0;   // an OutState
    uint16_t packet_id = 0;

    bool valid() const { return state <= static_cast<uint8_t>(OutState::Pubrel); }
    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct OutDone {
    static constexpr StateRecord kType = StateRecord::OutDone;
    static constexpr const char* kName = "out_done";
    static constexpr Effect kEffect = Effect::Remove;
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view client;
    uint64_t seq = 0;   // its out_enqueue and out_state

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader&) {}
    void describe(std::ostream& os) const;
};

struct Qos2InPut {
    static constexpr StateRecord kType = StateRecord::Qos2InPut;
    static constexpr const char* kName = "qos2_in_put";
    static constexpr Effect kEffect = Effect::Put;
    static constexpr Reserve kReserve = Reserve::No;
    std::string_view client;
    uint16_t packet_id = 0;
    uint64_t digest = 0;   // of the message (InboundQos2); 0: unknown

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct Qos2InRemove {
    static constexpr StateRecord kType = StateRecord::Qos2InRemove;
    static constexpr const char* kName = "qos2_in_remove";
    static constexpr Effect kEffect = Effect::Remove;
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view client;
    uint16_t packet_id = 0;

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader&) {}
    void describe(std::ostream& os) const;
};

// A connected client's will, or one waiting out its delay: published at the
// next start if the broker stops first (a crash, a power cut, a restart),
// as the connection is gone then. Keyed by client, apart from its session:
// a clean session's client has a will too.
struct WillPut {
    static constexpr StateRecord kType = StateRecord::WillPut;
    static constexpr const char* kName = "will_put";
    static constexpr Effect kEffect = Effect::Put;
    static constexpr Reserve kReserve = Reserve::No;
    std::string_view client;
    uint32_t delay_s = 0;
    bool has_expiry = false;
    uint32_t expiry_s = 0;       // its Message Expiry Interval, from publication
    uint8_t owner_source = 0;    // whose rights it is published under, as SessionPut
    std::string_view username;
    int32_t listener = -1;       // its client's listener (a per-listener ACL); -1: none known
    StoredMessageView msg;       // no expiry_wall_ms: it has not been published

    OwnerSource owner() const;
    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader& r);
    void describe(std::ostream& os) const;
};

struct WillRemove {
    static constexpr StateRecord kType = StateRecord::WillRemove;
    static constexpr const char* kName = "will_remove";
    static constexpr Effect kEffect = Effect::Remove;
    static constexpr Reserve kReserve = Reserve::Yes;
    std::string_view client;   // published, discarded or cancelled

    void encode(BodyWriter& w) const;
    void read_key(BodyReader& r);
    void read_rest(BodyReader&) {}
    void describe(std::ostream& os) const;
};

// Decodes the rest of `r` once its key is read; false if the record is
// malformed (then nothing of it may change state).
template <class R>
bool decode_rest(R& r, BodyReader& in) {
    r.read_rest(in);
    if constexpr (requires { r.valid(); }) return in.ok() && r.valid();
    else return in.ok();
}

// Decodes a whole body into `r`; false if it is malformed.
template <class R>
bool decode(R& r, BodyReader& in) {
    r.read_key(in);
    return decode_rest(r, in);
}

// Calls fn(R&) with a default-constructed descriptor of `type`'s record;
// false (fn not called) for a type this version does not know. The one list
// of record types.
template <class Fn>
bool visit(uint8_t type, Fn&& fn) {
    switch (static_cast<StateRecord>(type)) {
        case StateRecord::RetainedSet: { RetainedSet r; fn(r); return true; }
        case StateRecord::RetainedClear: { RetainedClear r; fn(r); return true; }
        case StateRecord::SessionPut: { SessionPut r; fn(r); return true; }
        case StateRecord::SessionRemove: { SessionRemove r; fn(r); return true; }
        case StateRecord::SubPut: { SubPut r; fn(r); return true; }
        case StateRecord::SubRemove: { SubRemove r; fn(r); return true; }
        case StateRecord::OutEnqueue: { OutEnqueue r; fn(r); return true; }
        case StateRecord::OutState: { OutStateSet r; fn(r); return true; }
        case StateRecord::OutDone: { OutDone r; fn(r); return true; }
        case StateRecord::Qos2InPut: { Qos2InPut r; fn(r); return true; }
        case StateRecord::Qos2InRemove: { Qos2InRemove r; fn(r); return true; }
        case StateRecord::WillPut: { WillPut r; fn(r); return true; }
        case StateRecord::WillRemove: { WillRemove r; fn(r); return true; }
    }
    return false;
}

}  // namespace hato::broker::rec
