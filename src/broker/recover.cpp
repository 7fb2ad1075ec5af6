// Rebuilds retained messages and offline sessions (subscriptions, queued and
// in-flight messages, inbound QoS 2 state) from Persistence at start, and
// publishes the wills of the connections that ended with the broker.
#include <algorithm>
#include <string>
#include <vector>

#include "broker/broker_impl.hpp"

namespace hato::broker {

// The broker-clock time a recovered message was queued at, from the wall-clock
// time stored with it (bridge queues only); unknown, or in the future (the
// clock was set back), it counts as queued now. The broker's clock starts at
// 0, so an earlier time wraps below it: only differences of these times
// (ages, Broker::session_queue) are used, and those come out right.
uint64_t Broker::Impl::recovered_queue_time(uint64_t queued_wall_ms, uint64_t wall) const {
    if (queued_wall_ms == 0 || queued_wall_ms >= wall) return now_ms;
    return now_ms - (wall - queued_wall_ms);
}

void Broker::Impl::recover() {
    // Plain 4 KiB pages: a huge-page heap for this (bulk_heap.*, removed)
    // made the kernel zero cold 2 MiB pages, which on a VM cost more system
    // time than it saved in TLB misses, and its mallopt() calls switched
    // glibc's dynamic mmap threshold off for the rest of the process. See
    // docs/durability.md, "Recovery time".
    const uint64_t wall = wall_ms();

    // Retained messages go straight into the broker's table as load() reads them.
    struct Sink final : RetainedSink {
        Impl& b;
        uint64_t wall;
        // Expired while we were down: cleared in the store once load() is
        // over, or their records would stay live in the log forever.
        std::vector<std::string> expired;
        Sink(Impl& impl, uint64_t w) : b(impl), wall(w) {}
        void expect(size_t count) override {
            // One allocation for each table instead of ~20 regrowths on the
            // way to a million retained messages.
            b.retained.reserve(count);
        }
        void prefetch(std::string_view topic) override { b.retained.prefetch(topic); }
        void add(const StoredMessageView& sm) override {
            MsgPtr m = from_stored(sm, b.now_ms, wall);
            if (m) b.retained.put(std::move(m));
            else expired.emplace_back(sm.topic);
        }
        // Kept where the store holds it: only the index is built here.
        void add_stored(const StoredMessageView& sm, const void* ref) override {
            if (sm.expiry_wall_ms != 0 && sm.expiry_wall_ms <= wall) expired.emplace_back(sm.topic);
            else b.retained.put_stored(sm, ref);
        }
    } sink(*this, wall);
    RecoveredState state;
    state.retained_sink = &sink;
    persist.load(state);
    // A Persistence may still collect them (tests).
    for (const StoredMessage& sm : state.retained) sink.add(sm);
    for (const std::string& topic : sink.expired) written(persist.retained_clear(topic));
    std::vector<std::string>().swap(sink.expired);

    for (RecoveredSession& rs : state.sessions) {
        if (sessions.contains(rs.client_id)) continue;
        Session& s = create_session(rs.client_id);
        s.expiry_s = rs.expiry_s;
        s.persisted = true;
        // Its queue is judged by its owner's rights, as before the restart.
        s.owner_source = rs.owner_source;
        if (rs.owner_source == OwnerSource::Password || rs.owner_source == OwnerSource::Certificate)
            s.username = std::make_unique<std::string>(std::move(rs.username));
        for (const RecoveredSub& sub : rs.subs) index_subscription(s, sub.filter, sub.options, sub.sub_id);
        s.next_seq = std::max(s.next_seq, rs.next_seq);
        for (RecoveredOut& ro : rs.out) {
            const bool started = ro.state != OutState::Queued;
            s.next_seq = std::max(s.next_seq, ro.seq + 1);
            MsgPtr m = from_stored(ro.msg, now_ms, wall, started);
            // The recovered copy goes as its message is built: held until the
            // end, a backlog took twice its bytes of RAM at every start.
            std::vector<uint8_t>().swap(ro.msg.payload);
            if (!m) {
                written(persist.out_done(s.client_id, ro.seq));
                continue;
            }
            OutItem item;
            item.seq = ro.seq;
            item.queued_ms = recovered_queue_time(ro.msg.queued_wall_ms, wall);
            item.qos = m->qos;
            item.retain = m->retain;
            item.msg = std::move(m);
            item.state = ro.state;
            item.packet_id = ro.packet_id;
            item.sub_ids = std::move(ro.msg.sub_ids);
            // Redistributed again if this member leaves its group (while it
            // still holds that subscription).
            if (auto sub = s.subs.find(ro.msg.share_filter); sub != s.subs.end() && sub->second.group)
                item.share_key = share_key(sub->second.group, sub->second.inner);
            SessionFlows& f = s.open_flows(flows_pool);
            if (started) {
                f.inflight.insert(std::move(item));
            } else {
                f.queue_bytes += item.queued_bytes();
                f.queue.push_back(std::move(item));
            }
        }
        for (const InboundQos2& in : rs.qos2_in) s.open_flows(flows_pool).qos2_in[in.packet_id] = {in.digest, false};

        // Everyone is offline after a restart; a session that was connected
        // when we stopped counts as offline from now.
        if (rs.expiry_s == kNeverExpires) continue;
        uint64_t offline_for = (rs.offline_since_wall_ms && wall > rs.offline_since_wall_ms)
                                   ? wall - rs.offline_since_wall_ms : 0;
        uint64_t lifetime = uint64_t(rs.expiry_s) * 1000;
        if (offline_for >= lifetime) {
            ++stats.sessions_expired;   // expired while the broker was down
            remove_session(s);
            continue;
        }
        if (rs.offline_since_wall_ms == 0) written(persist.session_put(s.client_id, s.expiry_s, wall, owner_of(s)));
        timers.push({now_ms + (lifetime - offline_for), s.generation, s.slot, TimerKind::SessionExpiry});
    }
    recover_wills(state, wall);
}

}  // namespace hato::broker
