// Broker events: connection lifecycle, input framing, packet dispatch, timers,
// group-commit points.
#include "broker/broker_impl.hpp"

#include <algorithm>
#include <chrono>
#include <new>

namespace hato::broker {

using namespace hato::mqtt;

Broker::Broker(const Config& cfg, Transport& transport, Persistence& persist)
    : impl_(std::make_unique<Impl>(cfg, transport, persist)) {
    impl_->random_state = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count()) | 1;
}

Broker::~Broker() = default;

void Broker::recover() { impl_->recover(); }

void Broker::set_authenticator(Authenticator* auth) {
    impl_->auth = auth ? auth : &impl_->allow_all;
}

void Broker::set_authorizer(Authorizer* authz) { impl_->authz = authz; }

void Broker::set_identity(ConnId id, std::string username) {
    if (Connection* c = impl_->conn(id))
        c->open_extras().identity = std::make_unique<std::string>(std::move(username));
}

void Broker::on_auth_result(ConnId id, uint64_t request, const AuthVerdict& verdict) {
    Connection* c = impl_->conn(id);
    if (c && request != 0 && c->extras() && c->extras()->auth_request == request) {
        c->extras()->auth_request = 0;
        c->extras()->auth_verdict = verdict;
        impl_->replay_input(*c);   // the CONNECT, then whatever came after it
        // The peer's EOF came while the check ran: it ends now that its
        // input is answered (unless some of it was deferred again).
        if (!c->dead && c->extras() && c->extras()->closed_after_input && !impl_->input_deferred(*c))
            impl_->drop(*c, /*publish_will=*/true, /*close_transport=*/true);
    }
    impl_->bury();
}

const Stats& Broker::stats() const { return impl_->stats; }

Broker::QueueInfo Broker::session_queue(std::string_view client_id) const {
    QueueInfo q;
    if (auto d = impl_->backlog_dropped.find(client_id); d != impl_->backlog_dropped.end()) q.dropped = d->second;
    const Session* found = impl_->sessions.find(client_id);
    if (!found) return q;
    const Session& s = *found;
    if (!s.flows) return q;
    SessionFlows& f = *s.flows;
    // Ages, not times: a message recovered from before the start was queued
    // before the broker's clock began (recovered_queue_time).
    auto oldest = [&q, now = impl_->now_ms](uint64_t queued_ms) {
        q.oldest_age_ms = std::max(q.oldest_age_ms, now - queued_ms);
    };
    // The window is small (walked); the queue keeps its byte count, and
    // its front is its oldest: no walk over a long backlog.
    f.inflight.for_each([&](const OutItem& it) {
        ++q.messages;
        q.bytes += it.msg->byte_size();
        oldest(it.queued_ms);
    });
    q.messages += f.queue.size();
    q.bytes += f.queue_bytes;
    if (!f.queue.empty()) oldest(f.queue.front().queued_ms);
    return q;
}

std::vector<std::string> Broker::session_filters(std::string_view client_id) const {
    std::vector<std::string> out;
    const Session* s = impl_->sessions.find(client_id);
    if (!s) return out;
    for (const auto& [filter, rec] : s->subs) out.push_back(filter);
    return out;
}

std::vector<std::string> Broker::session_ids_with_prefix(std::string_view prefix) const {
    std::vector<std::string> out;
    for (const auto& s : impl_->sessions)
        if (s && s->client_id.starts_with(prefix)) out.push_back(s->client_id);
    return out;
}

size_t Broker::remove_session_subscriptions(std::string_view client_id) {
    Session* s = impl_->sessions.find(client_id);
    if (!s) return 0;
    const size_t removed = s->subs.size();
    // Not waited on: a removal lost to a crash brings the subscription back,
    // and the caller removes it again at the next start.
    for (const auto& [filter, rec] : s->subs) {
        impl_->unindex_subscription(*s, rec);
        if (s->persisted) impl_->written(impl_->persist.sub_remove(s->client_id, filter));
    }
    s->subs.clear();
    return removed;
}

size_t Broker::resend_released_qos2(std::string_view client_id, std::span<const uint16_t> answered_here) {
    Session* s = impl_->sessions.find(client_id);
    if (!s || s->conn || !s->flows) return 0;
    size_t reverted = 0;
    s->flows->inflight.for_each([&](OutItem& item) {
        if (item.state != OutState::Pubrel) return;
        if (std::find(answered_here.begin(), answered_here.end(), item.packet_id) != answered_here.end()) return;
        // Reverted in memory even if the record is refused (a full disk):
        // the PUBLISH then goes on this run, and a restart resends PUBREL.
        item.state_ticket = 0;
        if (s->persisted) {
            const Append r = impl_->persist.out_state(s->client_id, item.seq, OutState::Inflight, item.packet_id);
            if (impl_->written(r)) item.state_ticket = r.ticket;
        }
        item.state = OutState::Inflight;
        ++reverted;
    });
    return reverted;
}

std::string Broker::retained_payload(std::string_view topic) const {
    std::vector<MsgPtr> found;
    impl_->retained.match(topic, impl_->now_ms, impl_->wall_ms(), found);
    if (found.empty()) return {};
    const auto payload = found.front()->payload();
    return std::string(reinterpret_cast<const char*>(payload.data()), payload.size());
}

std::vector<std::pair<std::string, std::string>> Broker::retained_matching(std::string_view filter) const {
    std::vector<MsgPtr> found;
    impl_->retained.match(filter, impl_->now_ms, impl_->wall_ms(), found);
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(found.size());
    for (const MsgPtr& m : found) {
        const auto payload = m->payload();
        out.emplace_back(std::string(m->topic()), std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
    }
    return out;
}

Broker::Counts Broker::counts() const {
    Counts n;
    n.shared_group_names = impl_->subs.group_count();
    n.timers = impl_->timers.size();
    n.sessions = impl_->sessions.size();
    n.route_cache_topics = impl_->route_cache.topics_at(impl_->subs.generation());
    n.route_cache_matches = impl_->route_cache.matches_at(impl_->subs.generation());
    return n;
}

// The peer address is for the wiring's logs; the broker does not keep it.
void Broker::on_open(ConnId id, int listener_index, const std::string& /*peer*/) {
    Connection& c = impl_->conns[id];
    c = Connection{};
    c.id = id;
    c.listener = listener_index;
    c.last_rx_ms = impl_->now_ms;
    // A socket that never sends CONNECT must not hold a slot for ever.
    impl_->arm_conn_timer(c, impl_->now_ms + impl_->cfg.connect_timeout_ms);
}

void Broker::on_data(ConnId id, std::span<const uint8_t> bytes) {
    impl_->stats.bytes_in += bytes.size();
    Connection* c = impl_->conn(id);
    if (c) {
        impl_->process_input(*c, bytes);
        impl_->hint_in_place(*c);
        // Replies count like forwards: over the limit, this client is not read
        // any further. Only its own input made them, so nobody else's is held.
        if (!c->dead && impl_->pressure.over_limit(*c))
            impl_->pressure.block(*c, impl_->now_ms, /*hold_intake=*/false);
    }
    impl_->bury();
}

bool Broker::wants_in_place(ConnId id) const {
    const Connection* c = impl_->conn(id);
    return c && impl_->in_place_rest(*c) >= kInPlaceMin;
}

std::span<uint8_t> Broker::receive_target(ConnId id, size_t limit) {
    Connection* c = impl_->conn(id);
    return c ? impl_->receive_target(*c, limit) : std::span<uint8_t>{};
}

void Broker::on_received_in_place(ConnId id, size_t n) {
    Connection* c = impl_->conn(id);
    if (!c || impl_->in_place.conn != id) return;
    impl_->stats.bytes_in += n;
    impl_->received_in_place(*c, n);
    if (!c->dead && impl_->pressure.over_limit(*c)) impl_->pressure.block(*c, impl_->now_ms, /*hold_intake=*/false);
    impl_->bury();
}

void Broker::Impl::input_ended(Connection& c, bool socket_open) {
    if (input_deferred(c) || (socket_open && auth_pending(c))) {
        // No longer counted against max_connections: its input is over.
        if (counted(c) && stats.connections > 0) --stats.connections;
        c.extras()->closed_after_input = true;   // closed (the transport too) once that input is handled
    } else {
        drop(c, /*publish_will=*/true, /*close_transport=*/socket_open);
    }
}

void Broker::on_close(ConnId id) {
    if (Connection* c = impl_->conn(id)) impl_->input_ended(*c, /*socket_open=*/false);
    impl_->bury();
}

void Broker::on_peer_eof(ConnId id) {
    if (Connection* c = impl_->conn(id)) impl_->input_ended(*c, /*socket_open=*/true);
    else impl_->transport.close(id);
    impl_->bury();
}

void Broker::on_tick(uint64_t now_ms) {
    if (!impl_->ticked) {
        impl_->ticked = true;
        impl_->tick_base = now_ms;
    }
    if (now_ms >= impl_->tick_base && now_ms - impl_->tick_base > impl_->now_ms)
        impl_->now_ms = now_ms - impl_->tick_base;
    impl_->run_timers();
    impl_->check_blocked();
    impl_->make_room();
    impl_->retry_flights();
    impl_->release_acks();
    impl_->acks.close_overdue(impl_->now_ms);
    impl_->bury();
}

void Broker::on_pass_end() {
    impl_->resume_deferred_input();
    impl_->release_acks();
    impl_->check_blocked();
    impl_->bury();
    impl_->match_budget.pass_ended();
    // While intake is held, deferred input waits like the reactor's does.
    if (impl_->match_budget.any_deferred() && !impl_->pressure.intake_held()) impl_->transport.pass_again();
}

void Broker::on_durable() {
    // How far is durable is read from persist.durable_ticket(), the one
    // source of truth, so a caller cannot pass a ticket that disagrees.
    impl_->release_acks();
    impl_->bury();
}

void Broker::shutdown() {
    std::vector<ConnId> ids;
    ids.reserve(impl_->conns.size());
    for (auto& [id, c] : impl_->conns) ids.push_back(id);
    // First, while every subscriber is still connected: a will the store
    // refused (full) would be lost with the process, so it is published now
    // unless there is room to store it this time. Even one whose delay has
    // not run out, its session to be recovered: a client back within the
    // delay then finds its will out early (its next birth message corrects
    // that), where a lost will would never tell anyone it went.
    for (ConnId id : ids) {
        Connection* c = impl_->conn(id);
        Session* s = c ? impl_->session(c->slot) : nullptr;
        if (c && c->will && s && s->conn == id && !impl_->will_kept_for_restart(*s, *c->will)) c->will.reset();
    }
    for (auto& s : impl_->sessions)
        if (s && s->delayed_will && !impl_->will_kept_for_restart(*s, *s->delayed_will)) s->delayed_will.reset();
    for (ConnId id : ids) {
        Connection* c = impl_->conn(id);
        if (!c) continue;
        if (c->connected && c->version == Version::V5)
            impl_->send_disconnect(*c, rc::ServerShuttingDown);
        // Sessions stay persisted, and so do wills: the connection ended
        // without the client's DISCONNECT, but now nobody would get them.
        // They are published at the next start (recover_wills), where a
        // client that reconnects within its will delay cancels its will.
        c->will.reset();
        impl_->drop(*c, /*publish_will=*/false, /*close_transport=*/true);
    }
    impl_->bury();
}

void Broker::shut_down_connection(ConnId id) {
    Connection* c = impl_->conn(id);
    if (!c) return;
    if (c->connected && c->version == Version::V5) impl_->send_disconnect(*c, rc::ServerShuttingDown);
    // Ended by the server, not by its DISCONNECT, while the broker runs on:
    // its will goes as for a lost connection, after its delay (a reconnect
    // within it still cancels it, MQTT-3.1.3-9). The removed listener's ACL
    // judges it now, while the reload has not replaced it: a will waiting
    // out its delay would otherwise be judged by another listener's.
    Session* s = impl_->session(c->slot);
    if (c->will && s) {
        if (impl_->authz && !impl_->authz->can_publish(impl_->client_info(*s), c->will->msg->topic())) {
            impl_->end_will(*s, *c->will, /*publish=*/false);
            c->will.reset();
        } else {
            c->will->judged = true;
        }
    }
    impl_->drop(*c, /*publish_will=*/true, /*close_transport=*/true);
    impl_->bury();
}

void Broker::reconfigure(const Config& cfg) {
    impl_->cfg = cfg;
    // What earlier CONNACKs granted stays in force for their connections.
    impl_->granted_receive_max = std::max(impl_->granted_receive_max, cfg.receive_maximum);
    impl_->granted_alias_max = std::max(impl_->granted_alias_max, cfg.topic_alias_maximum);
    // A v3.x CONNACK announces no limits: a raised maximum QoS or retain
    // applies to those connections too, and stays theirs through a later
    // lowering (which applies to connections made after it).
    for (auto& [id, c] : impl_->conns) {
        if (c.version == Version::V5) continue;
        c.granted_qos = std::max<uint8_t>(c.granted_qos, cfg.maximum_qos & 3);
        c.granted_retain = c.granted_retain || cfg.retain_available;
    }
}

// ---------------------------------------------------------------------------

Connection* Broker::Impl::conn(ConnId id) {
    Connection* c = conns.get(id);
    return c && !c->dead ? c : nullptr;
}

uint64_t Broker::Impl::wall_ms() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch()).count());
}

bool Broker::Impl::count_refusal(AppendStatus why) {
    ++stats.store_refusals;
    switch (why) {
    case AppendStatus::QuotaExceeded: ++stats.store_refused_quota; break;
    case AppendStatus::DiskFull: ++stats.store_refused_disk_full; break;
    case AppendStatus::TooLarge: ++stats.store_refused_too_large; break;
    case AppendStatus::IoError: ++stats.store_refused_io; break;
    case AppendStatus::Stored: break;
    }
    return false;
}

void Broker::Impl::bury() {
    for (ConnId id : graveyard) conns.erase(id);
    graveyard.clear();
}

bool Broker::Impl::send_packet(Connection& c, const Packet& p, uint64_t ticket) {
    std::vector<uint8_t> out;
    encode(p, c.version, out);
    // MQTT-3.1.2-24: nothing larger than the client's Maximum Packet Size
    // goes out (PUBLISH is checked, and skipped, in send_publish).
    if (c.client_max_packet != 0 && out.size() > c.client_max_packet) {
        packet_too_large_for_client(c, p);
        return false;
    }
    if (std::holds_alternative<Disconnect>(p)) {
        // The connection closes after it: behind held packets it goes out
        // after them (nothing may go before a CONNACK, MQTT-3.2.0-1), and
        // the close waits for it (HeldAcks::close_when_sent).
        if (c.held_acks > 0) acks.send_bytes(c, out, 0);
        else transport.send(c.id, out);
        return false;
    }
    if (ticket == 0 && !c.output_held) {
        transport.send(c.id, out);
        return false;
    }
    acks.send_bytes(c, out, ticket);
    return c.held_acks > 0;
}

// A reason string is optional (3.14.2.2.3): a DISCONNECT goes without it if
// that makes it fit, else not at all (its caller closes anyway). Any other
// packet the client cannot take closes the connection: a client that cannot
// receive its CONNACK was never connected (no will), one that cannot receive
// a SUBACK cannot follow the protocol. Acks and PINGRESP (at most 5 bytes)
// always fit a limit that let the CONNACK through, so callers that hold
// session references across them (resend_inflight) are not affected.
void Broker::Impl::packet_too_large_for_client(Connection& c, const Packet& p) {
    if (const auto* d = std::get_if<Disconnect>(&p)) {
        if (d->props.reason_string) send_packet(c, Disconnect{d->reason, {}});
        return;
    }
    const bool connack = std::holds_alternative<Connack>(p);
    drop(c, /*publish_will=*/!connack, /*close_transport=*/true);
}

namespace {
const char* disconnect_text(uint8_t reason) {
    switch (reason) {
    case rc::MalformedPacket: return "malformed packet";
    case rc::ProtocolError: return "protocol error";
    case rc::NotAuthorized: return "not authorized";
    case rc::ServerShuttingDown: return "server shutting down";
    case rc::KeepAliveTimeout: return "keep alive timeout";
    case rc::SessionTakenOver: return "session taken over";
    case rc::TopicAliasInvalid: return "topic alias invalid";
    case rc::PacketTooLarge: return "packet too large";
    case rc::ReceiveMaximumExceeded: return "receive maximum exceeded";
    case rc::QuotaExceeded: return "quota exceeded";
    case rc::PayloadFormatInvalid: return "payload format invalid";
    case rc::RetainNotSupported: return "retain not supported";
    case rc::QoSNotSupported: return "qos not supported";
    default: return "disconnected by the server";
    }
}
}  // namespace

void Broker::Impl::send_disconnect(Connection& c, uint8_t reason) {
    Disconnect d{reason, {}};
    d.props.reason_string = disconnect_text(reason);
    send_packet(c, d);
}

void Broker::Impl::protocol_error(Connection& c, uint8_t reason) {
    if (c.connected && c.version == Version::V5) send_disconnect(c, reason);
    drop(c, /*publish_will=*/true, /*close_transport=*/true);
}

// Frames packets out of the byte stream. Complete packets are decoded where
// they arrived; only a packet left incomplete is copied into the
// connection's buffer, and later receives append to it up to the size its
// fixed header announced (partial_append): no receive copies the bytes
// before it again. An idle connection holds no input buffer (nor the extras
// that hold it).
void Broker::Impl::process_input(Connection& c, std::span<const uint8_t> bytes) {
    if (auth_pending(c)) {
        // Held until the CONNECT's verdict (which heads the buffer), with a
        // bound: a client cannot park memory here while its check waits.
        InputBytes& held = c.extras()->inbuf;
        FixedHeader connect_hdr;
        peek_header(held, cfg.max_packet_size, connect_hdr);
        if (held.size() + bytes.size() > connect_hdr.total() + kMaxHeldAfterConnect) return drop(c, false, true);
        held.insert(held.end(), bytes.begin(), bytes.end());
        return;
    }
    if (input_deferred(c)) {   // behind what waits already (bytes received before reading stopped)
        c.extras()->inbuf.insert(c.extras()->inbuf.end(), bytes.begin(), bytes.end());
        return;
    }
    if (cfg.match_work_per_pass == 0) return frame_input(c, bytes, ~uint64_t(0));
    const ConnId id = c.id;
    const uint64_t before = match_work();
    frame_input(c, bytes, before + match_budget.left(id, cfg.match_work_per_pass));
    match_budget.charge(id, match_work() - before);
}

void Broker::Impl::frame_input(Connection& c, std::span<const uint8_t> bytes, uint64_t work_limit) {
    // Its work for this pass is done: everything waits, a partial packet
    // in the buffer included (the bytes follow it there).
    if (out_of_match_work(c, work_limit)) return defer_input(c, bytes);
    std::span<const uint8_t> in = bytes;
    while (c.extras() && !c.extras()->inbuf.empty() && !in.empty()) {
        bool ready = false, ok = true;
        in = in.subspan(fill_partial(c, in, ready, ok));
        if (!ok) return;
        if (ready && !complete_partial(c, in)) return;
    }
    size_t pos = 0;
    while (pos < in.size() && !c.dead) {
        Bytes rest = in.subspan(pos);
        if (out_of_match_work(c, work_limit)) return defer_input(c, rest);
        FixedHeader hdr;
        DecodeResult r = peek_header(rest, input_limit(c), hdr);
        if (r.status == DecodeStatus::Error) {
            protocol_error(c, r.reason);
            return;
        }
        if (r.status == DecodeStatus::Incomplete || rest.size() < hdr.total()) {
            // Left for the next receive: the header alone (at most 4 bytes),
            // or the start of a packet whose whole size is known.
            ConnectionExtras& x = c.open_extras();
            x.inbuf_need = r.status == DecodeStatus::Ok ? hdr.total() : 0;
            if (!partial_append(x, rest)) partial_alloc_failed(c);
            return;
        }
        if (!process_packet(c, rest.first(hdr.total()), hdr)) return;
        if (auth_pending(c)) return hold_for_verdict(c, rest);
        if (connect_waits(c)) return defer_input(c, rest);   // the CONNECT again, later
        pos += hdr.total();
    }
    if (!c.dead && c.extras() && c.extras()->empty()) c.close_extras();
}

// The partial packet is whole: handled, and its buffer kept for the next
// one where that pays (`rest`: what followed it in the same receive).
// False: stop reading this input (closed, or waiting for a verdict).
bool Broker::Impl::complete_partial(Connection& c, std::span<const uint8_t> rest) {
    // We own the bytes while the packet is handled; views into them stay valid.
    InputBytes packet;
    packet.swap(c.extras()->inbuf);
    c.extras()->inbuf_need = 0;
    const size_t capacity = packet.capacity();
    FixedHeader hdr;
    peek_header(packet, 0, hdr);   // checked when the buffer was sized
    if (!process_reassembled(c, packet, hdr)) return false;
    if (auth_pending(c) || connect_waits(c)) {
        c.extras()->inbuf.swap(packet);
        if (auth_pending(c)) hold_for_verdict(c, rest);
        else defer_input(c, rest);
        return false;
    }
    keep_for_next_partial(c, packet, capacity, rest);
    return true;
}

size_t Broker::Impl::in_place_rest(const Connection& c) const {
    if (c.dead || !c.connected || !c.extras() || auth_pending(c)) return 0;
    // Its matching work for this pass is used up: the rest comes through
    // on_data, which defers it.
    if (cfg.match_work_per_pass != 0 && match_budget.left(c.id, cfg.match_work_per_pass) == 0) return 0;
    const ConnectionExtras& x = *c.extras();
    return x.inbuf_need == 0 || x.inbuf.empty() ? 0 : x.inbuf_need - x.inbuf.size();
}

// The rest of a large packet can be received straight into its buffer
// (one copy, out of the kernel, in large receives) instead of through the
// receive buffers and partial_append. `limit` is what the socket holds, so
// the buffer still grows with bytes that arrived, not with sizes announced:
// up to four times them, so that a packet is rarely moved while it grows
// (the packet's own size once an eighth of it is here, see reserve_partial).
std::span<uint8_t> Broker::Impl::receive_target(Connection& c, size_t limit) {
    const size_t n = std::min(in_place_rest(c), limit);
    if (n < Broker::kInPlaceMin) return {};
    ConnectionExtras& x = *c.extras();
    const size_t have = x.inbuf.size();
    // Refused: the bytes come through the receive buffers instead, where
    // partial_append asks for less, or closes the client.
    if (!reserve_partial(x, std::min(x.inbuf_need, 4 * (have + n)))) return {};
    x.inbuf.resize(have + n);
    in_place = {c.id, have};
    return {x.inbuf.data() + have, n};
}

void Broker::Impl::received_in_place(Connection& c, size_t n) {
    ConnectionExtras& x = *c.extras();
    x.inbuf.resize(in_place.size + n);
    in_place = {};
    stats.partial_bytes_in_place += n;
    if (n == 0) return;
    if (x.inbuf.size() == x.inbuf_need) {
        const uint64_t before = match_work();
        const bool open = complete_partial(c, {});
        match_budget.charge(c.id, match_work() - before);
        if (!open) return;
    }
    if (!c.dead && c.extras() && c.extras()->empty()) c.close_extras();
}

// What waits in the input buffer (held for a verdict, or deferred) is
// handled as if it arrived now; what it leaves undone waits there again.
void Broker::Impl::replay_input(Connection& c) {
    InputBytes held;
    held.swap(c.extras()->inbuf);
    process_input(c, held);
    if (!c.dead) hint_in_place(c);
}

// The CONNECT went to the authenticator: it and everything after it wait in
// the buffer (the CONNECT first, so the verdict replays it) until the verdict.
void Broker::Impl::hold_for_verdict(Connection& c, std::span<const uint8_t> rest) {
    ConnectionExtras& x = c.open_extras();
    x.inbuf_need = 0;
    x.inbuf.insert(x.inbuf.end(), rest.begin(), rest.end());
}

// A publisher streaming large packets completes one in the middle of a
// receive and starts the next there, which the same receive cannot finish:
// that one is assembled in the buffer just handled instead of one grown
// afresh from 4 KiB (every growth moves what has arrived so far, about one
// more copy of each byte). Kept only for a packet at least half the
// buffer's size, so a large buffer never waits on a small packet.
void Broker::Impl::keep_for_next_partial(Connection& c, InputBytes& packet, size_t capacity,
                                         std::span<const uint8_t> rest) {
    if (c.dead || !c.extras() || !c.extras()->inbuf.empty() || c.extras()->inbuf.capacity() >= capacity) return;
    FixedHeader hdr;
    if (peek_header(rest, input_limit(c), hdr).status != DecodeStatus::Ok) return;
    if (hdr.total() <= rest.size() || hdr.total() < capacity / 2) return;
    packet.clear();
    // Grown now, while empty (nothing to move), but by one step at most:
    // the rest still follows the bytes that arrive. A buffer a message kept
    // (its payload) is replaced by one of the size this client just filled.
    if (hdr.total() > packet.capacity()) {
        try {
            packet.reserve(std::min(hdr.total(), 2 * capacity));
        } catch (const std::bad_alloc&) {
            return;   // the next packet grows a buffer of its own, as without this
        }
        ++stats.partial_buffers;
    }
    c.extras()->inbuf.swap(packet);
}

// A large PUBLISH is handled from a ReceivedPacket, so that its message can
// keep the payload where it is (make_message) instead of copying it. When
// no message kept it, the bytes come back to `packet` for the next one.
bool Broker::Impl::process_reassembled(Connection& c, InputBytes& packet, const FixedHeader& hdr) {
    if (!c.connected || hdr.type() != PacketType::Publish || packet.size() < kSharedPayloadMin)
        return process_packet(c, packet, hdr);
    ReceivedPacket* held = ReceivedPacket::hold(std::move(packet));
    receiving = held;
    const bool open = process_packet(c, held->bytes, hdr);
    receiving = nullptr;
    packet.clear();
    if (held->refs == 1) packet.swap(held->bytes);
    held->release();
    return open;
}

uint32_t Broker::Impl::input_limit(const Connection& c) const {
    // Before CONNECT is accepted nobody is known: a tighter bound.
    if (c.connected || cfg.max_connect_packet_size == 0) return cfg.max_packet_size;
    if (cfg.max_packet_size == 0) return cfg.max_connect_packet_size;
    return std::min(cfg.max_packet_size, cfg.max_connect_packet_size);
}

// The buffer grows geometrically up to the announced size rather than
// being allocated at that size at once: its memory follows the bytes that
// actually arrived (a 5-byte header announcing 1 MB costs no megabyte),
// and each byte is still moved only a bounded number of times (about once
// on average), never once per receive.
bool Broker::Impl::partial_append(ConnectionExtras& x, std::span<const uint8_t> bytes) {
    if (!reserve_partial(x, x.inbuf.size() + bytes.size())) return false;
    x.inbuf.insert(x.inbuf.end(), bytes.begin(), bytes.end());
    stats.partial_bytes_copied += bytes.size();
    return true;
}

// A buffer reserves the packet's announced size before that has arrived
// (resident memory still follows the bytes written into it). Where address
// space is short (a 32-bit gateway) or overcommit is strict, many clients
// announcing large packets can make that reservation fail: then this
// client is closed, not the broker aborted for everyone.
bool Broker::Impl::reserve_partial(ConnectionExtras& x, size_t want) {
    constexpr size_t kMinPartial = 4096;
    InputBytes& buf = x.inbuf;
    if (want <= buf.capacity()) return true;
    size_t cap = std::max(want, std::max(kMinPartial, 2 * buf.capacity()));
    // Never more than the packet; straight to its size once past half of it.
    if (x.inbuf_need != 0 && cap > x.inbuf_need / 2) cap = std::max(want, x.inbuf_need);
    // No retry with just `want`: growing by a receive at a time would move
    // the whole buffer for every receive.
    try {
        buf.reserve(cap);
    } catch (const std::bad_alloc&) {
        return false;
    }
    stats.partial_bytes_copied += buf.size();   // moved by the reallocation
    ++stats.partial_buffers;
    return true;
}

void Broker::Impl::partial_alloc_failed(Connection& c) {
    ++stats.partial_alloc_failures;
    protocol_error(c, rc::QuotaExceeded);
}

size_t Broker::Impl::fill_partial(Connection& c, std::span<const uint8_t> in, bool& ready, bool& ok) {
    ConnectionExtras& x = *c.extras();
    size_t took = 0;
    // The fixed header is at most 5 bytes: completed a byte at a time, so no
    // byte of the next packet is taken.
    while (x.inbuf_need == 0 && took < in.size()) {
        if (!partial_append(x, in.subspan(took++, 1))) {
            partial_alloc_failed(c);
            ok = false;
            return took;
        }
        FixedHeader hdr;
        DecodeResult r = peek_header(x.inbuf, input_limit(c), hdr);
        if (r.status == DecodeStatus::Error) {
            protocol_error(c, r.reason);
            ok = false;
            return took;
        }
        if (r.status == DecodeStatus::Ok) x.inbuf_need = hdr.total();
    }
    if (x.inbuf_need != 0) {
        const size_t n = std::min(in.size() - took, x.inbuf_need - x.inbuf.size());
        if (!partial_append(x, in.subspan(took, n))) {
            partial_alloc_failed(c);
            ok = false;
            return took;
        }
        took += n;
        ready = x.inbuf.size() == x.inbuf_need;
    }
    return took;
}

bool Broker::Impl::process_packet(Connection& c, std::span<const uint8_t> packet, const FixedHeader& hdr) {
    if (c.connected && hdr.type() == PacketType::Connect) {
        // A second CONNECT is a protocol error whatever it holds [MQTT-3.1.0-2];
        // decoding it first could answer with a CONNECT-only reason
        // (0x84 unsupported version), which a DISCONNECT may not carry.
        protocol_error(c, rc::ProtocolError);
        return false;
    }
    ++stats.packets_in;
    // Keep alive counts whole control packets (MQTT 5 3.1.2.10): a client trickling
    // the bytes of one large packet does not hold its buffer for ever.
    c.last_rx_ms = now_ms;
    // Most of the traffic is PUBLISH and its acks: decoded into a reused
    // packet, without the Packet variant (building either zeroes a few
    // hundred bytes of properties, which costs more than decoding a small
    // packet). In use already (were routing ever to feed input back in):
    // the general path below.
    if (c.connected && hdr.type() == PacketType::Publish && !publish_scratch.busy) {
        Publish& pub = publish_scratch.take(c.version);
        pub.packet_id = 0;   // decode sets it for QoS 1 and 2 only
        // A client repeats its topic: one equal to the last one routed
        // (every routed topic passed these checks, or was made by the
        // broker) is not checked for valid UTF-8 and wildcards again.
        const DecodeResult r = decode_publish(packet, hdr, c.version, pub, route_cache.last_topic());
        if (r.status == DecodeStatus::Ok) on_publish(c, pub, packet);
        publish_scratch.busy = false;
        if (r.status != DecodeStatus::Ok) protocol_error(c, r.reason);
        return !c.dead;
    }
    if (c.connected && is_ack(hdr.type()) && !ack_scratch.busy) {
        Ack& a = ack_scratch.take(c.version);
        a.reason = rc::Success;   // decode sets it only when the packet carries one
        const DecodeResult r = decode_ack(packet, hdr, c.version, a);
        if (r.status == DecodeStatus::Ok) on_ack(c, a);
        ack_scratch.busy = false;
        if (r.status != DecodeStatus::Ok) protocol_error(c, r.reason);
        return !c.dead;
    }
    Packet p;
    DecodeResult r = decode(packet, c.version, 0, p);   // size checked by peek_header
    if (r.status != DecodeStatus::Ok) {
        if (!c.connected && r.reason == rc::UnsupportedProtocolVersion) {
            // Answered in v3 form: a client of an unknown version understands that best.
            send_packet(c, Connack{false, rc::UnsupportedProtocolVersion, {}});
            drop(c, false, true);
            return false;
        }
        const uint8_t reason = r.status == DecodeStatus::Incomplete ? rc::MalformedPacket : r.reason;
        const Connect* connect = std::get_if<Connect>(&p);
        if (!c.connected && connect && connect->version == Version::V5 &&
            (reason == rc::MalformedPacket || reason == rc::ProtocolError)) {
            // A v5 client is told what was wrong with its CONNECT (MQTT 5
            // 4.13.1 allows it): a device's log shows why it cannot connect.
            c.version = Version::V5;
            send_packet(c, Connack{false, reason, {}});
            drop(c, false, true);
            return false;
        }
        protocol_error(c, reason);
        return false;
    }
    handle_packet(c, p);
    return !c.dead;
}

void Broker::Impl::handle_packet(Connection& c, Packet& p) {
    if (!c.connected) {
        // The first packet must be CONNECT; anything else closes silently.
        if (auto* cp = std::get_if<Connect>(&p)) on_connect(c, *cp);
        else drop(c, false, true);
        return;
    }
    std::visit([&](auto& pkt) {
        using T = std::decay_t<decltype(pkt)>;
        if constexpr (std::is_same_v<T, Publish>) {
            on_publish(c, pkt);
        } else if constexpr (std::is_same_v<T, Ack>) {
            on_ack(c, pkt);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
            on_subscribe(c, pkt);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
            on_unsubscribe(c, pkt);
        } else if constexpr (std::is_same_v<T, Pingreq>) {
            send_packet(c, Pingresp{});
        } else if constexpr (std::is_same_v<T, Disconnect>) {
            on_disconnect(c, pkt);
        } else {
            // A second CONNECT, AUTH (no method was agreed), or a server-only packet.
            protocol_error(c, rc::ProtocolError);
        }
    }, p);
}

void Broker::Impl::on_ack(Connection& c, const Ack& a) {
    if (a.type == PacketType::Pubrel) on_pubrel(c, a);
    else on_client_ack(c, a);
}

// Fires what is due (stale entries are recognised by the handlers and by
// timer_live when the heap sweeps them out; see timers.hpp).
void Broker::Impl::run_timers() {
    timers.run_due(
        now_ms,
        [this](const Timer& t) {
            switch (t.kind) {
            case TimerKind::ConnCheck: on_conn_timer(t.key, t.due_ms); break;
            case TimerKind::SessionExpiry: on_session_expiry_timer(t.slot, t.key); break;
            case TimerKind::WillDelay: on_will_delay_timer(t.slot, t.key); break;
            }
        },
        [this](const Timer& t) { return timer_live(t); });
}

bool Broker::Impl::timer_live(const Timer& t) {
    if (t.kind == TimerKind::ConnCheck) {
        Connection* c = conn(t.key);
        return c && c->timer_due_ms == t.due_ms;
    }
    Session* s = session(t.slot);
    if (!s || s->generation != t.key || s->conn != 0) return false;
    return t.kind == TimerKind::SessionExpiry || s->delayed_will != nullptr;
}

}  // namespace hato::broker
