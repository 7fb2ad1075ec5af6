// Broker events: connection lifecycle, input framing, packet dispatch, timers,
// group-commit points.
#include "broker/broker_impl.hpp"

#include <chrono>

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

const Stats& Broker::stats() const { return impl_->stats; }

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
    Connection* c = impl_->conn(id);
    if (c) impl_->process_input(*c, bytes);
    impl_->bury();
}

void Broker::on_close(ConnId id) {
    Connection* c = impl_->conn(id);
    if (c) impl_->drop(*c, /*publish_will=*/true, /*close_transport=*/false);
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
    impl_->release_acks();
    impl_->bury();
}

void Broker::on_pass_end() {
    impl_->release_acks();
    impl_->check_blocked();
    impl_->bury();
}

void Broker::on_durable(uint64_t) {
    // The ticket itself is read back from persist.durable_ticket(), the one
    // source of truth; the argument only says "something became durable".
    impl_->release_acks();
    impl_->bury();
}

void Broker::shutdown() {
    std::vector<ConnId> ids;
    ids.reserve(impl_->conns.size());
    for (auto& [id, c] : impl_->conns) ids.push_back(id);
    for (ConnId id : ids) {
        Connection* c = impl_->conn(id);
        if (!c) continue;
        if (c->connected && c->version == Version::V5)
            impl_->send_disconnect(*c, rc::ServerShuttingDown);
        // Sessions stay persisted; a shutdown is not the client's fault, so no will.
        impl_->drop(*c, /*publish_will=*/false, /*close_transport=*/true);
    }
    impl_->bury();
}

// ---------------------------------------------------------------------------

Connection* Broker::Impl::conn(ConnId id) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second.dead) return nullptr;
    return &it->second;
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
    // "Can never fit" wins: retrying would not help.
    if (op_refusal != AppendStatus::TooLarge) op_refusal = why;
    return false;
}

void Broker::Impl::bury() {
    for (ConnId id : graveyard) conns.erase(id);
    graveyard.clear();
}

void Broker::Impl::send_packet(Connection& c, const Packet& p) {
    std::vector<uint8_t> out;
    encode(p, c.version, out);
    transport.send(c.id, out);
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

// Frames packets out of the byte stream. Bytes are copied into the
// connection's buffer only when a packet is left incomplete, so an idle
// connection holds no input buffer (nor the extras that hold it).
void Broker::Impl::process_input(Connection& c, std::span<const uint8_t> bytes) {
    std::vector<uint8_t> pending;
    std::span<const uint8_t> in = bytes;
    if (c.extras && !c.extras->inbuf.empty()) {
        std::vector<uint8_t>& inbuf = c.extras->inbuf;
        inbuf.insert(inbuf.end(), bytes.begin(), bytes.end());
        pending.swap(inbuf);   // we own the bytes while parsing; views stay valid
        in = pending;
    }
    c.last_rx_ms = now_ms;
    size_t pos = 0;
    while (pos < in.size() && !c.dead) {
        Bytes rest = in.subspan(pos);
        FixedHeader hdr;
        DecodeResult r = peek_header(rest, cfg.max_packet_size, hdr);
        if (r.status == DecodeStatus::Incomplete) break;
        if (r.status == DecodeStatus::Error) {
            protocol_error(c, r.reason);
            return;
        }
        if (rest.size() < hdr.total()) break;   // body still to come
        if (c.connected && hdr.type() == PacketType::Connect) {
            // A second CONNECT is a protocol error whatever it holds [MQTT-3.1.0-2];
            // decoding it first could answer with a CONNECT-only reason
            // (0x84 unsupported version), which a DISCONNECT may not carry.
            protocol_error(c, rc::ProtocolError);
            return;
        }
        Packet p;
        r = decode(rest.first(hdr.total()), c.version, cfg.max_packet_size, p);
        if (r.status != DecodeStatus::Ok) {
            if (!c.connected && r.reason == rc::UnsupportedProtocolVersion) {
                // Answered in v3 form: a client of an unknown version understands that best.
                send_packet(c, Connack{false, rc::UnsupportedProtocolVersion, {}});
                drop(c, false, true);
                return;
            }
            protocol_error(c, r.status == DecodeStatus::Incomplete ? rc::MalformedPacket : r.reason);
            return;
        }
        pos += r.consumed;
        handle_packet(c, p);
    }
    if (c.dead) return;
    if (pos < in.size()) c.open_extras().inbuf.assign(in.begin() + pos, in.end());
    else if (c.extras && c.extras->empty()) c.extras.reset();
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
            if (pkt.type == PacketType::Pubrel) on_pubrel(c, pkt);
            else on_client_ack(c, pkt);
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

// Timers live in one min-heap; entries are never removed, a stale one is
// recognised when it fires (connection gone, session generation changed,
// activity since) and ignored or re-armed. Ticks cost O(fired * log n), not
// a scan of every connection.
void Broker::Impl::run_timers() {
    while (!timers.empty() && timers.top().due_ms <= now_ms) {
        Timer t = timers.top();
        timers.pop();
        switch (t.kind) {
        case TimerKind::ConnCheck: on_conn_timer(t.key, t.due_ms); break;
        case TimerKind::SessionExpiry: on_session_expiry_timer(t.slot, t.key); break;
        case TimerKind::WillDelay: on_will_delay_timer(t.slot, t.key); break;
        }
    }
}

}  // namespace hato::broker
