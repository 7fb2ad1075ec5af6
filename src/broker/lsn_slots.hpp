// Per piece of durable state (a retained topic, a session, one of its
// subscriptions, queued messages, inbound QoS 2 ids), the LSN of the record
// that currently holds it. That is what tells compaction which records are
// still live, and what marks superseded ones dead as they are superseded.
//
// apply() is the one place a record changes these slots, for a record just
// written and for one replayed alike; each record type's key is resolved in
// one slot() (puts) or drop() (removals) overload below.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "broker/record_schema.hpp"
#include "broker/str_map.hpp"
#include "broker/topic_lsn_table.hpp"
#include "store/log.hpp"

namespace hato::broker {

class LsnSlots {
public:
    explicit LsnSlots(store::Log& log) : log_(log) {}

    // What apply() did to a retained topic's entry, for the replay's own
    // bookkeeping (the entry's aux), so it needs no second lookup.
    struct Touched {
        TopicLsnTable::Entry* retained = nullptr;   // retained_set: its topic's entry
        bool created = false;                        //   new with this record
        std::optional<uint32_t> cleared_aux;         // retained_clear: the removed entry's aux
    };

    // `at` is the record of `r` as the log holds it. A put makes it its
    // key's record (the one it replaces is dead); a removal kills the
    // records of what it removes, and is dead itself: it is needed only
    // while what it removes exists (see docs/durability.md).
    template <class R>
    Touched apply(const R& r, const store::RecordView& at);

    // Where the record holding a put's key is noted; null if nowhere.
    template <class R>
    const uint64_t* find(const R& r) { return slot<false>(r); }
    // The slot noting `rec` if it still holds its key's state (compaction),
    // and for a retained_set its topic's entry; null if dead.
    uint64_t* live_slot(const store::RecordView& rec, TopicLsnTable::Entry*& retained);
    // A queued message dropped without a record of it (an out_state whose
    // message is gone: nothing to deliver).
    // What it killed stays in the log with nothing after it to cancel it:
    // the session's removal, if one comes, must (SessionSlots::forgotten).
    void forget(const rec::OutDone& r) {
        Touched t;
        killed_up_to_ = 0;
        drop(r, t);
        if (SessionSlots* s = at<false>(sessions_, r.client)) s->forgotten = std::max(s->forgotten, killed_up_to_);
    }

    // Compacting a segment newer than the oldest (store::DeadRecord): a
    // dead removal goes when its key holds newer state, which supersedes
    // what it cancelled; is copied forward when its key holds nothing, as
    // older segments may still hold what it cancelled; and blocks when the
    // key holds newer state that does not supersede all it cancelled: a
    // session's removal (the session's other records), an out_done (the
    // key's state record: a session removed and created again numbers its
    // queue from 1 again). Dead puts go.
    store::DeadRecord dead_record(const store::RecordView& rec);

    uint64_t live_records() const;

    // Records this version cannot read (a type it does not know, or a body
    // that does not decode): written by a newer hato, before a downgrade.
    // Kept as they are and live, so that going back to that version loses
    // nothing; what they hold is not served meanwhile.
    void keep_unread(uint64_t lsn) { unread_.insert(lsn); }
    // Compaction copied the record live_slot() was last asked about, or
    // one of them: the copy holds its state from now on.
    void moved(uint64_t from, uint64_t to) {
        if (live_out_) remember(*live_out_, from);
        live_out_ = nullptr;
        if (!unread_.empty() && unread_.erase(from)) unread_.insert(to);
    }
    size_t unread_records() const { return unread_.size(); }

    // Topic -> its retained_set; each entry's key is the topic inside that
    // record in the log.
    TopicLsnTable& retained() { return retained_; }

private:
    struct OutSlots;
    OutSlots* live_out_ = nullptr;          // of live_slot's last answer, if a queued message's
    std::unordered_set<uint64_t> unread_;   // their LSNs
    uint64_t unread_slot_ = 0;              // live_slot's answer for one of them

    struct OutSlots {
        uint64_t enqueue = 0;
        uint64_t state = 0;
        // Its records superseded, or copied by compaction, that may still be
        // in the log (a compaction given up or cut short by a crash leaves
        // its source): its out_done must outlive them too. kUntracked once
        // more than fit: that out_done is then judged coarsely.
        std::array<uint64_t, 2> older{};
    };
    static constexpr uint64_t kUntracked = UINT64_MAX;
    // Notes that `lsn`, a record of `o`, was superseded or copied.
    void remember(OutSlots& o, uint64_t lsn);
    struct SessionSlots {
        uint64_t put = 0;
        StrMap<uint64_t> subs;                           // filter -> sub_put
        std::unordered_map<uint64_t, OutSlots> out;      // seq -> its records
        std::unordered_map<uint16_t, uint64_t> qos2_in;  // packet id -> qos2_in_put
        uint64_t forgotten = 0;   // the newest record forget() killed
    };

    // m's entry for `key`: created when kCreate, else null if absent.
    template <bool kCreate, class Map, class K>
    static typename Map::mapped_type* at(Map& m, const K& key) {
        if constexpr (kCreate) {
            return &find_or_emplace(m, key);
        } else {
            auto it = m.find(key);
            return it == m.end() ? nullptr : &it->second;
        }
    }

    // Each put's key: the slot noting its record.
    template <bool kCreate>
    uint64_t* slot(const rec::SessionPut& r) {
        SessionSlots* s = at<kCreate>(sessions_, r.client);
        return s ? &s->put : nullptr;
    }
    template <bool kCreate>
    uint64_t* slot(const rec::SubPut& r) {
        SessionSlots* s = at<kCreate>(sessions_, r.client);
        return s ? at<kCreate>(s->subs, r.filter) : nullptr;
    }
    // A queued message's slots (its out_enqueue and out_state).
    template <bool kCreate, class R>
    OutSlots* out_slots(const R& r) {
        SessionSlots* s = at<kCreate>(sessions_, r.client);
        return s ? at<kCreate>(s->out, r.seq) : nullptr;
    }
    template <bool kCreate>
    uint64_t* slot(const rec::OutEnqueue& r) {
        OutSlots* o = out_slots<kCreate>(r);
        return o ? &o->enqueue : nullptr;
    }
    template <bool kCreate>
    uint64_t* slot(const rec::OutStateSet& r) {
        OutSlots* o = out_slots<kCreate>(r);
        return o ? &o->state : nullptr;
    }
    template <bool kCreate>
    uint64_t* slot(const rec::Qos2InPut& r) {
        SessionSlots* s = at<kCreate>(sessions_, r.client);
        return s ? at<kCreate>(s->qos2_in, r.packet_id) : nullptr;
    }
    template <bool kCreate>
    uint64_t* slot(const rec::WillPut& r) { return at<kCreate>(wills_, r.client); }
    // The slot a put takes, created if new. A retained topic's entry refers
    // to its topic inside `at` from now on.
    template <class R>
    uint64_t& hold(const R& r, const store::RecordView&, Touched&) { return *slot<true>(r); }
    uint64_t& hold(const rec::OutEnqueue& r, const store::RecordView&, Touched&) {
        OutSlots& o = *out_slots<true>(r);
        remember(o, o.enqueue);
        return o.enqueue;
    }
    uint64_t& hold(const rec::OutStateSet& r, const store::RecordView&, Touched&) {
        OutSlots& o = *out_slots<true>(r);
        remember(o, o.state);
        return o.state;
    }
    uint64_t& hold(const rec::RetainedSet& r, const store::RecordView& at, Touched& t);

    // Each removal: kills and forgets the slots of what it removes.
    void drop(const rec::RetainedClear& r, Touched& t);
    void drop(const rec::SessionRemove& r, Touched&);
    void drop(const rec::SubRemove& r, Touched&) { erase_in(r.client, &SessionSlots::subs, r.filter); }
    void drop(const rec::OutDone& r, Touched&) { erase_in(r.client, &SessionSlots::out, r.seq); }
    void drop(const rec::Qos2InRemove& r, Touched&) { erase_in(r.client, &SessionSlots::qos2_in, r.packet_id); }
    void drop(const rec::WillRemove& r, Touched&) {
        if (auto it = wills_.find(r.client); it != wills_.end()) {
            kill(it->second);
            wills_.erase(it);
        }
    }

    // Whether a removal's key holds state now (dead_record).
    bool holds(const rec::RetainedClear& r) { return retained_.find(r.topic) != nullptr; }
    bool holds(const rec::SessionRemove& r) { return sessions_.find(r.client) != sessions_.end(); }
    bool holds(const rec::SubRemove& r) { return has_in(r.client, &SessionSlots::subs, r.filter); }
    bool holds(const rec::OutDone& r) { return has_in(r.client, &SessionSlots::out, r.seq); }
    bool holds(const rec::Qos2InRemove& r) { return has_in(r.client, &SessionSlots::qos2_in, r.packet_id); }
    bool holds(const rec::WillRemove& r) { return wills_.find(r.client) != wills_.end(); }

    template <class Map, class K>
    bool has_in(std::string_view client, Map SessionSlots::*member, const K& key) {
        SessionSlots* s = at<false>(sessions_, client);
        return s && (s->*member).find(key) != (s->*member).end();
    }
    template <class Map, class K>
    void erase_in(std::string_view client, Map SessionSlots::*member, const K& key) {
        SessionSlots* s = at<false>(sessions_, client);
        if (!s) return;
        Map& m = s->*member;
        if (auto it = m.find(key); it != m.end()) {
            kill(it->second);
            m.erase(it);
        }
    }
    // Marks the record(s) a slot notes dead, and clears it.
    void kill(uint64_t& slot) {
        if (slot) log_.mark_dead(slot);
        killed_up_to_ = std::max(killed_up_to_, slot);
        slot = 0;
    }
    void kill(OutSlots& o);
    void kill_slots(OutSlots& o) {
        kill(o.enqueue);
        kill(o.state);
    }
    void kill(SessionSlots& s);

    store::Log& log_;
    // The newest record the removal being applied killed, and of an
    // out_done every record of its message that may still be in the log
    // (none: not known, judged by killed_up_to_).
    uint64_t killed_up_to_ = 0;
    std::array<uint64_t, store::Log::kMaxExactCancels> killed_{};
    size_t killed_count_ = 0;
    TopicLsnTable retained_;
    StrMap<SessionSlots> sessions_;
    StrMap<uint64_t> wills_;   // client -> will_put: apart from its session (a clean one has none)
};

template <class R>
LsnSlots::Touched LsnSlots::apply(const R& r, const store::RecordView& at) {
    Touched t;
    if constexpr (R::kEffect == rec::Effect::Put) {
        uint64_t& slot = hold(r, at, t);
        kill(slot);
        slot = at.lsn;
    } else {
        killed_up_to_ = 0;
        killed_count_ = 0;
        drop(r, t);
        // Only an out_done knows every record it cancels (OutSlots::older);
        // the others are judged coarsely (Log::mark_removal).
        log_.mark_removal(at.lsn, killed_up_to_,
                          std::span(killed_.data(), std::is_same_v<R, rec::OutDone> ? killed_count_ : 0));
    }
    return t;
}

}  // namespace hato::broker
