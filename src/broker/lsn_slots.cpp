#include "broker/lsn_slots.hpp"

#include <type_traits>

namespace hato::broker {

uint64_t& LsnSlots::hold(const rec::RetainedSet& r, const store::RecordView& at, Touched& t) {
    TopicLsnTable::Entry& e = retained_.get(r.msg.topic, at.body.data(), t.created);
    t.retained = &e;
    return e.lsn;
}

void LsnSlots::drop(const rec::RetainedClear& r, Touched& t) {
    if (TopicLsnTable::Entry e; retained_.take(r.topic, e)) {
        kill(e.lsn);
        t.cleared_aux = e.aux;
    }
}

void LsnSlots::drop(const rec::SessionRemove& r, Touched&) {
    if (auto it = sessions_.find(r.client); it != sessions_.end()) {
        kill(it->second);
        sessions_.erase(it);
    }
}

void LsnSlots::kill(SessionSlots& s) {
    killed_up_to_ = std::max(killed_up_to_, s.forgotten);
    kill(s.put);
    for (auto& [filter, lsn] : s.subs) kill(lsn);
    for (auto& [seq, o] : s.out) kill(o);
    for (auto& [id, lsn] : s.qos2_in) kill(lsn);
}

void LsnSlots::remember(OutSlots& o, uint64_t lsn) {
    if (!lsn || o.older[0] == kUntracked) return;
    for (uint64_t& older : o.older)
        if (!older || !log_.may_hold(older)) {
            older = lsn;
            return;
        }
    o.older = {kUntracked, 0};
}

void LsnSlots::kill(OutSlots& o) {
    killed_count_ = 0;
    if (o.older[0] != kUntracked)
        for (uint64_t lsn : {o.enqueue, o.state, o.older[0], o.older[1]})
            if (lsn && log_.may_hold(lsn)) killed_[killed_count_++] = lsn;
    kill_slots(o);
}

uint64_t* LsnSlots::live_slot(const store::RecordView& rec, TopicLsnTable::Entry*& retained) {
    uint64_t* found = nullptr;
    retained = nullptr;
    live_out_ = nullptr;
    if (!unread_.empty() && unread_.count(rec.lsn)) {
        unread_slot_ = rec.lsn;
        return &unread_slot_;
    }
    rec::visit(rec.type, [&](auto& r) {
        using R = std::remove_reference_t<decltype(r)>;
        if constexpr (R::kEffect == rec::Effect::Put) {   // removals are never live
            BodyReader in(rec.body);
            r.read_key(in);
            if constexpr (std::is_same_v<R, rec::RetainedSet>) {
                retained = retained_.find(r.msg.topic);
                found = retained ? &retained->lsn : nullptr;
            } else if constexpr (std::is_same_v<R, rec::OutEnqueue> || std::is_same_v<R, rec::OutStateSet>) {
                live_out_ = out_slots<false>(r);
                if (live_out_) found = std::is_same_v<R, rec::OutEnqueue> ? &live_out_->enqueue : &live_out_->state;
            } else {
                found = slot<false>(r);
            }
        }
    });
    if (found && *found == rec.lsn) return found;
    retained = nullptr;
    live_out_ = nullptr;
    return nullptr;
}

store::DeadRecord LsnSlots::dead_record(const store::RecordView& rec) {
    store::DeadRecord fate = store::DeadRecord::Drop;
    rec::visit(rec.type, [&](auto& r) {
        using R = std::remove_reference_t<decltype(r)>;
        if constexpr (R::kEffect == rec::Effect::Remove) {
            BodyReader in(rec.body);
            if (!rec::decode(r, in)) return;   // never applied: cancels nothing
            if (!holds(r)) fate = store::DeadRecord::CopyForward;
            else if constexpr (std::is_same_v<R, rec::SessionRemove> || std::is_same_v<R, rec::OutDone>)
                fate = store::DeadRecord::Blocked;
        }
    });
    return fate;
}

uint64_t LsnSlots::live_records() const {
    // every entry holds a live retained_set, and every will one will_put
    uint64_t n = retained_.size() + unread_.size() + wills_.size();
    for (const auto& [id, s] : sessions_) {
        n += (s.put != 0) + s.subs.size() + s.qos2_in.size();
        for (const auto& [seq, o] : s.out) n += (o.enqueue != 0) + (o.state != 0);
    }
    return n;
}

}  // namespace hato::broker
