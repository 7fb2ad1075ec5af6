// SUBSCRIBE / UNSUBSCRIBE and retained delivery on subscribe.
#include <algorithm>
#include <unordered_map>

#include "broker/broker_impl.hpp"

namespace hato::broker {

using namespace hato::mqtt;

namespace {

bool has_wildcard(std::string_view filter) {
    return filter.find_first_of("+#") != std::string_view::npos;
}

}  // namespace

bool Broker::Impl::index_subscription(Session& s, const std::string& filter, uint8_t options,
                                      uint32_t sub_id) {
    std::string_view group_name, inner = filter;
    bool ok = true;
    uint32_t group = 0;
    if (parse_shared(filter, group_name, inner, ok)) group = subs.group_id(group_name);
    SubRecord rec{std::string(inner), options, sub_id, group};
    bool is_new = !s.subs.count(filter);
    // A replaced subscription already holds a reference to its group name.
    if (group && !is_new) subs.release_group(group);
    subs.add(rec.inner, SubIndex::Entry{s.slot, options, sub_id, group});
    if (group) shared.join(share_key(group, rec.inner), s.slot, filter);
    s.subs[filter] = std::move(rec);
    return is_new;
}

void Broker::Impl::unindex_subscription(Session& s, const SubRecord& rec) {
    subs.remove(rec.inner, s.slot, rec.group);
    if (rec.group == 0) return;
    subs.release_group(rec.group);
    shared.leave(share_key(rec.group, rec.inner), s.slot);
}

// Each subscription costs memory in the index and a record in the store, so
// one client cannot grow them without bound; replacing one costs nothing.
bool Broker::Impl::at_subscription_limit(const Session& s, std::string_view filter) const {
    const uint32_t cap = cfg.max_subscriptions_per_client;
    return cap != 0 && s.subs.size() >= cap && !s.subs.count(std::string(filter));
}

bool Broker::Impl::add_subscription(Session& s, const std::string& filter, uint8_t options,
                                    uint32_t sub_id, bool& is_new, OpWrites& w) {
    // Stored first: a subscription the store refused is not granted.
    if (s.persisted && !written(persist.sub_put(s.client_id, filter, options, sub_id), w)) return false;
    is_new = index_subscription(s, filter, options, sub_id);
    return true;
}

void Broker::Impl::on_subscribe(Connection& c, const Subscribe& p) {
    Session* s = session(c.slot);
    if (!s) return protocol_error(c, rc::UnspecifiedError);
    const uint32_t sub_id = p.props.subscription_ids.empty() ? 0 : p.props.subscription_ids.front();

    struct RetainedWork {
        std::string inner;
        uint8_t qos;
    };
    std::vector<RetainedWork> retained_work;
    // A filter repeated in one SUBSCRIBE is sent its retained messages once,
    // at the last one's QoS: a packet listing "#" 200 000 times would
    // otherwise send every retained message 200 000 times in one event.
    std::unordered_map<std::string, size_t> work_of_filter;
    auto add_retained_work = [&](RetainedWork work) {
        auto [it, added] = work_of_filter.try_emplace(work.inner, retained_work.size());
        if (added) retained_work.push_back(std::move(work));
        else retained_work[it->second].qos = work.qos;
    };
    OpWrites w;   // the SUBACK waits for them: a session that comes back has its subscriptions
    Suback ack;
    ack.packet_id = p.packet_id;
    // A Protocol Error for the whole packet (3.8.3.1): found before any
    // filter of it is applied.
    for (const SubscribeTopic& t : p.topics) {
        std::string_view group, inner;
        bool ok = true;
        if (t.no_local && parse_shared(t.filter, group, inner, ok) && ok) return protocol_error(c, rc::ProtocolError);
    }
    for (const SubscribeTopic& t : p.topics) {
        std::string_view group, inner = t.filter;
        bool ok = true;
        bool shared = parse_shared(t.filter, group, inner, ok);
        uint8_t reason;
        if (!ok || !valid_topic_filter(inner)) {
            reason = rc::TopicFilterInvalid;
        } else if (!topic_within_limits(inner, t.filter.size())) {   // levels: the filter's, $share/group aside
            reason = rc::TopicFilterInvalid;   // 0x80 in v3.1.1
        } else if (shared && !cfg.shared_subscriptions) {
            reason = rc::SharedSubscriptionsNotSupported;
        } else if (sub_id && !cfg.subscription_identifiers) {
            reason = rc::SubscriptionIdentifiersNotSupported;
        } else if (!cfg.wildcard_subscriptions && has_wildcard(inner)) {
            reason = rc::WildcardSubscriptionsNotSupported;
        } else if (authz && !authz->can_subscribe(client_info(*s), inner)) {
            reason = rc::NotAuthorized;   // 0x80 in v3.1.1 (the encoder maps it)
        } else if (at_subscription_limit(*s, t.filter)) {
            ++stats.subscriptions_refused_limit;
            reason = rc::QuotaExceeded;   // 0x80 in v3.1.1
        } else {
            uint8_t qos = std::min(t.qos, cfg.maximum_qos);
            // A v3 bridge (bridge bit) gets v5's bridge options: what it
            // publishes does not come back to it, retained flags pass as sent.
            const bool bridge = c.bridge && !shared;
            uint8_t options = static_cast<uint8_t>(qos | (t.no_local || bridge ? 0x04 : 0) |
                                                   (t.retain_as_published || bridge ? 0x08 : 0) |
                                                   (t.retain_handling << 4));
            bool is_new = false;
            if (!add_subscription(*s, std::string(t.filter), options, sub_id, is_new, w)) {
                ack.reasons.push_back(rc::QuotaExceeded);   // 0x80 in v3.1.1 (the encoder maps it)
                continue;
            }
            reason = qos;
            if (!shared && (t.retain_handling == 0 || (t.retain_handling == 1 && is_new)))
                add_retained_work({std::string(inner), qos});
        }
        ack.reasons.push_back(reason);
    }
    // A bridge's link subscribes again after each CONNACK: nothing to hold.
    const bool waits = send_packet(c, ack, budget_of(s->client_id) ? 0 : w.ticket);
    if (c.dead) return;   // the SUBACK did not fit the client's Maximum Packet Size
    if (waits) acks.hold_output(c);   // the retained messages and the rest follow it
    // Retained messages follow the SUBACK. A filter's are not matched once
    // every one would be dropped (they stay retained): thousands of filters
    // that each match thousands of retained messages then cost the room the
    // client has, not filters x messages.
    for (const RetainedWork& w : retained_work) send_retained(*s, w.inner, w.qos, sub_id);
}

void Broker::Impl::send_retained(Session& s, const std::string& inner, uint8_t granted_qos,
                                 uint32_t sub_id) {
    const Config::SessionBudget* budget = budget_of(s.client_id);
    const bool queues_qos0 = budget && budget->queue_qos0;
    // Whether the next one could go anywhere: once every one would be
    // dropped, matching stops (the rest stay retained). Checked before
    // each, so that thousands of filters that each match thousands of
    // retained messages cost the room the client has, not filters x
    // messages, and a stored message is decoded (its payload copied to the
    // heap) only to be sent: one SUBSCRIBE to big/# never holds all of them.
    bool queue_shut = false;
    auto room_left = [&] {
        // Into a full queue (it stays full here), each would be dropped.
        queue_shut = (granted_qos > 0 || queues_qos0) && queue_closed(s);
        // A QoS 0 retained message goes out at QoS 0 whatever was granted,
        // past the queue, unless a budget queues QoS 0 too.
        bool qos0_sent = false;
        if (!queues_qos0) {
            const Connection* c = s.conn ? conn(s.conn) : nullptr;
            const uint64_t queued = c && cfg.max_output_bytes != 0 ? transport.queued_bytes(c->id) : 0;
            qos0_sent = c && qos0_room(*c, queued) == Qos0Room::Send;
        }
        return qos0_sent || !(queue_shut || (granted_qos == 0 && !queues_qos0));
    };
    if (!room_left()) return;
    OpWrites w;   // no ack waits for these: refusals are only counted
    retained.visit(inner, now_ms, wall_ms(), [&](const MsgPtr& m) {
        if (queue_shut && (std::min(m->qos, granted_qos) > 0 || queues_qos0)) {
            if (m->expired(now_ms) || !may_read(s, m->topic())) return true;
            count_queue_drop(s.client_id, budget);
            return true;
        }
        std::vector<uint32_t> ids;
        if (sub_id) ids.push_back(sub_id);
        deliver(s, m, std::min(m->qos, granted_qos), /*retain=*/true, std::move(ids), 0, w);
        return room_left();
    });
}

void Broker::Impl::on_unsubscribe(Connection& c, const Unsubscribe& p) {
    Session* s = session(c.slot);
    if (!s) return protocol_error(c, rc::UnspecifiedError);
    Unsuback ack;
    ack.packet_id = p.packet_id;
    OpWrites w;   // the UNSUBACK waits for them: a removed subscription stays removed
    for (std::string_view f : p.filters) {
        auto it = s->subs.find(std::string(f));
        if (it == s->subs.end()) {
            std::string_view group, inner = f;
            bool ok = true;
            parse_shared(f, group, inner, ok);
            // v5 tells an invalid filter from one not subscribed; v3.x acks both
            ack.reasons.push_back(ok && valid_topic_filter(inner) ? rc::NoSubscriptionExisted : rc::TopicFilterInvalid);
            continue;
        }
        // Removed only once its removal is stored: told it is gone, the
        // client must not get it back after a restart (a full store
        // refuses even removals once its reserve is used).
        if (s->persisted && !written(persist.sub_remove(s->client_id, f), w)) {
            ack.reasons.push_back(rc::UnspecifiedError);
            continue;
        }
        unindex_subscription(*s, it->second);
        s->subs.erase(it);
        ack.reasons.push_back(rc::Success);
    }
    // A v3.x UNSUBACK cannot say one failed: no answer, the connection ends
    // and the client unsubscribes again once it is back. Not its fault: no will.
    if (w.refused() && c.version != Version::V5) return drop(c, /*publish_will=*/false, /*close_transport=*/true);
    send_packet(c, ack, w.ticket);
}

}  // namespace hato::broker
