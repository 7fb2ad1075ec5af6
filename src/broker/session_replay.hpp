// The sessions LogPersistence::load() rebuilds from the records it replays:
// restore() is each session record's effect on recovered state. Merged per
// key, so that record order within a key does not matter (compaction moves
// live records behind newer ones).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "broker/lsn_slots.hpp"
#include "broker/persistence.hpp"
#include "broker/record_schema.hpp"
#include "broker/str_map.hpp"

namespace hato::broker {

class SessionReplay {
public:
    // Records are passed non-const: their decoded sub_ids move out.
    void restore(rec::SessionPut& r);
    void restore(rec::SessionRemove& r) {
        if (auto it = sessions_.find(r.client); it != sessions_.end()) sessions_.erase(it);
    }
    void restore(rec::SubPut& r);
    void restore(rec::SubRemove& r);
    void restore(rec::OutEnqueue& r);
    void restore(rec::OutStateSet& r);
    void restore(rec::OutDone& r);
    void restore(rec::Qos2InPut& r) { find_or_emplace(sessions_, r.client).qos2_in[r.packet_id] = r.digest; }
    void restore(rec::Qos2InRemove& r);

    // The recovered sessions, each one's queue sorted by seq. A state update
    // whose message is gone (never happens with a well-behaved writer) has
    // nothing to deliver: it is dropped, and forgotten in `slots` too.
    void hand_over(std::vector<RecoveredSession>& out, LsnSlots& slots);

private:
    struct Out {
        bool has_msg = false;
        RecoveredOut out;
    };
    struct Session {
        bool has_put = false;
        uint32_t expiry_s = 0;
        uint64_t offline_since = 0;
        OwnerSource owner_source = OwnerSource::Unknown;
        std::string username;
        StrMap<RecoveredSub> subs;
        std::unordered_map<uint64_t, Out> out;
        std::unordered_map<uint16_t, uint64_t> qos2_in;   // packet id -> digest
        uint64_t last_seq = 0;   // the highest any out_* record named
    };
    Session* find(std::string_view client) {
        auto it = sessions_.find(client);
        return it == sessions_.end() ? nullptr : &it->second;
    }

    StrMap<Session> sessions_;
};

}  // namespace hato::broker
