#include "app/tls_layer.hpp"

#include "app/log.hpp"

namespace hato::app {

namespace {

// A client gets this long to finish its handshake; the broker's own CONNECT
// handling only starts once plaintext arrives.
constexpr uint64_t kHandshakeTimeoutMs = 10000;
constexpr uint64_t kFailureLogIntervalMs = 10000;

}  // namespace

void TlsLayer::set_contexts(std::vector<std::shared_ptr<net::TlsContext>> contexts) {
    contexts_ = std::move(contexts);
    any_tls_ = false;
    for (const auto& c : contexts_) any_tls_ |= c != nullptr;
    // Sessions of listeners that were TLS stay TLS until they close.
    any_tls_ |= !sessions_.empty();
}

void TlsLayer::on_open(net::ConnId id, int listener_index, const std::string& peer) {
    if (listener_index < 0 || size_t(listener_index) >= contexts_.size()) return;
    const std::shared_ptr<net::TlsContext>& ctx = contexts_[size_t(listener_index)];
    if (!ctx) return;
    Session s;
    s.conn = std::make_unique<net::TlsConn>(ctx);
    s.peer = peer;
    s.identity_as_username = ctx->settings().identity_as_username;
    s.handshake_deadline_ms = reactor_.now_ms() + kHandshakeTimeoutMs;
    sessions_.emplace(id, std::move(s));
}

bool TlsLayer::on_ciphertext(net::ConnId id, std::span<const uint8_t> data, std::vector<uint8_t>& plain) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return false;
    Session& s = it->second;
    if (s.closing) return false;
    bool was_established = s.conn->handshake_done();
    net::TlsConn::Status st = s.conn->on_ciphertext(data, plain);
    flush(id, s);
    if (st == net::TlsConn::Status::Failed) {
        if (was_established || s.conn->handshake_done())
            log_debug("TLS session with %s ended: %s", s.peer.c_str(), s.conn->error().c_str());
        else
            log_failure(s.peer, s.conn->error());
        fail(id, s);
        return !plain.empty();
    }
    return true;
}

void TlsLayer::send(net::ConnId id, std::span<const uint8_t> plain) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.closing) return;
    Session& s = it->second;
    if (s.conn->write(plain) == net::TlsConn::Status::Failed) {
        log_debug("TLS write to %s failed: %s", s.peer.c_str(), s.conn->error().c_str());
        fail(id, s);
        return;
    }
    flush(id, s);
}

void TlsLayer::close(net::ConnId id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
        reactor_.close(id, true);
        return;
    }
    Session& s = it->second;
    if (!s.closing) {
        s.conn->shutdown();
        flush(id, s);
        s.closing = true;
    }
    reactor_.close(id, true);
}

void TlsLayer::flush(net::ConnId id, Session& s) {
    std::vector<uint8_t>& out = s.conn->output();
    if (out.empty()) return;
    reactor_.send(id, out);
    // One large message must not leave its size behind in every TLS
    // connection it went to (a 1 MiB retained message, thousands of them).
    if (out.capacity() > kKeptOutput) std::vector<uint8_t>().swap(out);
    else out.clear();
}

void TlsLayer::fail(net::ConnId id, Session& s) {
    // Whatever alert wolfSSL produced was flushed; the broker hears of the
    // close through the reactor's on_close.
    s.closing = true;
    reactor_.close(id, true);
}

void TlsLayer::on_tick(uint64_t now_ms) {
    // Collected first: a close may call back into on_close and erase.
    std::vector<net::ConnId> expired;
    for (auto& [id, s] : sessions_)
        if (!s.closing && !s.conn->handshake_done() && now_ms >= s.handshake_deadline_ms) expired.push_back(id);
    for (net::ConnId id : expired) {
        auto it = sessions_.find(id);
        if (it == sessions_.end()) continue;
        log_failure(it->second.peer, "handshake timed out");
        fail(id, it->second);
    }
}

std::optional<std::string> TlsLayer::identity(net::ConnId id) const {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || !it->second.identity_as_username || !it->second.conn->handshake_done())
        return std::nullopt;
    return it->second.conn->peer_common_name();
}

bool TlsLayer::first_identity_use(net::ConnId id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.identity_given) return false;
    it->second.identity_given = true;
    return true;
}

void TlsLayer::log_failure(const std::string& peer, const std::string& error) {
    uint64_t now = reactor_.now_ms();
    LogState& st = failure_log_[error];
    if (st.last_ms != 0 && now - st.last_ms < kFailureLogIntervalMs) {
        ++st.held_back;
        return;
    }
    if (st.held_back)
        log_info("TLS handshake with %s failed: %s (and %llu more like it)", peer.c_str(), error.c_str(),
                 static_cast<unsigned long long>(st.held_back));
    else
        log_info("TLS handshake with %s failed: %s", peer.c_str(), error.c_str());
    st.last_ms = now == 0 ? 1 : now;
    st.held_back = 0;
}

}  // namespace hato::app
