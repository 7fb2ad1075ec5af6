#include "app/transport_stack.hpp"

#include <algorithm>

#include "app/bridge_runner.hpp"
#include "app/log.hpp"
#include "broker/log_sink.hpp"

namespace hato::app {

void ReactorTransport::send(broker::ConnId id, std::span<const uint8_t> bytes) {
    if (BridgeRunner::is_local_id(id)) return bridges.send(id, bytes);
    if (ws_.owns(id)) ws_.send(id, bytes, false);
    else send_below_ws(id, bytes, false);
}

void ReactorTransport::send_low_priority(broker::ConnId id, std::span<const uint8_t> bytes) {
    if (BridgeRunner::is_local_id(id)) return bridges.send(id, bytes);
    if (ws_.owns(id)) ws_.send(id, bytes, true);
    else send_below_ws(id, bytes, true);
}

bool ReactorTransport::plain_tcp(broker::ConnId id) const {
    return !BridgeRunner::is_local_id(id) && !ws_.owns(id) && !tls_.owns(id);
}

void ReactorTransport::send_kept(broker::ConnId id, std::span<const uint8_t> bytes, void* obj,
                                 void (*release)(void*)) {
    if (!plain_tcp(id)) {
        send(id, bytes);
        return release(obj);
    }
    reactor_.send_kept(id, {bytes, obj, release});
}

void ReactorTransport::send_below_ws(broker::ConnId id, std::span<const uint8_t> bytes, bool low_priority) {
    if (tls_.owns(id)) tls_.send(id, bytes);
    else if (low_priority) reactor_.send_low_priority(id, bytes);
    else reactor_.send(id, bytes);
}

void ReactorTransport::close_below_ws(broker::ConnId id) {
    if (tls_.owns(id)) tls_.close(id);
    else reactor_.close(id, true);
}

size_t ReactorTransport::queued_bytes(broker::ConnId id) const {
    if (BridgeRunner::is_local_id(id)) return bridges.queued ? bridges.queued(id) : 0;
    return reactor_.queued_bytes(id);
}

void ReactorTransport::set_reading(broker::ConnId id, bool on) {
    if (!BridgeRunner::is_local_id(id)) reactor_.set_reading(id, on);
}

void ReactorTransport::expect_in_place(broker::ConnId id) {
    // TLS and WebSocket bytes are not the packet's: they cannot go in place.
    if (plain_tcp(id)) reactor_.expect_in_place(id);
}

void ReactorTransport::slow_consumer(broker::ConnId id, std::string_view client_id, bool started, uint64_t dropped) {
    const std::string shown = broker::shown_client_id(client_id);
    if (BridgeRunner::is_local_id(id)) {
        // A bridge on a WAN slower than its traffic starts and ends an
        // episode at every fill of its output: a line a minute at most (the
        // log is on flash), with what was dropped since the last one.
        bridge_slow_.add(dropped);
        const std::optional<uint64_t> earlier = started ? bridge_slow_.due(reactor_.now_ms()) : std::nullopt;
        if (!earlier) return;
        log_warn("'%s': the upstream link is slower than what is bridged: its QoS 0 messages are dropped while "
                 "the link catches up (%llu dropped in earlier episodes since the last report)",
                 shown.c_str(), static_cast<unsigned long long>(*earlier));
        return;
    }
    if (started)
        log_warn("client '%s' is a slow consumer: its QoS 0 messages are dropped until it catches up",
                 shown.c_str());
    else
        log_info("client '%s' caught up or left: %llu QoS 0 messages dropped for it", shown.c_str(),
                 static_cast<unsigned long long>(dropped));
}

void ReactorTransport::close(broker::ConnId id) {
    if (BridgeRunner::is_local_id(id)) return bridges.close(id);
    if (ws_.owns(id)) ws_.close(id);
    else close_below_ws(id);
}

TransportStack::TransportStack(net::Reactor& reactor)
    : tls_(reactor),
      ws_(reactor,
          [this](net::ConnId id, std::span<const uint8_t> bytes, bool low) {
              transport_.send_below_ws(id, bytes, low);
          },
          [this](net::ConnId id) { transport_.close_below_ws(id); }),
      transport_(reactor, tls_, ws_) {}

void TransportStack::configure_ws(const config::AppConfig& cfg) {
    std::vector<WsListener> ws(cfg.listeners.size());
    for (size_t i = 0; i < cfg.listeners.size(); ++i) {
        const config::Listener& l = cfg.listeners[i];
        ws[i].enabled = l.protocol == config::ListenerProtocol::WebSockets;
        ws[i].rules.path = l.path;
        ws[i].rules.allowed_origins = l.allowed_origins;
        ws[i].trusted_proxies = l.trusted_proxies;
    }
    ws_.configure(std::move(ws), cfg.broker.connect_timeout_ms, cfg.broker.max_output_bytes);
}

void TransportStack::on_open(net::ConnId id, int listener_index, const std::string& peer) {
    tls_.on_open(id, listener_index, peer);
    ws_.on_open(id, listener_index, peer);
}

void TransportStack::on_close(net::ConnId id) {
    tls_.on_close(id);
    ws_.on_close(id);
}

void TransportStack::on_tick(uint64_t now_ms) {
    tls_.on_tick(now_ms);
    ws_.on_tick(now_ms);
}

bool TransportStack::unwrap(net::ConnId id, std::span<const uint8_t>& data, std::optional<std::string>& identity) {
    if (tls_.owns(id)) {
        plaintext_.clear();
        if (!tls_.on_ciphertext(id, data, plaintext_) || plaintext_.empty()) return false;
        std::optional<std::string> verified = tls_.identity(id);
        if (verified && tls_.first_identity_use(id)) identity = std::move(verified);
        data = plaintext_;
    }
    if (ws_.owns(id)) {
        // WebSocket frames (over TLS for wss) in, the MQTT stream out.
        ws_payload_.clear();
        if (!ws_.on_bytes(id, data, ws_payload_) || ws_payload_.empty()) return false;
        data = ws_payload_;
    }
    return true;
}

}  // namespace hato::app
