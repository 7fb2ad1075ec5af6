// The broker's side of $SYS: its counters and table sizes (fill_gauges) and
// the messages the broker publishes itself (publish_internal, publish_stored,
// keep_retained).
#include "broker/broker_impl.hpp"
#include "broker/sys_topics.hpp"

namespace hato::broker {

void Broker::fill_gauges(SysGauges& g) const {
    const Impl& m = *impl_;
    g.stats = m.stats;
    g.sessions = m.sessions.size();
    g.subscriptions = m.subs.size();
    g.shared_subscriptions = m.shared.member_count();
    g.route_cache_topics = m.route_cache.topics_at(m.subs.generation());
    g.route_cache_matches = m.route_cache.matches_at(m.subs.generation());

    uint64_t retained = m.retained.size(), held = 0, held_bytes = m.retained.bytes();
    held = retained;
    // The broker's own retained topics are no client's messages.
    for (const std::string& topic : m.memory_retained_topics)
        if (m.retained.contains(topic) && retained > 0) --retained;
    for (const auto& s : m.sessions) {
        if (!s || !s->flows) continue;
        SessionFlows& f = *s->flows;
        held += f.queue.size() + f.inflight.size();
        held_bytes += f.queue_bytes;
        f.inflight.for_each([&](OutItem& item) { held_bytes += item.msg->byte_size(); });
    }
    g.retained = retained;
    g.held_messages = held;
    g.held_bytes = held_bytes;
}

void Broker::publish_internal(std::string_view topic, std::span<const uint8_t> payload, bool retain) {
    Impl& m = *impl_;
    MsgPtr msg = m.make_message(topic, payload, /*qos=*/0, retain, nullptr, Impl::Lifetime::Later);
    m.retain_in_memory = true;
    OpWrites w;
    m.route(msg, kNoSlot, w);
    m.retain_in_memory = false;
    m.bury();
}

void Broker::forget_internal_retained(std::string_view prefix) {
    Impl& m = *impl_;
    for (auto it = m.memory_retained_topics.begin(); it != m.memory_retained_topics.end();) {
        if (!it->starts_with(prefix)) {
            ++it;
            continue;
        }
        m.retained.clear(*it);
        it = m.memory_retained_topics.erase(it);
    }
}

void Broker::publish_stored(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos, bool retain) {
    // Held to [mqtt] retain_available like a client's PUBLISH: the message
    // goes on, not retained.
    route_stored(topic, payload, qos, retain && impl_->cfg.retain_available);
}

void Broker::keep_retained(std::string_view topic, std::span<const uint8_t> payload) {
    route_stored(topic, payload, 1, true);
}

void Broker::route_stored(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos, bool retain) {
    Impl& m = *impl_;
    MsgPtr msg = m.make_message(topic, payload, std::min<uint8_t>(qos, m.cfg.maximum_qos), retain, nullptr, Impl::Lifetime::Later);
    OpWrites w;
    m.route(msg, kNoSlot, w);
    m.bury();
}

void Broker::set_publish_observer(PublishObserver* observer) { impl_->observer = observer; }

}  // namespace hato::broker
