// WebSockets between the transport below (the reactor, or TLS for wss) and
// the broker: the HTTP upgrade, then frames in -> the MQTT byte stream for
// Broker::on_data, and the broker's output -> binary frames. The broker never
// knows a connection is a WebSocket. Protocol work is in net/websocket
// (pure codec); this class holds the per-connection state and the timeouts.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/reactor.hpp"
#include "net/websocket.hpp"

namespace hato::app {

struct WsListener {
    bool enabled = false;
    net::ws::UpgradeRules rules;
    std::vector<std::string> trusted_proxies;  // peer addresses whose X-Forwarded-For is logged
};

class WsLayer {
public:
    // Where framed bytes go: the reactor or the TLS layer, per connection.
    using SendFn = std::function<void(net::ConnId, std::span<const uint8_t>, bool low_priority)>;
    using CloseFn = std::function<void(net::ConnId)>;

    WsLayer(net::Reactor& reactor, SendFn send, CloseFn close) : reactor_(reactor), send_(send), close_(close) {}

    // Index = listener index. `handshake_timeout_ms`: the upgrade must be
    // complete this long after accept; `max_output`: max_output_bytes.
    void configure(std::vector<WsListener> listeners, uint64_t handshake_timeout_ms, uint64_t max_output);

    void on_open(net::ConnId id, int listener_index, const std::string& peer);
    // Only connections opened on a WebSocket listener: they stay WebSocket
    // until they close, whatever a reload does to their listener.
    bool owns(net::ConnId id) const { return !conns_.empty() && conns_.count(id) != 0; }

    // Bytes from below in; the MQTT bytes they carry appended to `mqtt`.
    // False: the connection is closing (handshake refused, close frame or a
    // protocol error) and nothing goes to the broker.
    bool on_bytes(net::ConnId id, std::span<const uint8_t> data, std::vector<uint8_t>& mqtt);
    // The broker's output, as one binary frame.
    void send(net::ConnId id, std::span<const uint8_t> bytes, bool low_priority);
    // The broker closes: a close frame (1000) first, or a 408 while the
    // upgrade is still pending.
    void close(net::ConnId id);
    void on_close(net::ConnId id) { conns_.erase(id); }
    // Closes connections whose upgrade did not complete in time.
    void on_tick(uint64_t now_ms);

private:
    struct Conn {
        bool upgraded = false;
        bool closing = false;
        std::string request;  // the upgrade request so far
        net::ws::FrameReader frames;
        // Its listener's rules when it connected: a reload replaces the
        // table, and an upgrade still pending keeps the rules it began with.
        std::shared_ptr<const WsListener> listener;
        std::string peer;
        uint64_t deadline_ms = 0;
    };

    bool on_request(net::ConnId id, Conn& c, std::span<const uint8_t> data, std::vector<uint8_t>& mqtt);
    bool on_frames(net::ConnId id, Conn& c, std::span<const uint8_t> data, std::vector<uint8_t>& mqtt);
    void send_raw(net::ConnId id, std::span<const uint8_t> bytes) { send_(id, bytes, false); }
    void send_text(net::ConnId id, const std::string& s) {
        send_raw(id, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    }
    void finish(net::ConnId id, Conn& c);
    void log_refusal(const std::string& peer, const std::string& why);

    net::Reactor& reactor_;
    SendFn send_;
    CloseFn close_;
    std::vector<std::shared_ptr<const WsListener>> listeners_;   // null: not a WebSocket listener
    uint64_t handshake_timeout_ms_ = 10000;
    uint64_t max_output_ = 0;   // [limits] max_output_bytes: above it, pings get no pong
    static constexpr uint64_t kPongBacklog = 1 << 20;   // the same without max_output_bytes
    std::unordered_map<net::ConnId, Conn> conns_;
    std::vector<uint8_t> out_;  // one frame being built, reused
    struct LogState {
        uint64_t last_ms = 0;
        uint64_t held_back = 0;
    };
    std::map<std::string, LogState> refusal_log_;
};

}  // namespace hato::app
