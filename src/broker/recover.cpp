// Rebuilds retained messages and offline sessions (subscriptions, queued and
// in-flight messages, inbound QoS 2 state) from Persistence at start.
#include <algorithm>

#include "broker/broker_impl.hpp"

namespace hato::broker {

void Broker::Impl::recover() {
    RecoveredState state;
    persist.load(state);
    const uint64_t wall = wall_ms();

    // One allocation for the whole table instead of ~20 rehashes on the way
    // to a million retained messages.
    retained.reserve(retained.size() + state.retained.size());
    for (StoredMessage& sm : state.retained) {
        MsgPtr m = from_stored(std::move(sm), now_ms, wall);
        if (!m) continue;   // expired while we were down
        RetainedIndex::Handle h = next_retained_handle++, old = 0;
        if (retained_index.set(m->topic, h, old)) retained.erase(old);
        retained[h] = std::move(m);
    }

    for (RecoveredSession& rs : state.sessions) {
        if (slot_by_client.count(rs.client_id)) continue;
        Session& s = create_session(rs.client_id);
        s.expiry_s = rs.expiry_s;
        s.persisted = true;
        for (const RecoveredSub& sub : rs.subs) index_subscription(s, sub.filter, sub.options, sub.sub_id);
        // Subscription identifiers of stored deliveries are not persisted: they go out without.
        for (RecoveredOut& ro : rs.out) {
            const bool started = ro.state != OutState::Queued;
            s.next_seq = std::max(s.next_seq, ro.seq + 1);
            MsgPtr m = from_stored(std::move(ro.msg), now_ms, wall, started);
            if (!m) {
                note(persist.out_done(s.client_id, ro.seq));
                continue;
            }
            OutItem item;
            item.seq = ro.seq;
            item.qos = m->qos;
            item.retain = m->retain;
            item.msg = std::move(m);
            item.state = ro.state;
            item.packet_id = ro.packet_id;
            if (started) {
                s.seq_by_packet_id[item.packet_id] = item.seq;
                s.inflight.emplace(item.seq, std::move(item));
            } else {
                s.queue_bytes += item.msg->byte_size();
                s.queue.push_back(std::move(item));
            }
        }
        s.qos2_in.insert(rs.qos2_in.begin(), rs.qos2_in.end());

        // Everyone is offline after a restart; a session that was connected
        // when we stopped counts as offline from now.
        if (rs.expiry_s == kNeverExpires) continue;
        uint64_t offline_for = (rs.offline_since_wall_ms && wall > rs.offline_since_wall_ms)
                                   ? wall - rs.offline_since_wall_ms : 0;
        uint64_t lifetime = uint64_t(rs.expiry_s) * 1000;
        if (offline_for >= lifetime) {
            remove_session(s);
            continue;
        }
        if (rs.offline_since_wall_ms == 0) note(persist.session_put(s.client_id, s.expiry_s, wall));
        timers.push({now_ms + (lifetime - offline_for), TimerKind::SessionExpiry, s.slot, s.generation});
    }
}

}  // namespace hato::broker
