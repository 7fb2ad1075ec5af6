// TLS between the reactor and the broker: per TLS listener a TlsContext, per
// connection a TlsConn. Ciphertext from the reactor is decrypted here before
// the broker sees it; what the broker sends is encrypted here and handed to
// the reactor at once, so the reactor's queued_bytes (back-pressure) counts
// all TLS output.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/reactor.hpp"
#include "net/tls.hpp"

namespace hato::app {

class TlsLayer {
public:
    explicit TlsLayer(net::Reactor& reactor) : reactor_(reactor) {}

    // Index = listener index; null for plain listeners. Replacing them (reload)
    // affects new connections only: open ones hold their context.
    void set_contexts(std::vector<std::shared_ptr<net::TlsContext>> contexts);
    bool any() const { return any_tls_; }

    // Starts a TLS session when `listener_index` is a TLS listener.
    void on_open(net::ConnId id, int listener_index, const std::string& peer);
    bool owns(net::ConnId id) const { return any_tls_ && sessions_.count(id) != 0; }

    // Ciphertext in; decrypted bytes appended to `plain`. False: nothing
    // for the broker, and the session failed (handshake or record error, or
    // the peer's close_notify) and the connection is being closed. A session
    // that ends after records that decrypted (PUBLISH, DISCONNECT, then
    // close_notify in one read) returns true with them: closing, but the
    // broker still gets what the peer sent before (a DISCONNECT: no will).
    bool on_ciphertext(net::ConnId id, std::span<const uint8_t> data, std::vector<uint8_t>& plain);
    static constexpr size_t kKeptOutput = 64 * 1024;   // a connection's ciphertext buffer kept between sends
    // Plaintext from the broker out (encrypted, queued on the reactor).
    void send(net::ConnId id, std::span<const uint8_t> plain);
    // close_notify, then the reactor's flushing close.
    void close(net::ConnId id);
    void on_close(net::ConnId id) { sessions_.erase(id); }
    // Closes connections still handshaking after the timeout.
    void on_tick(uint64_t now_ms);

    // The verified client certificate's CN when the connection's listener
    // has identity_as_username; nullopt otherwise.
    std::optional<std::string> identity(net::ConnId id) const;
    // True the first time it is asked for `id` (the identity goes to the
    // broker once).
    bool first_identity_use(net::ConnId id);

private:
    struct Session {
        std::unique_ptr<net::TlsConn> conn;
        std::string peer;
        bool identity_as_username = false;
        bool closing = false;
        bool identity_given = false;
        uint64_t handshake_deadline_ms = 0;
    };

    void flush(net::ConnId id, Session& s);
    void fail(net::ConnId id, Session& s);
    // At most one line per distinct message per interval, with a count of the
    // ones held back: a port scan or a plain-TCP client loop must not flood.
    void log_failure(const std::string& peer, const std::string& error);

    net::Reactor& reactor_;
    std::vector<std::shared_ptr<net::TlsContext>> contexts_;
    bool any_tls_ = false;
    std::unordered_map<net::ConnId, Session> sessions_;
    struct LogState {
        uint64_t last_ms = 0;
        uint64_t held_back = 0;
    };
    std::map<std::string, LogState> failure_log_;
};

}  // namespace hato::app
