#include "app/ws_layer.hpp"

#include <algorithm>

#include "app/log.hpp"
#include "net/http.hpp"

namespace hato::app {

namespace {

constexpr uint64_t kRefusalLogIntervalMs = 10000;

// "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" -> "::1".
std::string address_of(const std::string& peer) {
    if (!peer.empty() && peer[0] == '[') return peer.substr(1, peer.find(']') - 1);
    return peer.substr(0, peer.rfind(':'));
}

// A header value for the log: at most 200 characters, control bytes as '?'.
std::string printable(const std::string& s) {
    std::string out = s.substr(0, 200);
    for (char& ch : out)
        if (static_cast<unsigned char>(ch) < 32 || ch == 127) ch = '?';
    return out;
}

}  // namespace

void WsLayer::configure(std::vector<WsListener> listeners, uint64_t handshake_timeout_ms, uint64_t max_output) {
    listeners_.clear();
    for (WsListener& l : listeners)
        listeners_.push_back(l.enabled ? std::make_shared<const WsListener>(std::move(l)) : nullptr);
    handshake_timeout_ms_ = handshake_timeout_ms;
    max_output_ = max_output;
}

void WsLayer::on_open(net::ConnId id, int listener_index, const std::string& peer) {
    if (listener_index < 0 || size_t(listener_index) >= listeners_.size()) return;
    const std::shared_ptr<const WsListener>& l = listeners_[size_t(listener_index)];
    if (!l) return;
    Conn c;
    c.listener = l;
    c.peer = peer;
    c.deadline_ms = reactor_.now_ms() + handshake_timeout_ms_;
    conns_.emplace(id, std::move(c));
}

bool WsLayer::on_bytes(net::ConnId id, std::span<const uint8_t> data, std::vector<uint8_t>& mqtt) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return false;
    Conn& c = it->second;
    if (c.closing) return false;
    return c.upgraded ? on_frames(id, c, data, mqtt) : on_request(id, c, data, mqtt);
}

bool WsLayer::on_request(net::ConnId id, Conn& c, std::span<const uint8_t> data, std::vector<uint8_t>& mqtt) {
    size_t before = c.request.size();
    // Never more than the limit plus one byte is kept: enough to refuse.
    size_t take = std::min(data.size(), net::ws::kMaxHandshakeBytes + 1 - std::min(before, net::ws::kMaxHandshakeBytes));
    c.request.append(reinterpret_cast<const char*>(data.data()), take);
    // Parsed again only once the blank line may be there (or the limit is
    // passed): a request dribbled in byte by byte costs no quadratic work.
    if (before != 0 && c.request.size() <= net::ws::kMaxHandshakeBytes && !net::http::head_may_end(c.request, before))
        return true;
    net::ws::Upgrade u = net::ws::parse_upgrade(c.request, c.listener->rules);
    if (u.status == net::ws::Upgrade::Status::Incomplete) return true;
    send_text(id, u.response);
    if (u.status == net::ws::Upgrade::Status::Rejected) {
        log_refusal(c.peer, u.error);
        finish(id, c);
        return false;
    }
    // A proxy's X-Forwarded-For names the real client; anyone else's is a
    // claim, and not logged.
    const std::vector<std::string>& proxies = c.listener->trusted_proxies;
    if (!u.forwarded_for.empty() && std::find(proxies.begin(), proxies.end(), address_of(c.peer)) != proxies.end())
        log_info("WebSocket connection %llu from %s for X-Forwarded-For: %s", static_cast<unsigned long long>(id),
                 c.peer.c_str(), printable(u.forwarded_for).c_str());
    else
        log_debug("WebSocket upgrade from %s (subprotocol %s)", c.peer.c_str(), u.subprotocol.c_str());
    c.upgraded = true;
    // Frames the client sent right behind its request: from this read's
    // bytes (the earlier reads held only the request).
    size_t used_here = u.consumed - before;
    c.request.clear();
    c.request.shrink_to_fit();
    if (used_here >= data.size()) return true;
    return on_frames(id, c, data.subspan(used_here), mqtt);
}

bool WsLayer::on_frames(net::ConnId id, Conn& c, std::span<const uint8_t> data, std::vector<uint8_t>& mqtt) {
    out_.clear();
    // Pongs only while the client reads what it is sent: the broker's output
    // limit does not see them (this input may carry no MQTT bytes at all).
    c.frames.answer_pings(reactor_.queued_bytes(id) <= (max_output_ != 0 ? max_output_ : kPongBacklog));
    net::ws::FrameReader::Status st = c.frames.feed(data, mqtt, out_);
    if (!out_.empty()) send_raw(id, out_);
    if (st == net::ws::FrameReader::Status::Open) return true;
    if (st == net::ws::FrameReader::Status::Failed)
        log_refusal(c.peer, "WebSocket closed with " + std::to_string(c.frames.close_code()) + ": " +
                                c.frames.error());
    else
        log_debug("WebSocket close from %s (code %u)", c.peer.c_str(), unsigned(c.frames.close_code()));
    // MQTT bytes that arrived before the close frame still count (a
    // DISCONNECT right before it must reach the broker); the reactor's
    // close follows, so the broker then sees the connection end.
    finish(id, c);
    return !mqtt.empty();
}

void WsLayer::send(net::ConnId id, std::span<const uint8_t> bytes, bool low_priority) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.closing || !it->second.upgraded) return;
    out_.clear();
    net::ws::encode_frame(net::ws::Opcode::Binary, bytes, out_);
    send_(id, out_, low_priority);
}

void WsLayer::close(net::ConnId id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return close_(id);
    Conn& c = it->second;
    if (!c.closing) {
        if (c.upgraded) {
            out_.clear();
            net::ws::encode_close(net::ws::close_code::kNormal, {}, out_);
            send_raw(id, out_);
        } else {
            send_text(id, net::ws::http_error(408, "no complete WebSocket upgrade in time"));
        }
    }
    finish(id, c);
}

void WsLayer::finish(net::ConnId id, Conn& c) {
    if (c.closing) return;
    c.closing = true;
    close_(id);
}

void WsLayer::on_tick(uint64_t now_ms) {
    if (conns_.empty()) return;
    std::vector<net::ConnId> expired;
    for (auto& [id, c] : conns_)
        if (!c.closing && !c.upgraded && now_ms >= c.deadline_ms) expired.push_back(id);
    for (net::ConnId id : expired) {
        auto it = conns_.find(id);
        if (it == conns_.end()) continue;
        log_refusal(it->second.peer, "WebSocket upgrade timed out");
        close(id);
    }
}

// At most one line per distinct reason per interval: a scanner must not
// flood the log.
void WsLayer::log_refusal(const std::string& peer, const std::string& why) {
    uint64_t now = reactor_.now_ms();
    LogState& st = refusal_log_[why];
    if (st.last_ms != 0 && now - st.last_ms < kRefusalLogIntervalMs) {
        ++st.held_back;
        return;
    }
    if (st.held_back)
        log_info("WebSocket connection from %s refused: %s (and %llu more like it)", peer.c_str(), why.c_str(),
                 static_cast<unsigned long long>(st.held_back));
    else
        log_info("WebSocket connection from %s refused: %s", peer.c_str(), why.c_str());
    st.last_ms = now == 0 ? 1 : now;
    st.held_back = 0;
}

}  // namespace hato::app
