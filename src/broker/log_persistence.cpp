#include "broker/log_persistence.hpp"

#include <algorithm>
#include <type_traits>

#include "broker/record_schema.hpp"
#include "broker/session_replay.hpp"
#include "store/frame.hpp"
#include "store/log_pages.hpp"

namespace hato::broker {

// ---- writing ---------------------------------------------------------------

Append LogPersistence::append(uint8_t type, bool exempt, uint64_t& lsn) {
    lsn = 0;
    const store::AppendError e =
        exempt || admitted_ ? log_.append_exempt(type, body_, lsn) : log_.append(type, body_, lsn);
    switch (e) {
    case store::AppendError::None:
        appended_since_maintenance_ += store::record_span(body_.size());
        return Append::stored(lsn);
    case store::AppendError::QuotaExceeded: return Append::refused(AppendStatus::QuotaExceeded);
    case store::AppendError::DiskFull: return Append::refused(AppendStatus::DiskFull);
    case store::AppendError::TooLarge: return Append::refused(AppendStatus::TooLarge);
    case store::AppendError::IoError: break;
    }
    return Append::refused(AppendStatus::IoError);
}

template <class R>
bool LogPersistence::draws_on_reserve(const R& r) {
    if constexpr (R::kReserve == rec::Reserve::IfStored) {
        const uint64_t* slot = slots_.find(r);
        return slot && *slot != 0;
    } else {
        return R::kReserve == rec::Reserve::Yes;
    }
}

template <class R>
Append LogPersistence::write(const R& r) {
    BodyWriter w(body_);
    r.encode(w);
    constexpr uint8_t type = static_cast<uint8_t>(R::kType);
    uint64_t lsn;
    const Append res = append(type, draws_on_reserve(r), lsn);
    // The record as the log now holds it: a retained topic's entry refers
    // to the topic inside it.
    if (res.ok()) (void)slots_.apply(r, store::RecordView{lsn, type, log_.last_body()});
    return res;
}

Append LogPersistence::retained_set(const StoredMessageView& m) { return write(rec::RetainedSet{.msg = m}); }

Append LogPersistence::retained_clear(std::string_view topic) { return write(rec::RetainedClear{.topic = topic}); }

Append LogPersistence::session_put(std::string_view client_id, uint32_t expiry_s,
                                   uint64_t offline_since_wall_ms, const SessionOwner& owner) {
    return write(rec::SessionPut{.client = client_id,
                                 .expiry_s = expiry_s,
                                 .offline_since_wall_ms = offline_since_wall_ms,
                                 .owner_source = static_cast<uint8_t>(owner.source),
                                 .username = owner.username});
}

Append LogPersistence::session_remove(std::string_view client_id) {
    return write(rec::SessionRemove{.client = client_id});
}

Append LogPersistence::sub_put(std::string_view client_id, std::string_view filter, uint8_t options,
                               uint32_t sub_id) {
    return write(rec::SubPut{.client = client_id, .filter = filter, .options = options, .sub_id = sub_id});
}

Append LogPersistence::sub_remove(std::string_view client_id, std::string_view filter) {
    return write(rec::SubRemove{.client = client_id, .filter = filter});
}

Append LogPersistence::out_enqueue(std::string_view client_id, uint64_t seq, const StoredMessageView& m) {
    rec::OutEnqueue r;
    r.client = client_id;
    r.seq = seq;
    r.msg = m;
    return write(r);
}

Append LogPersistence::out_state(std::string_view client_id, uint64_t seq, OutState st,
                                 uint16_t packet_id) {
    return write(rec::OutStateSet{
        .client = client_id, .seq = seq, .state = static_cast<uint8_t>(st), .packet_id = packet_id});
}

Append LogPersistence::out_done(std::string_view client_id, uint64_t seq) {
    const rec::OutDone done{.client = client_id, .seq = seq};
    const Append res = write(done);
    // Refused (a full disk without its reserve): the broker has let the
    // delivery go all the same. Its records are dead from here, so that
    // compaction does not copy them for ever and can free the space a
    // full store needs; only a crash before that brings them back.
    if (!res.ok()) slots_.forget(done);
    return res;
}

Append LogPersistence::qos2_in_put(std::string_view client_id, uint16_t packet_id, uint64_t digest) {
    return write(rec::Qos2InPut{.client = client_id, .packet_id = packet_id, .digest = digest});
}

Append LogPersistence::qos2_in_remove(std::string_view client_id, uint16_t packet_id) {
    return write(rec::Qos2InRemove{.client = client_id, .packet_id = packet_id});
}

Append LogPersistence::will_put(std::string_view client_id, const StoredMessageView& m, uint32_t delay_s,
                                std::optional<uint32_t> expiry_s, const SessionOwner& owner, int listener) {
    rec::WillPut r;
    r.client = client_id;
    r.delay_s = delay_s;
    r.has_expiry = expiry_s.has_value();
    r.expiry_s = expiry_s.value_or(0);
    r.owner_source = static_cast<uint8_t>(owner.source);
    r.username = owner.username;
    r.listener = listener;
    r.msg = m;
    return write(r);
}

Append LogPersistence::will_remove(std::string_view client_id) {
    return write(rec::WillRemove{.client = client_id});
}

bool LogPersistence::full() const { return log_.refusing(); }

bool LogPersistence::needs_room(uint64_t& bytes) const {
    if (!log_.out_of_space() || log_.wants_compaction()) return false;
    bytes = log_.segment_bytes() / 2;
    return true;
}

uint64_t LogPersistence::durable_ticket() const {
    return sync_ == store::SyncMode::Always ? log_.durable_lsn() : log_.last_lsn();
}

uint64_t LogPersistence::live_records() const { return slots_.live_records(); }

// ---- compaction ------------------------------------------------------------

void LogPersistence::maintenance(size_t budget, uint64_t min_bytes) {
    const uint64_t paced = std::min(kCompactionPace * appended_since_maintenance_, kMaxPacedBytes);
    appended_since_maintenance_ = 0;
    if (!log_.wants_compaction()) return;
    log_.compact_step(
        [this](const store::RecordView& rec) {
            compact_slot_ = slots_.live_slot(rec, compact_entry_);
            return compact_slot_ != nullptr;
        },
        // Always called right after live() said yes for the same record, and
        // right after the copy was appended: a retained topic's entry moves
        // its key to the copy before the old segment can go.
        [this](uint64_t old_lsn, uint64_t new_lsn) {
            if (compact_slot_) *compact_slot_ = new_lsn;
            slots_.moved(old_lsn, new_lsn);
            if (compact_entry_) {
                slots_.retained().rekey(*compact_entry_, log_.last_body().data());
                if (retained_moved_) retained_moved_(log_.last_body().data());
            }
            compact_slot_ = nullptr;
            compact_entry_ = nullptr;
        },
        budget, std::max(min_bytes, paced),
        [this](const store::RecordView& rec) { return slots_.dead_record(rec); });
}

// ---- recovery --------------------------------------------------------------

// What load() rebuilds: the sessions, and the retained topics' records.
// Each record's effect on it is a restore() overload: the retained ones
// here (they keep views into the log until the hand-over), the sessions'
// in SessionReplay.
struct LogPersistence::Replay {
    // The body of each topic's current retained_set (a view into the log,
    // decoded only once the replay is over), in first-set order; each
    // topic's TopicLsnTable entry holds its index here (aux).
    std::vector<std::span<const uint8_t>> retained;
    std::vector<uint8_t> retained_live;
    size_t retained_cleared = 0;
    SessionReplay sessions;

    void restore(rec::RetainedSet&, const store::RecordView& rec, const LsnSlots::Touched& t) {
        if (t.created) {
            t.retained->aux = static_cast<uint32_t>(retained.size());
            retained.push_back(rec.body);
            retained_live.push_back(1);
        } else {
            retained[t.retained->aux] = rec.body;
        }
    }
    void restore(rec::RetainedClear&, const store::RecordView&, const LsnSlots::Touched& t) {
        if (!t.cleared_aux) return;
        retained_live[*t.cleared_aux] = 0;
        retained[*t.cleared_aux] = {};
        ++retained_cleared;
    }
    // Apart from the sessions: a clean session's client has a will too.
    StrMap<RecoveredWill> wills;
    void restore(rec::WillPut& r, const store::RecordView&, const LsnSlots::Touched&) {
        RecoveredWill& w = find_or_emplace(wills, r.client);
        w.client_id.assign(r.client);
        w.msg = r.msg.owned();
        w.delay_s = r.delay_s;
        w.expiry_s = r.has_expiry ? std::optional<uint32_t>(r.expiry_s) : std::nullopt;
        w.owner_source = r.owner();
        w.username.assign(r.username);
        w.listener = r.listener;
    }
    void restore(rec::WillRemove& r, const store::RecordView&, const LsnSlots::Touched&) {
        if (auto it = wills.find(r.client); it != wills.end()) wills.erase(it);
    }
    template <class R>
    void restore(R& r, const store::RecordView&, const LsnSlots::Touched&) {
        sessions.restore(r);
    }
};

void LogPersistence::replay_record(const store::RecordView& rec, Replay& st) {
    bool applied = false;
    rec::visit(rec.type, [&](auto& r) {
        BodyReader in(rec.body);
        if (!rec::decode(r, in)) return;
        const LsnSlots::Touched t = slots_.apply(r, rec);
        st.restore(r, rec, t);
        applied = true;
    });
    if (!applied) slots_.keep_unread(rec.lsn);
}

void LogPersistence::hand_over_retained(Replay& st, RecoveredState& out) {
    // Keep the live entries only, in first-set order.
    if (st.retained_cleared) {
        size_t kept = 0;
        for (size_t i = 0; i < st.retained.size(); ++i)
            if (st.retained_live[i]) st.retained[kept++] = st.retained[i];
        st.retained.resize(kept);
    }
    std::vector<uint8_t>().swap(st.retained_live);
    const size_t n = st.retained.size();
    RetainedSink* sink = out.retained_sink;
    if (sink) sink->expect(n);
    else out.retained.reserve(out.retained.size() + n);
    // The sink hears of each topic kAhead messages before it gets it, so it
    // can prefetch what the insert will touch (RetainedSink::prefetch).
    constexpr size_t kAhead = 8;
    auto hint = [&](size_t i) {
        BodyReader r(st.retained[i]);
        sink->prefetch(r.str());
    };
    if (sink)
        for (size_t i = 0; i < kAhead && i < n; ++i) hint(i);
    for (size_t i = 0; i < n; ++i) {
        if (sink && i + kAhead < n) hint(i + kAhead);
        BodyReader r(st.retained[i]);
        rec::RetainedSet m;
        (void)rec::decode(m, r);   // checked when it was replayed
        if (sink) sink->add_stored(m.msg, st.retained[i].data());   // served from the mapping
        else out.retained.push_back(m.msg.owned());
    }
}

void LogPersistence::load(RecoveredState& out) {
    Replay st;
    // A first pass over the headers only (cheap, sequential) sizes the
    // retained containers, so a million topics cost no rehashing.
    constexpr uint8_t kRetainedSet = static_cast<uint8_t>(StateRecord::RetainedSet);
    size_t retained_sets = 0;
    log_.replay([&](const store::RecordView& rec) { retained_sets += rec.type == kRetainedSet; });
    slots_.retained().reserve(retained_sets);
    st.retained.reserve(retained_sets);
    st.retained_live.reserve(retained_sets);
    // The replay runs kAhead records behind the log: a retained_set's table
    // slot is prefetched when the record is read and used kAhead records
    // later, so the cache misses of consecutive topics overlap instead of
    // queueing. Records are still applied strictly in log order.
    constexpr size_t kAhead = 8;
    store::RecordView window[kAhead];
    size_t seen = 0;
    log_.replay([&](const store::RecordView& rec) {
        if (rec.type == kRetainedSet) {
            BodyReader r(rec.body);
            rec::RetainedSet key;
            key.read_key(r);
            if (r.ok()) slots_.retained().prefetch(key.msg.topic);
        }
        store::RecordView& slot = window[seen++ % kAhead];
        if (seen > kAhead) replay_record(slot, st);
        slot = rec;
    });
    for (size_t i = seen > kAhead ? seen - kAhead : 0; i < seen; ++i) replay_record(window[i % kAhead], st);

    hand_over_retained(st, out);
    st.sessions.hand_over(out.sessions, slots_);
    out.wills.clear();
    for (auto& [client, w] : st.wills) out.wills.push_back(std::move(w));
    // Everything is read; what is served later is faulted in when it is.
    store::release_resident_pages(log_);
}

}  // namespace hato::broker
