// CONNECT / DISCONNECT, session lifecycle (create, attach, take over, expire)
// and Last Will handling.
#include <algorithm>

#include "broker/broker_impl.hpp"
#include "broker/log_sink.hpp"

namespace hato::broker {

using namespace hato::mqtt;

namespace {

// Session expiry the client asked for, capped by config (0 = no cap).
uint32_t capped_expiry(uint32_t asked, uint32_t cap) {
    return (cap != 0 && asked > cap) ? cap : asked;
}

// The keep alive a v5 client gets: server_keep_alive if set, else its own;
// either way at most max_keep_alive, and "none" (0) counts as more than
// any maximum. A v3 client cannot be told a value, so it keeps its own
// (on_connect refuses one outside the maximum).
uint16_t v5_keep_alive(uint16_t asked, const Config& cfg) {
    uint16_t ka = cfg.server_keep_alive ? cfg.server_keep_alive : asked;
    if (cfg.max_keep_alive != 0 && (ka == 0 || ka > cfg.max_keep_alive)) ka = cfg.max_keep_alive;
    return ka;
}

// Whether the user `username` (null: anonymous) owns session `s`. A session
// whose owner is not known (stored before owners were) goes to the first
// client that resumes it.
bool is_owner(const Session& s, const std::string* username) {
    if (s.owner_source == OwnerSource::Unknown) return true;
    if (!s.username || !username) return !s.username && !username;
    return *s.username == *username;
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

// The checks of a CONNECT that need no session: 0 (Success) or the reason to refuse.
uint8_t Broker::Impl::connect_precheck(const Connect& p) const {
    const bool v5 = p.version == Version::V5;
    if (v5 && p.props.auth_method) return rc::BadAuthenticationMethod;
    if (v5 && p.props.auth_data) return rc::ProtocolError;   // data without a method (3.1.2.11.10)
    if (!v5 && cfg.max_keep_alive != 0 && (p.keep_alive == 0 || p.keep_alive > cfg.max_keep_alive)) {
        // A device that reconnects in a loop would write a line to flash each
        // time: at most one a minute.
        if (keep_alive_refusal_log.due(now_ms))
            log_notice("refused MQTT 3.x client '%s': keep alive %u is outside 1..%u (max_keep_alive; "
                       "logged at most once a minute)",
                       shown_client_id(p.client_id).c_str(), unsigned(p.keep_alive), unsigned(cfg.max_keep_alive));
        return rc::ClientIdentifierNotValid;   // v3 return code 2, as Mosquitto answers
    }
    return rc::Success;
}

// The client id the session goes under: the client's, or one the broker
// assigns to an empty id where the version allows it (`assigned` set).
uint8_t Broker::Impl::choose_client_id(const Connect& p, std::string& client_id, bool& assigned) {
    client_id = p.client_id;
    assigned = false;
    if (client_id.size() > cfg.max_client_id_length) return rc::ClientIdentifierNotValid;
    if (p.version == Version::V31) {
        if (client_id.empty() || client_id.size() > 23) return rc::ClientIdentifierNotValid;
    } else if (client_id.empty()) {
        if (p.version != Version::V5 && !p.clean_start) return rc::ClientIdentifierNotValid;
        do client_id = random_client_id(); while (sessions.contains(client_id));
        assigned = true;
    }
    return rc::Success;
}

// The CONNECT's will, checked against what the broker supports before
// anything changes; `out` stays null without a will flag.
uint8_t Broker::Impl::make_will(const Connect& p, std::unique_ptr<Will>& out) {
    if (!p.will_flag) return rc::Success;
    if (!valid_topic_name(p.will_topic)) return rc::TopicNameInvalid;
    if (!topic_within_limits(p.will_topic, p.will_topic.size())) return rc::TopicNameInvalid;
    if (p.will_qos > cfg.maximum_qos) return rc::QoSNotSupported;
    if (p.will_retain && !cfg.retain_available) return rc::RetainNotSupported;
    const bool v5 = p.version == Version::V5;
    // The Message Expiry Interval is the will's lifetime once published
    // (3.1.3.2.4), not from now: applied by publish_will.
    Properties props;
    if (v5) {
        props = p.will_props;
        props.message_expiry.reset();
    }
    MsgPtr m = make_message(p.will_topic, p.will_payload, p.will_qos, p.will_retain, v5 ? &props : nullptr, Lifetime::Later);
    out = std::make_unique<Will>(Will{std::move(m), v5 ? p.will_props.will_delay.value_or(0) : 0,
                                      v5 ? p.will_props.message_expiry : std::nullopt});
    return rc::Success;
}

// The session expiry granted to `client_id` for what it asked (`asked`).
uint32_t Broker::Impl::granted_expiry(std::string_view client_id, uint32_t asked) const {
    // A session with its own queue budget (a bridge's outbound queue) holds
    // messages their publishers were told are safe: no cap cuts it short.
    if (budget_of(client_id)) return asked;
    return capped_expiry(asked, cfg.max_session_expiry);
}

// Whether a new session for `client_id` that outlives its connection would
// pass max_sessions: sessions nobody ends would otherwise grow memory and
// the store without bound. Logged once each time the limit is reached.
bool Broker::Impl::at_session_limit(std::string_view client_id) {
    const bool full = cfg.max_sessions != 0 && sessions.size() >= cfg.max_sessions;
    if (full && budget_of(client_id)) return false;   // a configured bridge: exempt, and no new episode
    if (full) {
        ++stats.sessions_refused_limit;
        if (!session_limit_noted)
            log_notice("refusing new persistent sessions: %zu held, max_sessions is %u", sessions.size(),
                       unsigned(cfg.max_sessions));
    }
    session_limit_noted = full;
    return full;
}

// The session `client_id` connects to: an older connection on it goes
// first (its will per the usual rules), and a clean start (or a session
// that is another user's, `fresh`) replaces it.
Session& Broker::Impl::attach_session(const std::string& client_id, bool fresh, bool& session_present) {
    if (const Session* taken = sessions.find(client_id)) {
        if (Connection* old = conn(taken->conn)) {
            if (old->version == Version::V5) send_disconnect(*old, rc::SessionTakenOver);
            drop(*old, /*publish_will=*/true, /*close_transport=*/true);
        }
    }
    // Looked up again: drop() ends a session whose expiry is 0.
    Session* s = sessions.find(client_id);
    if (s && fresh) {
        remove_session(*s);   // publishes a will still waiting on its delay: the session ended
        s = nullptr;
    }
    session_present = s != nullptr;
    if (!s) return create_session(client_id);
    if (s->delayed_will) {   // reconnect within the will delay cancels it
        end_will(*s, *s->delayed_will, /*publish=*/false);
        s->delayed_will.reset();
    }
    return *s;
}

// The CONNACK's v5 properties: what the broker changed of the client's
// request and the limits it works under.
void Broker::Impl::connack_properties(const Connect& p, const Session& s, const ConnackFacts& f,
                                      Properties& pr) const {
    if (f.expiry != f.asked_expiry) pr.session_expiry = f.expiry;
    if (f.assigned) pr.assigned_client_id = s.client_id;   // lives in the session
    if (cfg.server_keep_alive || f.keep_alive != p.keep_alive) pr.server_keep_alive = f.keep_alive;
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

void Broker::Impl::on_connect(Connection& c, Connect& p) {
    c.version = p.version;
    c.bridge = p.bridge;
    const bool v5 = p.version == Version::V5;
    auto refuse = [&](uint8_t reason) {
        send_packet(c, Connack{false, reason, {}});
        drop(c, false, true);
    };

    if (uint8_t why = connect_precheck(p)) return refuse(why);
    std::string client_id;
    bool assigned = false;
    if (uint8_t why = choose_client_id(p, client_id, assigned)) return refuse(why);
    // The session's last connection closed with input still deferred (a
    // DISCONNECT may be in it, which decides its will): that goes first.
    if (const Session* prior = sessions.find(client_id); prior && prior->conn != 0) {
        const Connection* was = conn(prior->conn);
        if (was && !was->dead && was->extras() && was->extras()->closed_after_input) {
            c.open_extras().connect_waits = true;
            return;
        }
    }

    AuthVerdict verdict;
    if (!authenticate(c, p, client_id, verdict)) return;   // pending: runs again with the answer
    if (verdict.reason != rc::Success) return refuse(verdict.reason);

    const Session* old = sessions.find(client_id);
    const bool takes_over = old && old->conn != 0;
    if (!takes_over && stats.connections >= cfg.max_connections) return refuse(rc::ServerBusy);

    std::unique_ptr<Will> will;
    if (uint8_t why = make_will(p, will)) return refuse(why);
    // The user name ACLs see: the TLS identity when there is one, else the
    // CONNECT's only when the authenticator verified it. An unverified name
    // gets the anonymous rules (it would otherwise claim any user's rights).
    std::unique_ptr<std::string> username;
    if (c.extras() && c.extras()->identity) username = std::make_unique<std::string>(*c.extras()->identity);
    else if (p.username && verdict.user_verified) username = std::make_unique<std::string>(*p.username);
    // A will to a topic this client may not write is dropped (never published).
    if (will && !may_publish_reserved(p.bridge && username, client_id, will->msg->topic())) will.reset();
    if (will && authz &&
        !authz->can_publish(ClientInfo{username ? std::optional<std::string_view>(*username) : std::nullopt,
                                       client_id, nullptr, c.listener},
                            will->msg->topic()))
        will.reset();

    const uint32_t asked_expiry = v5 ? p.props.session_expiry.value_or(0) : (p.clean_start ? 0 : kNeverExpires);
    const uint32_t expiry = granted_expiry(client_id, asked_expiry);

    // A persistent session belongs to the user that created it: another user
    // neither resumes it nor ends it, unless the configuration lets it start
    // afresh (the old session is discarded, its queue never handed over).
    bool other_users_session = false;
    if (old && old->expiry_s > 0 && !is_owner(*old, username.get())) {
        if (!cfg.allow_session_takeover_by_other_user) return refuse(rc::NotAuthorized);
        other_users_session = true;
    }
    // A clean session (expiry 0) taken over by a persistent one ends with its
    // connection, so that adds a session too.
    const bool adds_session = expiry > 0 && (!old || old->expiry_s == 0);
    if (adds_session && at_session_limit(client_id)) return refuse(rc::QuotaExceeded);
    // A stored session this CONNECT discards (a clean start, another user's)
    // or resumes with expiry 0 leaves the store before the CONNACK: told it
    // is gone, the client must not find it back after a restart, queue and
    // all. A full store refuses even removals once its reserve is used.
    const uint64_t written_before = persist.latest_ticket();   // the CONNACK waits for what follows
    const bool unstores = old && old->persisted && (p.clean_start || other_users_session || expiry == 0);
    if (unstores) {
        if (!written(persist.session_remove(client_id))) return refuse(rc::QuotaExceeded);
        sessions.find(client_id)->persisted = false;   // written once: nothing more of it is stored
    }
    const OwnerSource owner_source = !username ? OwnerSource::Anonymous
                                     : (c.extras() && c.extras()->identity) ? OwnerSource::Certificate
                                                                       : OwnerSource::Password;

    // What this CONNECT writes (the session, a discarded one's removal) is
    // durable before the CONNACK says so: else a power cut could take back
    // a session the client was told it has, or bring back one it was told
    // is gone. Not for a bridge's own session: its link subscribes again
    // after every CONNACK, and must be subscribed before the gateway's
    // publishers are (what they publish then goes into its queue).
    const bool hold_connack = !budget_of(client_id);
    c.own_bridge = !hold_connack;
    bool session_present = false;
    Session* s = &attach_session(client_id, p.clean_start || other_users_session, session_present);
    // Stored before the client is told it exists. An update of a session
    // already stored draws on the store's reserve, so its client can always
    // come back to drain its queue; a new one may be refused.
    const SessionOwner owner{owner_source, username ? std::string_view(*username) : std::string_view()};
    if (expiry > 0 && !written(persist.session_put(client_id, expiry, 0, owner)) && !s->persisted) {
        if (!session_present) remove_session(*s);
        return refuse(rc::QuotaExceeded);   // v3.1.1: 0x03 server unavailable
    }

    c.connected = true;
    c.slot = s->slot;
    c.will = std::move(will);
    c.keep_alive_s = v5 ? v5_keep_alive(p.keep_alive, cfg) : p.keep_alive;
    c.last_rx_ms = now_ms;
    c.granted_qos = cfg.maximum_qos & 3;
    c.granted_retain = cfg.retain_available;
    if (v5) {
        c.client_receive_max = p.props.receive_maximum.value_or(65535);
        c.client_max_packet = p.props.maximum_packet_size.value_or(0);
        c.client_alias_max = p.props.topic_alias_maximum.value_or(0);
        c.problem_info = p.props.request_problem_info.value_or(1) != 0;
    }
    s->conn = c.id;
    s->generation = sessions.new_generation();
    s->username = std::move(username);
    s->owner_source = owner_source;
    s->acl_cache.reset();   // answers for the previous user name do not carry over
    s->listener = c.listener;   // and for the previous listener (its own ACL)
    s->expiry_s = expiry;
    if (c.will) store_will(*s, *c.will);   // under the owner just set
    if (counted(c)) ++stats.connections;
    ++stats.connects;
    stats.connections_max = std::max(stats.connections_max, stats.connections);

    if (expiry > 0) {
        s->persisted = true;
    }

    Connack ack;
    ack.session_present = session_present && p.version != Version::V31;
    if (v5) connack_properties(p, *s, ConnackFacts{expiry, asked_expiry, c.keep_alive_s, assigned}, ack.props);
    const uint64_t written_now = persist.latest_ticket();
    if (send_packet(c, ack, hold_connack && written_now != written_before ? written_now : 0))
        acks.hold_output(c);   // what follows (resends, replies) waits behind it
    if (c.dead) return;   // the CONNACK did not fit the client's Maximum Packet Size

    schedule_keep_alive(c);
    resend_inflight(*s);
    pump(*s);
}

bool Broker::Impl::authenticate(Connection& c, const Connect& p, std::string_view client_id, AuthVerdict& out) {
    if (c.extras() && c.extras()->auth_verdict) {   // the answer to this CONNECT's earlier request
        out = *c.extras()->auth_verdict;
        c.extras()->auth_verdict.reset();
        return true;
    }
    AuthRequest req;
    req.conn = c.id;
    req.id = next_auth_request++;
    req.username = p.username;
    req.password = p.password;
    req.client_id = client_id;
    req.listener_index = c.listener;
    if (c.extras() && c.extras()->identity) req.identity = *c.extras()->identity;
    if (std::optional<AuthVerdict> now = auth->start(req)) {
        out = *now;
        return true;
    }
    c.open_extras().auth_request = req.id;
    return false;
}

void Broker::Impl::on_disconnect(Connection& c, const Disconnect& p) {
    Session* s = session(c.slot);
    if (c.version == Version::V5 && p.props.session_expiry && s) {
        // A session that ends with the connection cannot be revived here (3.14.2.2.2).
        if (s->expiry_s == 0 && *p.props.session_expiry != 0) return protocol_error(c, rc::ProtocolError);
        s->expiry_s = capped_expiry(*p.props.session_expiry, cfg.max_session_expiry);
    }
    // Only a normal disconnection (0x00, and v3's DISCONNECT, which carries
    // no reason) discards the will (MQTT-3.14.4-3): with 0x04 the client
    // asks for it, and any error code counts as closing without a normal
    // DISCONNECT (3.1.2.5).
    const bool with_will = c.version == Version::V5 && p.reason != rc::NormalDisconnection;
    drop(c, with_will, true);
}

void Broker::Impl::drop(Connection& c, bool publish_will_now, bool close_transport) {
    if (c.dead) return;
    c.dead = true;
    if (auth_pending(c)) auth->cancel(c.id, c.extras()->auth_request);
    if (c.extras()) c.extras()->inbuf = {};
    if (close_transport && !acks.close_when_sent(c, now_ms + kHeldCloseWaitMs)) transport.close(c.id);
    pressure.end(c, client_id_of(c), now_ms);

    Session* s = session(c.slot);
    if (counted(c) && stats.connections > 0) --stats.connections;
    if (s && s->conn == c.id) {
        s->conn = 0;
        redistribute_shared(*s);
        if (c.will && publish_will_now && c.will->delay_s > 0 && s->expiry_s > 0) {
            // Published at the earlier of will delay and session end.
            s->delayed_will = std::move(c.will);
            timers.push({now_ms + uint64_t(s->delayed_will->delay_s) * 1000, s->generation, s->slot,
                         TimerKind::WillDelay});
        } else if (c.will) {
            end_will(*s, *c.will, publish_will_now);
        }
        if (s->expiry_s == 0) {
            remove_session(*s);
        } else {
            if (s->persisted) written(persist.session_put(s->client_id, s->expiry_s, wall_ms(), owner_of(*s)));
            if (s->expiry_s != kNeverExpires)
                timers.push({now_ms + uint64_t(s->expiry_s) * 1000, s->generation, s->slot,
                             TimerKind::SessionExpiry});
        }
    }
    graveyard.push_back(c.id);   // erased by bury(): callers still hold `c`
}

// Stale entries (superseded by an earlier one) are left in the heap and
// recognised by their due time when they fire.
void Broker::Impl::arm_conn_timer(Connection& c, uint64_t due_ms) {
    if (c.timer_due_ms != 0 && c.timer_due_ms <= due_ms) return;   // that entry re-checks when it fires
    c.timer_due_ms = due_ms;
    timers.push({due_ms, c.id, kNoSlot, TimerKind::ConnCheck});
}

void Broker::Impl::schedule_keep_alive(Connection& c) {
    if (c.keep_alive_s == 0) return;
    arm_conn_timer(c, c.last_rx_ms + uint64_t(c.keep_alive_s) * 1500);
}

void Broker::Impl::on_conn_timer(ConnId id, uint64_t due_ms) {
    Connection* c = conn(id);
    if (!c || c->timer_due_ms != due_ms) return;
    c->timer_due_ms = 0;
    if (!c->connected) {   // the CONNECT deadline (armed by on_open) passed
        drop(*c, /*publish_will=*/false, /*close_transport=*/true);
        return;
    }
    if (c->keep_alive_s == 0) return;
    uint64_t deadline = c->last_rx_ms + uint64_t(c->keep_alive_s) * 1500;
    if (now_ms < deadline) {
        arm_conn_timer(*c, deadline);   // activity since: re-arm
        return;
    }
    if (c->reading_paused && !pressure.over_limit(transport.queued_bytes(c->id))) {
        // Not read because answers wait for the store (held), not because it
        // does not read: its PINGREQs sit unread, through no fault of its own.
        arm_conn_timer(*c, now_ms + uint64_t(c->keep_alive_s) * 1000);
        return;
    }
    if (c->version == Version::V5) send_disconnect(*c, rc::KeepAliveTimeout);
    drop(*c, true, true);
}

void Broker::Impl::on_session_expiry_timer(Slot slot, uint64_t gen) {
    Session* s = session(slot);
    if (!s || s->generation != gen || s->conn != 0) return;
    ++stats.sessions_expired;
    remove_session(*s);
}

void Broker::Impl::on_will_delay_timer(Slot slot, uint64_t gen) {
    Session* s = session(slot);
    if (!s || s->generation != gen || s->conn != 0 || !s->delayed_will) return;
    Will w = std::move(*s->delayed_will);
    s->delayed_will.reset();
    end_will(*s, w, /*publish=*/true);
}

void Broker::Impl::remove_session(Session& s) {
    if (s.delayed_will) {
        Will w = std::move(*s.delayed_will);
        s.delayed_will.reset();
        end_will(s, w, /*publish=*/true);
    }
    redistribute_shared(s, /*ending=*/true);
    for (auto& [filter, rec] : s.subs) unindex_subscription(s, rec);
    if (s.persisted) written(persist.session_remove(s.client_id));
    sessions.erase(s);   // `s` is gone from here on
}

void Broker::Impl::publish_will(Session& owner, const Will& w) {
    // Checked at CONNECT too; a reload since may have taken the right away
    // (a will can wait out its delay, or a long connection).
    if (!w.judged && authz && !authz->can_publish(client_info(owner), w.msg->topic())) return;
    MsgPtr msg = w.msg;
    // Past max_retained_messages a will to a new topic goes out unretained,
    // as a client's PUBLISH would.
    const bool own_bridge_state =
        owner.client_id.starts_with(Config::kBridgeClientIdPrefix) && w.msg->topic().starts_with("$SYS/");
    const bool unretained =
        w.msg->retain && !w.msg->payload().empty() && retained_at_limit(w.msg->topic(), own_bridge_state);
    if (w.expiry_s || cfg.max_message_expiry != 0 || unretained) {
        // Its lifetime starts now: the same message with the deadline set.
        const Message& m = *w.msg;
        Message::Init in;
        in.topic = m.topic();
        in.payload = m.payload();
        in.forwarded = m.forwarded();
        in.qos = m.qos;
        in.retain = m.retain && !unretained;
        // A $SYS will (a bridge's "0" state) is the broker's: its own expiry only.
        apply_expiry(in, w.expiry_s, m.topic().starts_with("$SYS/") ? Lifetime::Own : Lifetime::Bounded);
        msg = Message::make(in);
    }
    OpWrites writes;   // nobody acknowledges a will: refusals are only counted
    // Its client published it: counted as received, and its own No Local
    // subscriptions skip it (MQTT-3.8.3-3).
    ++stats.messages_in;
    route(msg, owner.slot, writes);
}

// Stored while it may still be published, so that a crash or power cut
// (which ends the connection) does not lose it: recover_wills publishes it.
// Not acknowledged to anyone, so nothing waits for its sync, and a full
// store leaves it in memory only.
void Broker::Impl::store_will(const Session& s, Will& w) {
    const Message& m = *w.msg;
    w.stored = written(
        persist.will_put(s.client_id, to_stored(m, m.qos, m.retain), w.delay_s, w.expiry_s, owner_of(s), s.listener));
}

void Broker::Impl::end_will(Session& s, Will& w, bool publish) {
    // Published first: a crash in between publishes it again at the next
    // start (a duplicate will), never not at all.
    if (publish) publish_will(s, w);
    if (!w.stored) return;
    w.stored = false;
    written(persist.will_remove(s.client_id));
}

bool Broker::Impl::will_kept_for_restart(Session& s, Will& w) {
    if (!w.stored) store_will(s, w);
    if (w.stored) return true;
    end_will(s, w, /*publish=*/true);
    return false;
}

// The wills of clients connected when the broker stopped (their connections
// ended with it, without a DISCONNECT) and of sessions still waiting out a
// will delay: due as for a connection lost now. A session recovered with
// time left waits out what is left of the delay (from when its connection
// ended, if the broker saw that, else from now); a reconnect cancels it.
void Broker::Impl::recover_wills(RecoveredState& state, uint64_t wall) {
    if (state.wills.empty()) return;
    StrMap<uint64_t> offline_since;   // of the recovered sessions
    for (const RecoveredSession& rs : state.sessions) find_or_emplace(offline_since, rs.client_id) = rs.offline_since_wall_ms;
    for (RecoveredWill& rw : state.wills) {
        MsgPtr m = from_stored(rw.msg, now_ms, wall);
        if (!m) continue;   // stored without expiry: never
        Will w{std::move(m), rw.delay_s, rw.expiry_s, /*stored=*/true};
        Session* s = sessions.find(rw.client_id);
        // Judged by its listener's ACL, as it would have been live (a
        // recovered session knows no listener until its client connects; at
        // recovery none is connected).
        if (s) s->listener = rw.listener;
        if (s && s->expiry_s > 0 && w.delay_s > 0) {
            const auto since = offline_since.find(rw.client_id);
            const uint64_t ended = since == offline_since.end() ? 0 : since->second;
            const uint64_t offline_for = ended && wall > ended ? wall - ended : 0;
            const uint64_t delay_ms = uint64_t(w.delay_s) * 1000;
            s->delayed_will = std::make_unique<Will>(std::move(w));
            timers.push({now_ms + (offline_for < delay_ms ? delay_ms - offline_for : 0), s->generation, s->slot,
                         TimerKind::WillDelay});
            continue;
        }
        if (s) {
            end_will(*s, w, /*publish=*/true);
            continue;
        }
        // Its client had a clean session: it stands in, with the rights of
        // the will's owner, for the publication.
        Session& owner = create_session(rw.client_id);
        owner.listener = rw.listener;
        owner.owner_source = rw.owner_source;
        if (rw.owner_source == OwnerSource::Password || rw.owner_source == OwnerSource::Certificate)
            owner.username = std::make_unique<std::string>(std::move(rw.username));
        end_will(owner, w, /*publish=*/true);
        sessions.erase(owner);
    }
}

}  // namespace hato::broker
