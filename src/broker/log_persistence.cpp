#include "broker/log_persistence.hpp"

#include <algorithm>
#include <unordered_set>

#include "broker/state_records.hpp"
#include "store/frame.hpp"
#include "store/log_pages.hpp"

namespace hato::broker {

namespace {

void write_message(BodyWriter& w, const StoredMessageView& m) {
    w.str(m.topic);
    w.bytes(m.payload);
    w.bytes(m.forwarded_props);
    w.u8(m.qos);
    w.u8(m.retain ? 1 : 0);
    w.u64(m.expiry_wall_ms);
}

// A stored message's fields as views into the record (check r.ok()).
StoredMessageView read_message(BodyReader& r) {
    StoredMessageView m;
    m.topic = r.str();
    m.payload = r.bytes();
    m.forwarded_props = r.bytes();
    m.qos = r.u8();
    m.retain = r.u8() != 0;
    m.expiry_wall_ms = r.u64();
    return m;
}

// What a queued delivery carries besides the message (out_enqueue extension).
// Left out when both are empty (most deliveries): the short form loads the
// same, and the hot path writes no extra bytes.
void write_delivery_ext(BodyWriter& w, const StoredMessageView& m) {
    if (m.sub_ids.empty() && m.share_filter.empty()) return;
    w.u8(kExtensionV1);
    w.u32(static_cast<uint32_t>(m.sub_ids.size()));
    for (uint32_t id : m.sub_ids) w.u32(id);
    w.str(m.share_filter);
}

// Into `m`; a body without the extension (older format) leaves it as it is.
void read_delivery_ext(BodyReader& r, StoredMessage& m) {
    if (r.at_end() || r.u8() < kExtensionV1) return;
    const uint32_t n = r.u32();
    for (uint32_t i = 0; i < n && r.ok(); ++i) m.sub_ids.push_back(r.u32());
    m.share_filter.assign(r.str());
}

// A source this version does not know (written by a newer one) is judged by
// the user name alone, never as Unknown: Unknown would let any client claim
// the session and skip the ACL check of its queue.
OwnerSource owner_source_from(uint8_t v, std::string_view username) {
    if (v <= static_cast<uint8_t>(OwnerSource::Certificate)) return static_cast<OwnerSource>(v);
    return username.empty() ? OwnerSource::Anonymous : OwnerSource::Password;
}

uint8_t tag(StateRecord t) { return static_cast<uint8_t>(t); }

}  // namespace

// What load() rebuilds; merged per key so that record order within a key
// does not matter (compaction moves live records behind newer ones).
struct LogPersistence::Replay {
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
        std::unordered_set<uint16_t> qos2_in;
    };
    // The body of each topic's current retained_set (a view into the log,
    // decoded only once the replay is over), in first-set order; retained_
    // maps the topic to its index here.
    std::vector<std::span<const uint8_t>> retained;
    std::vector<uint8_t> retained_live;
    size_t retained_cleared = 0;
    StrMap<Session> sessions;

    Session& session(std::string_view id) {
        auto it = sessions.find(id);
        if (it == sessions.end()) it = sessions.emplace(std::string(id), Session{}).first;
        return it->second;
    }
};

// ---- writing ---------------------------------------------------------------

Append LogPersistence::append(uint8_t type, bool removal, uint64_t& lsn) {
    lsn = 0;
    const store::AppendError e =
        removal ? log_.append_exempt(type, body_, lsn) : log_.append(type, body_, lsn);
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

void LogPersistence::kill(uint64_t& slot) {
    if (slot) log_.mark_dead(slot);
    slot = 0;
}

void LogPersistence::kill_session(SessionSlots& s) {
    kill(s.put);
    for (auto& [filter, lsn] : s.subs) kill(lsn);
    for (auto& [seq, o] : s.out) {
        kill(o.enqueue);
        kill(o.state);
    }
    for (auto& [id, lsn] : s.qos2_in) kill(lsn);
}

LogPersistence::SessionSlots& LogPersistence::session(std::string_view client_id) {
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) it = sessions_.emplace(std::string(client_id), SessionSlots{}).first;
    return it->second;
}

uint64_t& LogPersistence::sub_slot(std::string_view client_id, std::string_view filter) {
    auto& subs = session(client_id).subs;
    auto it = subs.find(filter);
    if (it == subs.end()) it = subs.emplace(std::string(filter), 0).first;
    return it->second;
}

void LogPersistence::remove_session(std::string_view client_id) {
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
        kill_session(it->second);
        sessions_.erase(it);
    }
}

void LogPersistence::remove_sub(std::string_view client_id, std::string_view filter) {
    if (auto s = sessions_.find(client_id); s != sessions_.end())
        if (auto it = s->second.subs.find(filter); it != s->second.subs.end()) {
            kill(it->second);
            s->second.subs.erase(it);
        }
}

void LogPersistence::remove_out(std::string_view client_id, uint64_t seq) {
    if (auto s = sessions_.find(client_id); s != sessions_.end())
        if (auto it = s->second.out.find(seq); it != s->second.out.end()) {
            kill(it->second.enqueue);
            kill(it->second.state);
            s->second.out.erase(it);
        }
}

void LogPersistence::remove_qos2_in(std::string_view client_id, uint16_t packet_id) {
    if (auto s = sessions_.find(client_id); s != sessions_.end())
        if (auto it = s->second.qos2_in.find(packet_id); it != s->second.qos2_in.end()) {
            kill(it->second);
            s->second.qos2_in.erase(it);
        }
}

Append LogPersistence::retained_set(const StoredMessageView& m) {
    BodyWriter w(body_);
    write_message(w, m);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::RetainedSet), false, lsn);
    if (lsn) {
        // The entry keeps referring to its topic inside the record just written.
        bool created;
        TopicLsnTable::Entry& e = retained_.get(m.topic, log_.last_body().data(), created);
        put(e.lsn, lsn);
    }
    return res;
}

Append LogPersistence::retained_clear(std::string_view topic) {
    BodyWriter w(body_);
    w.str(topic);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::RetainedClear), true, lsn);
    if (lsn) {
        if (TopicLsnTable::Entry e; retained_.take(topic, e)) kill(e.lsn);
        log_.mark_dead(lsn);  // a removal is needed only while what it removes exists
    }
    return res;
}

Append LogPersistence::session_put(std::string_view client_id, uint32_t expiry_s,
                                   uint64_t offline_since_wall_ms, const SessionOwner& owner) {
    BodyWriter w(body_);
    w.str(client_id);
    w.u32(expiry_s);
    w.u64(offline_since_wall_ms);
    w.u8(kExtensionV1);
    w.u8(static_cast<uint8_t>(owner.source));
    w.str(owner.username);
    // Updating a session that is already stored draws on the reserve: after a
    // restart on a full store, its client must get in to drain its queue.
    const auto known = sessions_.find(client_id);
    const bool update = known != sessions_.end() && known->second.put != 0;
    uint64_t lsn;
    const Append res = append(tag(StateRecord::SessionPut), update, lsn);
    if (lsn) put(session(client_id).put, lsn);
    return res;
}

Append LogPersistence::session_remove(std::string_view client_id) {
    BodyWriter w(body_);
    w.str(client_id);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::SessionRemove), true, lsn);
    if (lsn) {
        remove_session(client_id);
        log_.mark_dead(lsn);
    }
    return res;
}

Append LogPersistence::sub_put(std::string_view client_id, std::string_view filter, uint8_t options,
                               uint32_t sub_id) {
    BodyWriter w(body_);
    w.str(client_id);
    w.str(filter);
    w.u8(options);
    w.u32(sub_id);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::SubPut), false, lsn);
    if (lsn) put(sub_slot(client_id, filter), lsn);
    return res;
}

Append LogPersistence::sub_remove(std::string_view client_id, std::string_view filter) {
    BodyWriter w(body_);
    w.str(client_id);
    w.str(filter);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::SubRemove), true, lsn);
    if (lsn) {
        remove_sub(client_id, filter);
        log_.mark_dead(lsn);
    }
    return res;
}

Append LogPersistence::out_enqueue(std::string_view client_id, uint64_t seq, const StoredMessageView& m) {
    BodyWriter w(body_);
    w.str(client_id);
    w.u64(seq);
    write_message(w, m);
    write_delivery_ext(w, m);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::OutEnqueue), false, lsn);
    if (lsn) put(session(client_id).out[seq].enqueue, lsn);
    return res;
}

Append LogPersistence::out_state(std::string_view client_id, uint64_t seq, OutState st,
                                 uint16_t packet_id) {
    BodyWriter w(body_);
    w.str(client_id);
    w.u64(seq);
    w.u8(static_cast<uint8_t>(st));
    w.u16(packet_id);
    // Exempt from the quota: it belongs to a message already stored, and
    // refusing it would stall a delivery in flight.
    uint64_t lsn;
    const Append res = append(tag(StateRecord::OutState), true, lsn);
    if (lsn) put(session(client_id).out[seq].state, lsn);
    return res;
}

Append LogPersistence::out_done(std::string_view client_id, uint64_t seq) {
    BodyWriter w(body_);
    w.str(client_id);
    w.u64(seq);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::OutDone), true, lsn);
    if (lsn) {
        remove_out(client_id, seq);
        log_.mark_dead(lsn);
    }
    return res;
}

Append LogPersistence::qos2_in_put(std::string_view client_id, uint16_t packet_id) {
    BodyWriter w(body_);
    w.str(client_id);
    w.u16(packet_id);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::Qos2InPut), false, lsn);
    if (lsn) put(session(client_id).qos2_in[packet_id], lsn);
    return res;
}

Append LogPersistence::qos2_in_remove(std::string_view client_id, uint16_t packet_id) {
    BodyWriter w(body_);
    w.str(client_id);
    w.u16(packet_id);
    uint64_t lsn;
    const Append res = append(tag(StateRecord::Qos2InRemove), true, lsn);
    if (lsn) {
        remove_qos2_in(client_id, packet_id);
        log_.mark_dead(lsn);
    }
    return res;
}

bool LogPersistence::full() const { return log_.refusing(); }

uint64_t LogPersistence::durable_ticket() const {
    return sync_ == store::SyncMode::Always ? log_.durable_lsn() : log_.last_lsn();
}

uint64_t LogPersistence::live_records() const {
    uint64_t n = retained_.size();  // every entry holds a live retained_set
    for (const auto& [id, s] : sessions_) {
        n += (s.put != 0) + s.subs.size() + s.qos2_in.size();
        for (const auto& [seq, o] : s.out) n += (o.enqueue != 0) + (o.state != 0);
    }
    return n;
}

// ---- compaction ------------------------------------------------------------

uint64_t* LogPersistence::slot_of(const store::RecordView& rec, TopicLsnTable::Entry** retained_entry) {
    BodyReader r(rec.body);
    auto session_of = [&]() -> SessionSlots* {
        auto it = sessions_.find(r.str());
        return it == sessions_.end() ? nullptr : &it->second;
    };
    switch (static_cast<StateRecord>(rec.type)) {
        case StateRecord::RetainedSet: {
            TopicLsnTable::Entry* e = retained_.find(r.str());
            if (retained_entry) *retained_entry = e;
            return e ? &e->lsn : nullptr;
        }
        case StateRecord::SessionPut: {
            SessionSlots* s = session_of();
            return s ? &s->put : nullptr;
        }
        case StateRecord::SubPut: {
            SessionSlots* s = session_of();
            if (!s) return nullptr;
            auto it = s->subs.find(r.str());
            return it == s->subs.end() ? nullptr : &it->second;
        }
        case StateRecord::OutEnqueue:
        case StateRecord::OutState: {
            SessionSlots* s = session_of();
            if (!s) return nullptr;
            auto it = s->out.find(r.u64());
            if (it == s->out.end()) return nullptr;
            return rec.type == tag(StateRecord::OutEnqueue) ? &it->second.enqueue : &it->second.state;
        }
        case StateRecord::Qos2InPut: {
            SessionSlots* s = session_of();
            if (!s) return nullptr;
            auto it = s->qos2_in.find(r.u16());
            return it == s->qos2_in.end() ? nullptr : &it->second;
        }
        default: return nullptr;  // removals are never live (see docs/durability.md)
    }
}

void LogPersistence::maintenance(size_t budget, uint64_t min_bytes) {
    const uint64_t paced = std::min(kCompactionPace * appended_since_maintenance_, kMaxPacedBytes);
    appended_since_maintenance_ = 0;
    if (!log_.wants_compaction()) return;
    log_.compact_step(
        [this](const store::RecordView& rec) {
            TopicLsnTable::Entry* entry = nullptr;
            uint64_t* slot = slot_of(rec, &entry);
            compact_slot_ = slot && *slot == rec.lsn ? slot : nullptr;
            compact_entry_ = compact_slot_ ? entry : nullptr;
            return compact_slot_ != nullptr;
        },
        // Always called right after live() said yes for the same record, and
        // right after the copy was appended: a retained topic's entry moves
        // its key to the copy before the old segment can go.
        [this](uint64_t, uint64_t new_lsn) {
            if (compact_slot_) *compact_slot_ = new_lsn;
            if (compact_entry_) {
                retained_.rekey(*compact_entry_, log_.last_body().data());
                if (retained_moved_) retained_moved_(log_.last_body().data());
            }
            compact_slot_ = nullptr;
            compact_entry_ = nullptr;
        },
        budget, std::max(min_bytes, paced));
}

// ---- recovery --------------------------------------------------------------

void LogPersistence::replay_record(const store::RecordView& rec, Replay& st) {
    BodyReader r(rec.body);
    const uint64_t lsn = rec.lsn;
    // Decoding happens into locals first; a malformed body changes nothing.
    switch (static_cast<StateRecord>(rec.type)) {
        case StateRecord::RetainedSet: {
            const StoredMessageView f = read_message(r);
            if (!r.ok()) break;
            // The entry refers to the topic inside this record from now on.
            bool created;
            TopicLsnTable::Entry& e = retained_.get(f.topic, rec.body.data(), created);
            put(e.lsn, lsn);
            if (created) {
                e.aux = static_cast<uint32_t>(st.retained.size());
                st.retained.push_back(rec.body);
                st.retained_live.push_back(1);
            } else {
                st.retained[e.aux] = rec.body;
            }
            return;
        }
        case StateRecord::RetainedClear: {
            const std::string_view topic = r.str();
            if (!r.ok()) break;
            if (TopicLsnTable::Entry e; retained_.take(topic, e)) {
                kill(e.lsn);
                st.retained_live[e.aux] = 0;
                st.retained[e.aux] = {};
                ++st.retained_cleared;
            }
            break;  // dead itself
        }
        case StateRecord::SessionPut: {
            const std::string_view id = r.str();
            const uint32_t expiry = r.u32();
            const uint64_t offline = r.u64();
            uint8_t owner = 0;
            std::string_view username;
            if (!r.at_end() && r.u8() >= kExtensionV1) {
                owner = r.u8();
                username = r.str();
            }
            if (!r.ok()) break;
            put(session(id).put, lsn);
            Replay::Session& rs = st.session(id);
            rs.has_put = true;
            rs.expiry_s = expiry;
            rs.offline_since = offline;
            rs.owner_source = owner_source_from(owner, username);
            rs.username.assign(username);
            return;
        }
        case StateRecord::SessionRemove: {
            const std::string_view id = r.str();
            if (!r.ok()) break;
            remove_session(id);
            if (auto it = st.sessions.find(id); it != st.sessions.end()) st.sessions.erase(it);
            break;
        }
        case StateRecord::SubPut: {
            const std::string_view id = r.str();
            const std::string_view filter = r.str();
            RecoveredSub sub;
            sub.options = r.u8();
            sub.sub_id = r.u32();
            if (!r.ok()) break;
            sub.filter.assign(filter);
            put(sub_slot(id, filter), lsn);
            st.session(id).subs.insert_or_assign(sub.filter, std::move(sub));
            return;
        }
        case StateRecord::SubRemove: {
            const std::string_view id = r.str();
            const std::string_view filter = r.str();
            if (!r.ok()) break;
            remove_sub(id, filter);
            if (auto s = st.sessions.find(id); s != st.sessions.end())
                if (auto it = s->second.subs.find(filter); it != s->second.subs.end())
                    s->second.subs.erase(it);
            break;
        }
        case StateRecord::OutEnqueue:
        case StateRecord::OutState: {
            const std::string_view id = r.str();
            const uint64_t seq = r.u64();
            const bool enqueue = rec.type == tag(StateRecord::OutEnqueue);
            StoredMessageView m;
            StoredMessage ext;   // the delivery extension's fields
            uint8_t state = 0;
            uint16_t packet_id = 0;
            if (enqueue) {
                m = read_message(r);
                if (r.ok()) read_delivery_ext(r, ext);
            } else {
                state = r.u8();
                packet_id = r.u16();
            }
            if (!r.ok() || state > static_cast<uint8_t>(OutState::Pubrel)) break;
            OutSlots& slots = session(id).out[seq];
            put(enqueue ? slots.enqueue : slots.state, lsn);
            Replay::Out& o = st.session(id).out[seq];
            o.out.seq = seq;
            if (enqueue) {
                o.has_msg = true;
                o.out.msg = m.owned();
                o.out.msg.sub_ids = std::move(ext.sub_ids);
                o.out.msg.share_filter = std::move(ext.share_filter);
            } else {
                o.out.state = static_cast<OutState>(state);
                o.out.packet_id = packet_id;
            }
            return;
        }
        case StateRecord::OutDone: {
            const std::string_view id = r.str();
            const uint64_t seq = r.u64();
            if (!r.ok()) break;
            remove_out(id, seq);
            if (auto s = st.sessions.find(id); s != st.sessions.end()) s->second.out.erase(seq);
            break;
        }
        case StateRecord::Qos2InPut: {
            const std::string_view id = r.str();
            const uint16_t packet_id = r.u16();
            if (!r.ok()) break;
            put(session(id).qos2_in[packet_id], lsn);
            st.session(id).qos2_in.insert(packet_id);
            return;
        }
        case StateRecord::Qos2InRemove: {
            const std::string_view id = r.str();
            const uint16_t packet_id = r.u16();
            if (!r.ok()) break;
            remove_qos2_in(id, packet_id);
            if (auto s = st.sessions.find(id); s != st.sessions.end()) s->second.qos2_in.erase(packet_id);
            break;
        }
    }
    // Removals, and records that could not be decoded: nothing live here.
    log_.mark_dead(lsn);
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
        const StoredMessageView m = read_message(r);   // checked when it was replayed
        if (sink) sink->add_stored(m, st.retained[i].data());   // served from the mapping
        else out.retained.push_back(m.owned());
    }
}

void LogPersistence::load(RecoveredState& out) {
    Replay st;
    // A first pass over the headers only (cheap, sequential) sizes the
    // retained containers, so a million topics cost no rehashing.
    size_t retained_sets = 0;
    log_.replay([&](const store::RecordView& rec) {
        retained_sets += rec.type == tag(StateRecord::RetainedSet);
    });
    retained_.reserve(retained_sets);
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
        if (rec.type == tag(StateRecord::RetainedSet)) {
            BodyReader r(rec.body);
            const std::string_view topic = r.str();
            if (r.ok()) retained_.prefetch(topic);
        }
        store::RecordView& slot = window[seen++ % kAhead];
        if (seen > kAhead) replay_record(slot, st);
        slot = rec;
    });
    for (size_t i = seen > kAhead ? seen - kAhead : 0; i < seen; ++i) replay_record(window[i % kAhead], st);

    hand_over_retained(st, out);
    // Everything is read; what is served later is faulted in when it is.
    store::release_resident_pages(log_);

    out.sessions.clear();
    out.sessions.reserve(st.sessions.size());
    for (auto& [id, rs] : st.sessions) {
        // Touched but never written as a session, and holding nothing.
        if (!rs.has_put && rs.subs.empty() && rs.out.empty() && rs.qos2_in.empty()) continue;
        RecoveredSession s;
        s.client_id = id;
        s.expiry_s = rs.expiry_s;
        s.offline_since_wall_ms = rs.offline_since;
        s.owner_source = rs.owner_source;
        s.username = std::move(rs.username);
        for (auto& [filter, sub] : rs.subs) s.subs.push_back(std::move(sub));
        SessionSlots& slots = sessions_.find(id)->second;
        for (auto& [seq, o] : rs.out) {
            if (!o.has_msg) {
                // A state update whose message is gone (never happens with a
                // well-behaved writer): nothing to deliver, so drop it.
                OutSlots& os = slots.out[seq];
                kill(os.state);
                slots.out.erase(seq);
                continue;
            }
            s.out.push_back(std::move(o.out));
        }
        std::sort(s.out.begin(), s.out.end(),
                  [](const RecoveredOut& a, const RecoveredOut& b) { return a.seq < b.seq; });
        s.qos2_in.assign(rs.qos2_in.begin(), rs.qos2_in.end());
        std::sort(s.qos2_in.begin(), s.qos2_in.end());
        out.sessions.push_back(std::move(s));
    }
}

}  // namespace hato::broker
