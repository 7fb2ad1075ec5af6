// The layers a client connection's bytes pass through, per listener:
//   mqtt           reactor <-> broker
//   mqtt + TLS     reactor <-> TLS <-> broker
//   websockets     reactor <-> (TLS) <-> WebSocket <-> broker
// The TLS layer encrypts and hands the ciphertext to the reactor at once (so
// queued_bytes counts it); the WebSocket layer frames and hands the bytes to
// TLS or the reactor likewise. The bridges' virtual local connections
// (BridgeRunner::kLocalBit ids) never reach the reactor.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "app/report_throttle.hpp"
#include "app/tls_layer.hpp"
#include "app/ws_layer.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"

namespace hato::app {

// The broker's view of the network: the reactor, minus everything else.
class ReactorTransport final : public broker::Transport {
public:
    ReactorTransport(net::Reactor& reactor, TlsLayer& tls, WsLayer& ws) : reactor_(reactor), tls_(tls), ws_(ws) {}
    void send(broker::ConnId id, std::span<const uint8_t> bytes) override;
    void send_low_priority(broker::ConnId id, std::span<const uint8_t> bytes) override;
    // Plain TCP only: TLS and WebSocket frames are made of copies anyway.
    void send_kept(broker::ConnId id, std::span<const uint8_t> bytes, void* obj, void (*release)(void*)) override;
    // What the WebSocket layer sends and closes goes here.
    void send_below_ws(broker::ConnId id, std::span<const uint8_t> bytes, bool low_priority);
    void close_below_ws(broker::ConnId id);
    size_t queued_bytes(broker::ConnId id) const override;
    // A TLS connection pauses with its socket: no ciphertext, no plaintext.
    void set_reading(broker::ConnId id, bool on) override;
    void set_intake(bool on) override { reactor_.set_intake(on); }
    void expect_in_place(broker::ConnId id) override;
    void pass_again() override { reactor_.pass_again(); }
    void slow_consumer(broker::ConnId, std::string_view client_id, bool started, uint64_t dropped) override;
    void close(broker::ConnId id) override;

    // The bridges' virtual local connections (set when bridges run).
    struct LocalRoutes {
        std::function<void(broker::ConnId, std::span<const uint8_t>)> send;
        std::function<void(broker::ConnId)> close;
        // Output the bridge has not yet got onto its upstream socket: a slow
        // WAN holds the broker's sends to the bridge like a slow client's.
        std::function<size_t(broker::ConnId)> queued;
    };
    LocalRoutes bridges;

private:
    // A reactor socket whose bytes are the MQTT stream itself (not a
    // bridge's local end, not TLS or WebSocket frames).
    bool plain_tcp(broker::ConnId id) const;
    net::Reactor& reactor_;
    TlsLayer& tls_;
    WsLayer& ws_;
    ReportThrottle bridge_slow_{60000};   // bridge slow-consumer lines, with their QoS 0 drops
};

class TransportStack {
public:
    explicit TransportStack(net::Reactor& reactor);
    TransportStack(const TransportStack&) = delete;
    TransportStack& operator=(const TransportStack&) = delete;

    TlsLayer& tls() { return tls_; }
    ReactorTransport& transport() { return transport_; }

    // protocol = "websockets" listeners (at start and on reload): the upgrade
    // must complete within connect_timeout_ms.
    void configure_ws(const config::AppConfig& cfg);

    void on_open(net::ConnId id, int listener_index, const std::string& peer);
    void on_close(net::ConnId id);
    void on_tick(uint64_t now_ms);

    // `data` from the socket becomes the MQTT bytes it carries (decrypted,
    // unframed; valid until the next call). False: nothing for the broker
    // yet, or the connection is closing. `identity` is set once, with the
    // first MQTT bytes of a TLS connection whose client certificate names
    // the user (identity_as_username).
    bool unwrap(net::ConnId id, std::span<const uint8_t>& data, std::optional<std::string>& identity);
    // No TLS or WebSocket layer: what the socket carries is the MQTT stream.
    bool plain(net::ConnId id) const { return !tls_.owns(id) && !ws_.owns(id); }

private:
    TlsLayer tls_;
    WsLayer ws_;
    ReactorTransport transport_;
    std::vector<uint8_t> plaintext_;   // decrypted input of the current call, reused
    std::vector<uint8_t> ws_payload_;  // MQTT bytes unwrapped from WebSocket frames, reused
};

}  // namespace hato::app
