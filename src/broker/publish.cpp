// Inbound PUBLISH / PUBREL, routing to subscribers, retained storage. Their
// acks go through `acks` (held_acks.hpp): out only once what they depend on is durable.
#include <algorithm>

#include "broker/broker_impl.hpp"
#include "broker/log_sink.hpp"
#include "broker/sparkplug.hpp"

namespace hato::broker {

using namespace hato::mqtt;

void Broker::Impl::apply_expiry(Message::Init& m, std::optional<uint32_t> interval_s, Lifetime lifetime) {
    if (lifetime == Lifetime::Later) return;
    if (lifetime == Lifetime::Bounded && cfg.max_message_expiry != 0 &&
        (!interval_s || *interval_s > cfg.max_message_expiry))
        interval_s = cfg.max_message_expiry;
    if (!interval_s) return;
    const uint64_t secs = *interval_s;
    m.expiry_ms = std::max<uint64_t>(now_ms + secs * 1000, 1);   // 0 would mean "never"
    m.expiry_wall_ms = wall_ms() + secs * 1000;
}

MsgPtr Broker::Impl::make_message(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos,
                                  bool retain, const mqtt::Properties* v5_props, Lifetime lifetime) {
    Message::Init in;
    in.topic = topic;
    in.payload = payload;
    in.qos = qos;
    in.retain = retain;
    if (v5_props) {
        forwarded_scratch.clear();
        encode_forwarded_properties(*v5_props, forwarded_scratch);
        in.forwarded = forwarded_scratch;
    }
    apply_expiry(in, v5_props ? v5_props->message_expiry : std::nullopt, lifetime);
    // Shared only when the buffer is about the payload's size: a queued or
    // retained message must not hold much more memory than its bytes.
    if (receiving && payload.size() >= kSharedPayloadMin && receiving->holds(payload) &&
        receiving->bytes.capacity() - payload.size() <= payload.size() / 4) {
        ++stats.payloads_shared;
        return Message::make_sharing(in, receiving);
    }
    return Message::make(in);
}

// $SYS is the broker's (MQTT 4.7.2: a server SHOULD keep clients from
// using such topics to exchange messages): a client that wrote there could
// fake the broker's figures and the bridges' state for everyone who
// monitors them. Bridges may: hato's own bridges' local sessions, and a
// Mosquitto-style bridge, which sets the bridge bit; but any client can set
// that bit, so it counts only for a client whose user name a password or a
// certificate proved (an ACL can still deny such a user $SYS). A client may
// write its own connection state, $SYS/broker/connection/<its client
// id>/state, which is where a bridge without the bit (v5) puts its
// notifications; not where hato's bridge of that name reports its own state.
//
// "$bridge/..." holds hato's bridges' own state (what each one subscribed
// upstream): theirs alone, with or without an ACL. The same rules hold for
// a will (checked at CONNECT).
bool Broker::Impl::may_publish_reserved(bool proven_bridge, std::string_view client_id, std::string_view topic) const {
    const bool sys = topic == "$SYS" || topic.starts_with("$SYS/");
    if (!sys && !topic.starts_with(Config::kBridgeClientIdPrefix)) return true;
    if (client_id.starts_with(Config::kBridgeClientIdPrefix)) return true;
    if (!sys) return false;
    if (proven_bridge) return true;
    constexpr std::string_view head = "$SYS/broker/connection/", tail = "/state";
    const bool own_state = topic.size() == head.size() + client_id.size() + tail.size() && topic.starts_with(head) &&
                           topic.ends_with(tail) && topic.substr(head.size(), client_id.size()) == client_id;
    return own_state && !budget_of(std::string(Config::kBridgeClientIdPrefix) + std::string(client_id));
}

// At most one line a minute: a client that keeps sending them must not
// fill the log.
void Broker::Impl::note_deep_topic(std::string_view client_id) {
    if (!deep_topic_log.due(now_ms)) return;
    log_notice("refused a PUBLISH from '%s': its topic has more than %u levels or %u bytes (max_topic_levels, "
               "max_topic_length; counted in topics_refused_levels, logged at most once a minute)",
               shown_client_id(client_id).c_str(), unsigned(cfg.max_topic_levels), unsigned(cfg.max_topic_length));
}

void Broker::Impl::on_publish(Connection& c, Publish& p, std::span<const uint8_t> wire) {
    const bool v5 = c.version == Version::V5;
    // A connected client always has its session. It is read only where it
    // is needed (QoS 2 state, ACLs): with thousands of clients it is a cache
    // miss a message.
    Session* s = nullptr;
    if (p.qos == 2 || authz) {
        s = session(c.slot);
        if (!s) return protocol_error(c, rc::UnspecifiedError);
    } else if (c.slot == kNoSlot) {
        return protocol_error(c, rc::UnspecifiedError);
    }

    // Subscription Identifiers are the server's to add (MQTT-3.3.4-6); the
    // codec allows them in PUBLISH because the bridge reads server PUBLISHes.
    if (v5 && !p.props.subscription_ids.empty()) return protocol_error(c, rc::ProtocolError);
    std::string_view topic = p.topic;
    if (v5 && p.props.topic_alias) {
        uint16_t alias = *p.props.topic_alias;
        if (alias == 0 || alias > granted_alias_max) return protocol_error(c, rc::TopicAliasInvalid);
        if (!topic.empty()) {
            // A topic past max_topic_length is refused below: not kept
            // for the connection's life either.
            if (topic.size() <= cfg.max_topic_length) c.open_extras().alias_in[alias] = std::string(topic);
        } else {
            if (!c.extras()) return protocol_error(c, rc::ProtocolError);
            auto it = c.extras()->alias_in.find(alias);
            if (it == c.extras()->alias_in.end()) return protocol_error(c, rc::ProtocolError);
            topic = it->second;
        }
    }
    // The decoder checked the topic (valid UTF-8, no wildcard), and an alias
    // maps to a topic it checked: only an alias that names nothing is left.
    if (topic.empty()) return protocol_error(c, rc::TopicNameInvalid);
    // Against what this connection's CONNACK allowed: a reload that lowered
    // the limits since applies to connections made after it. Retained
    // messages switched off meanwhile: the message goes on, not retained.
    if (p.qos > c.granted_qos) return protocol_error(c, rc::QoSNotSupported);
    if (p.retain && !c.granted_retain) return protocol_error(c, rc::RetainNotSupported);
    const bool retain_as_sent = p.retain;   // a resend's QoS 2 digest must match, whatever a reload did since
    if (p.retain && !cfg.retain_available) p.retain = false;

    const PacketType ack_type = p.qos == 2 ? PacketType::Pubrec : PacketType::Puback;
    // The store refuses new durable work (full, or failed): refused up front,
    // and likewise when one of the writes below is refused.
    auto refuse = [&](uint8_t reason) {
        if (!v5) return protocol_error(c, reason);   // v3 has no refusal ack
        ++c.inbound_pending;
        acks.send(c, ack_type, p.packet_id, reason, 0, true);
    };
    const uint64_t digest = p.qos == 2 ? message_digest(topic, p.payload, retain_as_sent) : 0;
    SessionFlows::InboundId* held_id = nullptr;
    if (p.qos == 2 && s->flows) {
        auto it = s->flows->qos2_in.find(p.packet_id);
        if (it != s->flows->qos2_in.end()) held_id = &it->second;
    }
    if (held_id) {
        SessionFlows::InboundId& held = *held_id;
        SessionFlows::WaitingPubcomp* waiting = s->flows->pubcomp_waiting_for(p.packet_id);
        if (!waiting && (held.digest == digest || held.digest == 0)) {
            // Retransmission of a message already routed: acknowledge again,
            // do not route again. Its records may be waiting for a sync still
            // (it came first on a connection that was since replaced): this
            // PUBREC waits for everything written so far. Sent again on a new
            // connection it takes a slot of this one's, as in the client's
            // send quota.
            if (!held.counted) {
                held.counted = true;
                ++c.inbound_pending;
            }
            acks.send(c, ack_type, p.packet_id, rc::Success, s->persisted ? persist.latest_ticket() : 0, false);
            return;
        }
        // A new message under this id: either the flow had its PUBREL (its
        // removal waits for the store) and this was sent before our PUBCOMP,
        // or it carries another message than the one the id holds. The
        // bridge sends both: a new message right behind its own local PUBREL,
        // and, after a restart or a power cut lost that PUBREL, the upstream's
        // resend of it with no PUBREL before it (docs/bridge.md). Taken for a
        // retransmission it would be acknowledged and dropped. The removal
        // goes in first, as its record must come before the new flow's; while
        // the store refuses it, so is this message. A PUBREL that came on an
        // earlier connection gets no PUBCOMP here: nobody waits for it on
        // this one.
        const bool answer = waiting && waiting->asked;
        if (!release_inbound(*s, c, p.packet_id, answer)) return refuse(rc::QuotaExceeded);   // counted as the removal's
        std::erase_if(s->flows->pubcomp_waiting,
                      [&](const SessionFlows::WaitingPubcomp& w) { return w.packet_id == p.packet_id; });
    }
    if (p.qos > 0 && v5 && c.inbound_pending >= granted_receive_max)
        return protocol_error(c, rc::ReceiveMaximumExceeded);
    // QoS 2 ids waiting PUBREL outlive the connection, and Receive Maximum
    // counts only one v5 connection's: a v3.x client, or a v5 one that
    // reconnects, could hold the whole id space (65 535 stored flows) per
    // session. The session's queue bound bounds them too (bridges: their
    // byte budget, which they honour). At the bound, an id an earlier
    // connection left and this one has not sent again makes room: a client
    // that lost its state leaves such ids at every crash, abandoned (were
    // its PUBLISH sent again, it would count as new). Only ids this
    // connection holds at once past the bound (v3.x) close it.
    if (p.qos == 2 && s->flows && s->flows->qos2_in.size() >= std::max<uint32_t>(cfg.max_queued_messages, granted_receive_max) &&
        !budget_of(s->client_id)) {
        SessionFlows& f = *s->flows;
        auto left = std::find_if(f.qos2_in.begin(), f.qos2_in.end(), [&](const auto& e) {
            return !e.second.counted && !f.pubcomp_waiting_for(e.first);
        });
        if (left == f.qos2_in.end()) return protocol_error(c, rc::ReceiveMaximumExceeded);
        if (!release_inbound(*s, c, left->first, /*answer=*/false)) return refuse(rc::QuotaExceeded);
    }
    // A deeper (or longer) topic would cost the trees and every match: refused, with the
    // reason where the client can hear it (v5: the ack, or at QoS 0 the
    // DISCONNECT). A v3.x client has no refusal code, and disconnected it
    // would resend the same message for ever; a configured bridge would
    // reconnect for ever: like a topic the ACL denies, acknowledged and dropped.
    // Clearing a retained topic that is held is always allowed: one kept
    // from before a lower limit could not be removed otherwise.
    const bool clears_retained = p.retain && p.payload.empty() && retained.contains(topic);
    if (!clears_retained && !topic_within_limits(topic, topic.size())) {
        const Session* owner = s ? s : session(c.slot);
        note_deep_topic(owner ? std::string_view(owner->client_id) : "");
        if (v5 && p.qos == 0 && !(owner && budget_of(owner->client_id)))
            return protocol_error(c, rc::TopicNameInvalid);
        if (p.qos == 0) return;
        ++c.inbound_pending;
        acks.send(c, ack_type, p.packet_id, v5 ? rc::TopicNameInvalid : rc::Success, 0, true);
        return;
    }

    bool reserved = false;
    if (topic.starts_with('$')) {
        const Session* owner = s ? s : session(c.slot);
        reserved = !may_publish_reserved(c.bridge && owner && owner->username, owner ? std::string_view(owner->client_id) : "",
                                         topic);
    }
    if (reserved || (authz && !authz->can_publish(client_info(*s), topic))) {
        // Not delivered. v5 says why; v3 has no way to, so it is acknowledged
        // like a success (as Mosquitto does) and dropped.
        if (p.qos == 0) return;
        ++c.inbound_pending;
        acks.send(c, ack_type, p.packet_id, v5 ? rc::NotAuthorized : rc::Success, 0, true);
        return;
    }

    if (v5 && p.props.payload_format.value_or(0) == 1 &&
        !valid_utf8(std::string_view(reinterpret_cast<const char*>(p.payload.data()), p.payload.size()))) {
        if (p.qos > 0) {
            ++c.inbound_pending;
            acks.send(c, ack_type, p.packet_id, rc::PayloadFormatInvalid, 0, true);
        }
        return;
    }
    // A new retained topic past [limits] max_retained_messages: a v5 QoS
    // 1/2 publisher is told (0x97); others (v3.x cannot be told, and would
    // resend for ever if disconnected; QoS 0; a bridge, which would
    // reconnect for ever) have it delivered, not retained.
    if (p.retain && !p.payload.empty() && retained_at_limit(topic, c.own_bridge && topic.starts_with("$SYS/"))) {
        if (v5 && p.qos > 0 && !c.own_bridge) return refuse(rc::QuotaExceeded);
        p.retain = false;
    }
    if (p.qos > 0 && persist.full()) {
        ++stats.store_refusals;
        ++stats.store_refused_full;
        return refuse(rc::QuotaExceeded);
    }

    // Admitted: stored whole from here (Persistence::admit_whole).
    const AdmittedWrites admitted(persist, p.qos > 0);
    stats.publish_bytes_in += p.payload.size();
    // $SYS is the broker's (may_publish_reserved lets in only a client's or a
    // bridge's connection state): max_message_expiry would clear a bridge's
    // while its link is up. What the publisher asked for still applies.
    const Lifetime lifetime = topic.starts_with("$SYS/") ? Lifetime::Own : Lifetime::Bounded;
    const MsgPtr m = make_message(topic, p.payload, p.qos, p.retain, v5 ? &p.props : nullptr, lifetime);
    if (!wire.empty()) seed_shared_publish(m, c.version, wire);
    OpWrites w;   // what this PUBLISH wrote: its ack waits for them
    ++stats.messages_in;   // a client's message (the broker's own, and certificates, are not)
    size_t receivers = route(m, c.slot, w, &c.route_memo);
    shared_publish.wire = {};   // the input buffer: not valid after this PUBLISH
    if (cfg.sparkplug_aware && !p.payload.empty()) {
        // A birth is also kept as its certificate, retained (and stored like
        // any retained message: a refusal refuses this PUBLISH below). The
        // server publishes it, so No Local does not hide it from the edge
        // node. An empty payload is no birth and leaves the certificate.
        // A new node's certificate past max_retained_messages is not kept
        // (counted and logged there): births would otherwise grow it
        // without bound. The birth itself is delivered.
        const std::string cert = sparkplug::certificate_topic(topic);
        if (!cert.empty() && !retained_at_limit(cert)) route(make_message(cert, p.payload, p.qos, true, v5 ? &p.props : nullptr, Lifetime::Own), kNoSlot, w);
    }
    const bool bridged_retained = p.retain && (c.bridge || c.own_bridge);
    if (p.qos == 0) {
        if (observer) observer->on_client_publish(topic, p.payload, bridged_retained);
        return;
    }

    if (p.qos == 2 && !w.refused() && s->persisted) written(persist.qos2_in_put(s->client_id, p.packet_id, digest), w);
    // A message that can never be stored: 0x95 is no PUBACK/PUBREC reason
    // code, so it is the DISCONNECT's (v5 3.14.2.1), and no ack.
    if (w.refusal == AppendStatus::TooLarge) return protocol_error(c, rc::PacketTooLarge);
    if (w.refused()) return refuse(rc::QuotaExceeded);
    // Told only once the store took it: a refused QoS 1/2 message comes
    // again, and a Modbus write it asks for must not happen twice.
    if (observer) observer->on_client_publish(topic, p.payload, bridged_retained);

    ++c.inbound_pending;
    if (p.qos == 1) {
        uint8_t reason = (v5 && receivers == 0) ? rc::NoMatchingSubscribers : rc::Success;
        acks.send(c, PacketType::Puback, p.packet_id, reason, w.ticket, true);
    } else {
        s->open_flows(flows_pool).qos2_in[p.packet_id] = {digest, true};
        uint8_t reason = (v5 && receivers == 0) ? rc::NoMatchingSubscribers : rc::Success;
        // The slot stays taken until PUBREL (counts_inbound=false).
        acks.send(c, PacketType::Pubrec, p.packet_id, reason, w.ticket, false);
    }
}

void Broker::Impl::on_pubrel(Connection& c, const Ack& a) {
    Session* s = session(c.slot);
    if (s && s->flows && s->flows->qos2_in.count(a.packet_id)) {
        // Behind a PUBCOMP that waits already, or refused: this one waits too
        // (SessionFlows::pubcomp_waiting). The id stays meanwhile.
        SessionFlows& f = *s->flows;
        if (f.pubcomp_waiting.empty()) {
            if (release_inbound(*s, c, a.packet_id, /*answer=*/true)) return s->release_flows_if_empty(flows_pool);
            f.pubcomp_waiting.push_back({a.packet_id, true});   // refused: tried again on the next tick
            flight_retry.insert(s->client_id);
            return;
        }
        // Sent again after a reconnect, or behind one that waits.
        if (SessionFlows::WaitingPubcomp* w = f.pubcomp_waiting_for(a.packet_id)) w->asked = true;
        else f.pubcomp_waiting.push_back({a.packet_id, true});
        if (!send_waiting_answers(*s)) flight_retry.insert(s->client_id);
        return;
    }
    // An id not held may be one whose removal a replaced connection wrote and
    // that waits for a sync still: its PUBCOMP frees the id just the same.
    // Through the FIFO so it never overtakes a held PUBREC.
    const uint64_t ticket = s && s->persisted ? persist.latest_ticket() : 0;
    acks.send(c, PacketType::Pubcomp, a.packet_id, rc::PacketIdentifierNotFound, ticket, false);
}

bool Broker::Impl::release_inbound(Session& s, Connection& c, uint16_t packet_id, bool answer) {
    // PUBCOMP frees the packet id: the client may send a new message with it
    // at once. Were the removal not durable by then, a power cut would bring
    // the id back as "PUBREC sent", and that new message would be taken for
    // a retransmission: acknowledged, and dropped. So PUBCOMP waits for the
    // removal's ticket, and a refused removal gets no PUBCOMP.
    OpWrites w;
    if (s.persisted && !written(persist.qos2_in_remove(s.client_id, packet_id), w)) return false;
    auto it = s.flows->qos2_in.find(packet_id);
    if (it->second.counted && c.inbound_pending > 0) --c.inbound_pending;   // its slot, on this connection
    s.flows->qos2_in.erase(it);
    if (!answer) return true;
    acks.send(c, PacketType::Pubcomp, packet_id, rc::Success, w.ticket, false);
    return true;
}

bool Broker::Impl::retained_at_limit(std::string_view topic, bool own_bridge_state) {
    if (cfg.max_retained_messages == 0 || RetainedStore::uncounted(topic) || own_bridge_state) return false;
    auto held = [&] { return retained.size() - retained.uncounted_count(); };
    if (held() < cfg.max_retained_messages || retained.contains(topic)) {   // a replacement adds nothing
        if (held() < cfg.max_retained_messages) retained_limit_noted = false;
        return false;
    }
    if (now_ms >= retained_swept_ms + kRetainedSweepMs || retained_swept_ms == 0) {
        // Expired ones are only skipped when matched: cleared here, so that
        // max_message_expiry frees their places. A walk of every retained
        // topic: at most once every kRetainedSweepMs, and only for a new
        // topic at the limit.
        retained_swept_ms = now_ms;
        OpWrites w;   // removals: nobody waits for them
        for (const std::string& t : retained.expired_topics(now_ms, wall_ms()))
            if (written(persist.retained_clear(t), w)) retained.clear(t);
        if (held() < cfg.max_retained_messages) {
            retained_limit_noted = false;
            return false;
        }
    }
    ++stats.retained_refused_limit;
    if (!retained_limit_noted)
        log_notice("not retaining messages to new topics: %zu retained, max_retained_messages is %u", held(),
                   unsigned(cfg.max_retained_messages));
    retained_limit_noted = true;
    return true;
}

void Broker::Impl::store_retained(const MsgPtr& msg, OpWrites& w) {
    if (retain_in_memory) {
        // Regenerated by the broker (publish_internal): no record is written,
        // only a stale one a client stored under this topic is cleared, once.
        if (memory_retained_topics.insert(std::string(msg->topic())).second) {
            if (retained.contains(msg->topic())) written(persist.retained_clear(msg->topic()), w);
        }
        if (!msg->payload().empty()) return retained.put(msg);
        retained.clear(msg->topic());
        return;
    }
    // Stored first, a clear as a new message: one the store refuses does not
    // change the retained message that a restart would bring back. Once
    // stored, the record is what the table holds, where the store can serve it.
    if (msg->payload().empty()) {
        if (written(persist.retained_clear(msg->topic()), w)) retained.clear(msg->topic());
        return;
    }
    if (!written(persist.retained_set(to_stored(*msg, msg->qos, true)), w)) return;
    retained.put_written(msg);
}

size_t Broker::Impl::route(const MsgPtr& msg, Slot publisher, OpWrites& w, RouteMemo* memo) {
    if (msg->retain) store_retained(msg, w);

    // The matches come from the route cache (route_cache.hpp), which keeps
    // them per topic; a nested route, should one ever happen, gets a
    // collector of its own and leaves the cache alone.
    std::unique_ptr<MatchCollector> nested;   // null unless nested: nothing to build per message
    struct Release {
        bool& busy;
        bool was;
        ~Release() { busy = was; }
    } release{route_busy, route_busy};
    bool fill = true;
    MatchCollector& found = route_busy ? *(nested = std::make_unique<MatchCollector>())
                                       : route_cache.lookup(msg->topic(), publisher, subs.generation(), fill, memo);
    if (nested) nested->publisher = publisher;   // what lookup() hands out to fill has it set
    route_busy = true;
    if (fill) {
        subs.match(msg->topic(), found);
        found.merge_direct();
        if (!nested) route_cache.filled();
    }

    size_t receivers = 0;
    for (auto& merged : found.direct) {
        Session* s = session(merged.who);
        if (!s) continue;
        ++receivers;
        deliver(*s, msg, std::min(msg->qos, merged.qos),
                merged.retain_as_published && msg->retain, merged.sub_ids, 0, w);   // a copy: the matches are kept
    }
    // Shared groups: one member per message, round robin over the members in
    // slot order, skipping those that may not read the message. First an
    // online member with room in its queue, then an offline one with room,
    // then one without (the message is dropped there, counted): a member
    // that stopped acknowledging does not take every other message to a
    // full queue while the others idle. A group where nobody may read it
    // does not count as a receiver.
    for (auto& [key, members] : found.shared) {
        shared_work += kSharedGroupWork + members.size();
        std::sort(members.begin(), members.end(),
                  [](const auto& a, const auto& b) { return a.who < b.who; });
        uint32_t& turn = shared.turn(key);
        constexpr size_t kNone = ~size_t(0);
        size_t pick = kNone;
        // 0 online with room, 1 offline with room, 2 online, 3 offline, 4
        // online with a Maximum Packet Size the message does not fit (it
        // would skip it: taken only where every member would).
        int pick_rank = 5;
        for (size_t i = 0; i < members.size() && pick_rank > 0; ++i) {
            size_t idx = (turn + i) % members.size();
            Session* s = session(members[idx].who);
            if (!s || !may_read(*s, msg->topic())) continue;
            const uint8_t qos = std::min<uint8_t>(msg->qos, members[idx].options & 0x03);
            // QoS 0 is not queued for an offline member: no room there.
            const bool room = qos > 0 ? !queue_full(*s, budget_of(s->client_id), shared_item_bytes(*msg))
                                      : s->conn != 0;
            const int rank = !member_can_take(*s, *msg, qos, members[idx].sub_id)
                                 ? 4
                                 : (room ? 0 : 2) + (s->conn != 0 ? 0 : 1);
            if (rank < pick_rank) {
                pick = idx;
                pick_rank = rank;
            }
        }
        if (pick == kNone) continue;
        turn = static_cast<uint32_t>(pick + 1);
        auto& m = members[pick];
        Session* s = session(m.who);
        ++receivers;
        std::vector<uint32_t> ids;
        if (m.sub_id) ids.push_back(m.sub_id);
        deliver(*s, msg, std::min<uint8_t>(msg->qos, m.options & 0x03),
                (m.options & 0x08) && msg->retain, std::move(ids), key, w);
    }
    return receivers;
}

}  // namespace hato::broker
