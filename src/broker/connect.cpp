// CONNECT / DISCONNECT, session lifecycle (create, attach, take over, expire)
// and Last Will handling.
#include "broker/broker_impl.hpp"

namespace hato::broker {

using namespace hato::mqtt;

namespace {

// Session expiry the client asked for, capped by config (0 = no cap).
uint32_t capped_expiry(uint32_t asked, uint32_t cap) {
    return (cap != 0 && asked > cap) ? cap : asked;
}

}  // namespace

std::string Broker::Impl::random_client_id() {
    // xorshift64: unpredictable enough for a client id, not for security.
    random_state ^= random_state << 13;
    random_state ^= random_state >> 7;
    random_state ^= random_state << 17;
    static const char hex[] = "0123456789abcdef";
    std::string id = "hato-";
    for (int i = 0; i < 16; ++i) id += hex[(random_state >> (i * 4)) & 0xF];
    return id;
}

void Broker::Impl::on_connect(Connection& c, Connect& p) {
    c.version = p.version;
    const bool v5 = p.version == Version::V5;
    auto refuse = [&](uint8_t reason) {
        send_packet(c, Connack{false, reason, {}});
        drop(c, false, true);
    };

    if (v5 && p.props.auth_method) return refuse(rc::BadAuthenticationMethod);

    std::string client_id(p.client_id);
    bool assigned = false;
    if (p.version == Version::V31) {
        if (client_id.empty() || client_id.size() > 23) return refuse(rc::ClientIdentifierNotValid);
    } else if (client_id.empty()) {
        if (!v5 && !p.clean_start) return refuse(rc::ClientIdentifierNotValid);
        do client_id = random_client_id(); while (slot_by_client.count(client_id));
        assigned = true;
    }

    if (uint8_t verdict = auth->check(p.username, p.password, client_id, c.listener);
        verdict != rc::Success)
        return refuse(verdict);

    size_t connected_now = stats.connections;
    bool takes_over = false;
    if (auto it = slot_by_client.find(client_id); it != slot_by_client.end())
        takes_over = sessions[it->second]->conn != 0;
    if (!takes_over && connected_now >= cfg.max_connections) return refuse(rc::ServerBusy);

    // The will is checked against what we support before anything changes.
    std::optional<Will> will;
    if (p.will_flag) {
        if (!valid_topic_name(p.will_topic)) return refuse(rc::TopicNameInvalid);
        if (p.will_qos > cfg.maximum_qos) return refuse(rc::QoSNotSupported);
        if (p.will_retain && !cfg.retain_available) return refuse(rc::RetainNotSupported);
        auto m = std::make_shared<Message>();
        m->topic = std::string(p.will_topic);
        m->payload.assign(p.will_payload.begin(), p.will_payload.end());
        m->qos = p.will_qos;
        m->retain = p.will_retain;
        if (v5) {
            encode_forwarded_properties(p.will_props, m->forwarded);
            apply_expiry(*m, p.will_props.message_expiry);
        }
        will = Will{std::move(m), v5 ? p.will_props.will_delay.value_or(0) : 0};
    }
    // The user name ACLs see: the TLS identity when there is one.
    std::optional<std::string> username;
    if (c.identity) username = *c.identity;
    else if (p.username) username = std::string(*p.username);
    // A will to a topic this client may not write is dropped (never published).
    if (will && authz &&
        !authz->can_publish(ClientInfo{username ? std::optional<std::string_view>(*username) : std::nullopt,
                                       client_id, nullptr},
                            will->msg->topic))
        will.reset();

    uint32_t asked_expiry = v5 ? p.props.session_expiry.value_or(0)
                               : (p.clean_start ? 0 : kNeverExpires);
    uint32_t expiry = capped_expiry(asked_expiry, cfg.max_session_expiry);

    // Takeover: the older connection goes first (its will per the usual rules).
    if (auto it = slot_by_client.find(client_id); it != slot_by_client.end()) {
        if (Connection* old = conn(sessions[it->second]->conn)) {
            if (old->version == Version::V5) send_disconnect(*old, rc::SessionTakenOver);
            drop(*old, /*publish_will=*/true, /*close_transport=*/true);
        }
    }
    // Looked up again: drop() ends a session whose expiry is 0.
    Session* s = nullptr;
    if (auto it = slot_by_client.find(client_id); it != slot_by_client.end()) s = sessions[it->second].get();

    bool session_present = false;
    if (s && p.clean_start) {
        remove_session(*s);   // publishes a will still waiting on its delay: the session ended
        s = nullptr;
    }
    if (s) {
        session_present = true;
        s->delayed_will.reset();   // reconnect within the will delay cancels it
    } else {
        s = &create_session(client_id);
    }

    c.connected = true;
    c.slot = s->slot;
    c.will = std::move(will);
    c.keep_alive_s = cfg.server_keep_alive ? cfg.server_keep_alive : p.keep_alive;
    c.last_rx_ms = now_ms;
    if (v5) {
        c.client_receive_max = p.props.receive_maximum.value_or(65535);
        c.client_max_packet = p.props.maximum_packet_size.value_or(0);
        c.client_alias_max = p.props.topic_alias_maximum.value_or(0);
        c.problem_info = p.props.request_problem_info.value_or(1) != 0;
    }
    s->conn = c.id;
    s->generation = next_generation++;
    s->username = std::move(username);
    s->acl_cache.topics.clear();   // answers for the previous user name do not carry over
    s->expiry_s = expiry;
    ++stats.connections;

    if (expiry > 0) {
        note(persist.session_put(client_id, expiry, 0));
        s->persisted = true;
    } else if (s->persisted) {
        // Resumed with expiry 0: the state lives only as long as this connection.
        note(persist.session_remove(client_id));
        s->persisted = false;
    }

    Connack ack;
    ack.session_present = session_present && p.version != Version::V31;
    if (v5) {
        Properties& pr = ack.props;
        if (expiry != asked_expiry) pr.session_expiry = expiry;
        if (assigned) pr.assigned_client_id = s->client_id;   // lives in the session
        if (cfg.server_keep_alive) pr.server_keep_alive = cfg.server_keep_alive;
        pr.receive_maximum = cfg.receive_maximum;
        pr.topic_alias_maximum = cfg.topic_alias_maximum;
        if (cfg.maximum_qos < 2) pr.maximum_qos = cfg.maximum_qos;
        if (!cfg.retain_available) pr.retain_available = 0;
        if (cfg.max_packet_size) pr.maximum_packet_size = cfg.max_packet_size;
        if (!cfg.wildcard_subscriptions) pr.wildcard_sub_available = 0;
        if (!cfg.subscription_identifiers) pr.sub_id_available = 0;
        if (!cfg.shared_subscriptions) pr.shared_sub_available = 0;
        if (p.props.request_response_info.value_or(0) && !cfg.response_information.empty())
            pr.response_info = cfg.response_information;
    }
    send_packet(c, ack);

    schedule_keep_alive(c);
    resend_inflight(*s);
    pump(*s);
}

void Broker::Impl::on_disconnect(Connection& c, const Disconnect& p) {
    Session* s = session(c.slot);
    if (c.version == Version::V5 && p.props.session_expiry && s) {
        // A session that ends with the connection cannot be revived here (3.14.2.2.2).
        if (s->expiry_s == 0 && *p.props.session_expiry != 0) return protocol_error(c, rc::ProtocolError);
        s->expiry_s = capped_expiry(*p.props.session_expiry, cfg.max_session_expiry);
    }
    bool with_will = c.version == Version::V5 && p.reason == rc::DisconnectWithWill;
    if (!with_will) c.will.reset();
    drop(c, with_will, true);
}

void Broker::Impl::drop(Connection& c, bool publish_will_now, bool close_transport) {
    if (c.dead) return;
    c.dead = true;
    c.inbuf = {};
    if (close_transport) transport.close(c.id);
    blocked_conns.erase(c.id);

    Session* s = session(c.slot);
    if (c.connected && stats.connections > 0) --stats.connections;
    if (s && s->conn == c.id) {
        s->conn = 0;
        redistribute_shared(*s);
        if (publish_will_now && c.will) {
            if (c.will->delay_s > 0 && s->expiry_s > 0) {
                // Published at the earlier of will delay and session end.
                s->delayed_will = std::move(c.will);
                timers.push({now_ms + uint64_t(s->delayed_will->delay_s) * 1000, TimerKind::WillDelay,
                             s->slot, s->generation});
            } else {
                publish_will(*c.will);
            }
        }
        if (s->expiry_s == 0) {
            remove_session(*s);
        } else {
            if (s->persisted) note(persist.session_put(s->client_id, s->expiry_s, wall_ms()));
            if (s->expiry_s != kNeverExpires)
                timers.push({now_ms + uint64_t(s->expiry_s) * 1000, TimerKind::SessionExpiry,
                             s->slot, s->generation});
        }
    }
    auto it = conns.find(c.id);
    if (it != conns.end()) {
        graveyard.push_back(std::move(it->second));
        conns.erase(it);
    }
}

void Broker::Impl::schedule_keep_alive(Connection& c) {
    if (c.keep_alive_s == 0) return;
    timers.push({c.last_rx_ms + uint64_t(c.keep_alive_s) * 1500, TimerKind::KeepAlive, c.id, 0});
}

void Broker::Impl::on_keep_alive_timer(ConnId id) {
    Connection* c = conn(id);
    if (!c || !c->connected || c->keep_alive_s == 0) return;
    uint64_t deadline = c->last_rx_ms + uint64_t(c->keep_alive_s) * 1500;
    if (now_ms < deadline) {
        timers.push({deadline, TimerKind::KeepAlive, id, 0});   // activity since: re-arm
        return;
    }
    if (c->version == Version::V5) send_disconnect(*c, rc::KeepAliveTimeout);
    drop(*c, true, true);
}

void Broker::Impl::on_connect_timeout(ConnId id) {
    Connection* c = conn(id);
    if (c && !c->connected) drop(*c, /*publish_will=*/false, /*close_transport=*/true);
}

void Broker::Impl::on_session_expiry_timer(Slot slot, uint64_t gen) {
    Session* s = session(slot);
    if (!s || s->generation != gen || s->conn != 0) return;
    remove_session(*s);
}

void Broker::Impl::on_will_delay_timer(Slot slot, uint64_t gen) {
    Session* s = session(slot);
    if (!s || s->generation != gen || s->conn != 0 || !s->delayed_will) return;
    Will w = std::move(*s->delayed_will);
    s->delayed_will.reset();
    publish_will(w);
}

Session& Broker::Impl::create_session(const std::string& client_id) {
    Slot slot;
    if (!free_slots.empty()) {
        slot = free_slots.back();
        free_slots.pop_back();
    } else {
        slot = static_cast<Slot>(sessions.size());
        sessions.emplace_back();
    }
    auto s = std::make_unique<Session>();
    s->slot = slot;
    s->client_id = client_id;
    s->generation = next_generation++;
    sessions[slot] = std::move(s);
    slot_by_client[client_id] = slot;
    return *sessions[slot];
}

void Broker::Impl::remove_session(Session& s) {
    if (s.delayed_will) {
        Will w = std::move(*s.delayed_will);
        s.delayed_will.reset();
        publish_will(w);
    }
    redistribute_shared(s);
    for (auto& [filter, rec] : s.subs) unindex_subscription(s, rec);
    if (s.persisted) note(persist.session_remove(s.client_id));
    Slot slot = s.slot;
    slot_by_client.erase(s.client_id);
    sessions[slot].reset();   // `s` is gone from here on
    free_slots.push_back(slot);
}

void Broker::Impl::publish_will(const Will& w) {
    if (w.msg->expired(now_ms)) return;
    route(w.msg, kNoSlot);
}

}  // namespace hato::broker
