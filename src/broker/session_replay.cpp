#include "broker/session_replay.hpp"

#include <algorithm>

namespace hato::broker {

void SessionReplay::restore(rec::SessionPut& r) {
    Session& s = find_or_emplace(sessions_, r.client);
    s.has_put = true;
    s.expiry_s = r.expiry_s;
    s.offline_since = r.offline_since_wall_ms;
    s.owner_source = r.owner();
    s.username.assign(r.username);
}

void SessionReplay::restore(rec::SubPut& r) {
    RecoveredSub sub;
    sub.filter.assign(r.filter);
    sub.options = r.options;
    sub.sub_id = r.sub_id;
    find_or_emplace(sessions_, r.client).subs.insert_or_assign(sub.filter, std::move(sub));
}

void SessionReplay::restore(rec::SubRemove& r) {
    if (Session* s = find(r.client))
        if (auto it = s->subs.find(r.filter); it != s->subs.end()) s->subs.erase(it);
}

void SessionReplay::restore(rec::OutEnqueue& r) {
    Session& s = find_or_emplace(sessions_, r.client);
    s.last_seq = std::max(s.last_seq, r.seq);
    Out& o = s.out[r.seq];
    o.out.seq = r.seq;
    o.has_msg = true;
    o.out.msg = r.msg.owned();
    o.out.msg.sub_ids = std::move(r.sub_ids);
}

void SessionReplay::restore(rec::OutStateSet& r) {
    Session& s = find_or_emplace(sessions_, r.client);
    s.last_seq = std::max(s.last_seq, r.seq);
    Out& o = s.out[r.seq];
    o.out.seq = r.seq;
    o.out.state = static_cast<OutState>(r.state);
    o.out.packet_id = r.packet_id;
}

void SessionReplay::restore(rec::OutDone& r) {
    if (Session* s = find(r.client)) {
        s->out.erase(r.seq);
        s->last_seq = std::max(s->last_seq, r.seq);
    }
}

void SessionReplay::restore(rec::Qos2InRemove& r) {
    if (Session* s = find(r.client)) s->qos2_in.erase(r.packet_id);
}

void SessionReplay::hand_over(std::vector<RecoveredSession>& out, LsnSlots& slots) {
    out.clear();
    out.reserve(sessions_.size());
    for (auto& [id, rs] : sessions_) {
        // State records of a message that is gone: nothing to deliver.
        std::erase_if(rs.out, [&](const auto& entry) {
            if (entry.second.has_msg) return false;
            slots.forget(rec::OutDone{.client = id, .seq = entry.first});
            return true;
        });
        // Touched but never written as a session, and holding nothing.
        if (!rs.has_put && rs.subs.empty() && rs.out.empty() && rs.qos2_in.empty()) continue;
        RecoveredSession s;
        s.client_id = id;
        s.expiry_s = rs.expiry_s;
        s.offline_since_wall_ms = rs.offline_since;
        s.owner_source = rs.owner_source;
        s.username = std::move(rs.username);
        s.next_seq = rs.last_seq + 1;
        for (auto& [filter, sub] : rs.subs) s.subs.push_back(std::move(sub));
        for (auto& [seq, o] : rs.out) s.out.push_back(std::move(o.out));
        std::sort(s.out.begin(), s.out.end(),
                  [](const RecoveredOut& a, const RecoveredOut& b) { return a.seq < b.seq; });
        for (auto [id, digest] : rs.qos2_in) s.qos2_in.push_back({id, digest});
        std::sort(s.qos2_in.begin(), s.qos2_in.end(),
                  [](const InboundQos2& a, const InboundQos2& b) { return a.packet_id < b.packet_id; });
        out.push_back(std::move(s));
    }
}

}  // namespace hato::broker
