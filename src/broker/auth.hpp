// The authentication hook. The broker asks it once per CONNECT. A check may
// be slow (a password hash): the authenticator then answers later, through
// Broker::on_auth_result, while the broker serves other clients and holds
// the connection's input. The implementations live in src/auth (password
// file, ACL file); the broker owns these interfaces so that it depends on no
// implementation. Enhanced authentication (the v5 AUTH exchange) has no hook
// here: the broker refuses a CONNECT that names an Authentication Method
// with 0x8C (bad authentication method).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "broker/broker.hpp"
#include "mqtt/packet.hpp"

namespace hato::broker {

// What a CONNECT offers as credentials. Views are valid only during start().
struct AuthRequest {
    ConnId conn = 0;
    uint64_t id = 0;                               // echoed by Broker::on_auth_result
    std::optional<std::string_view> username;      // as the CONNECT carries it
    std::optional<std::span<const uint8_t>> password;
    std::string_view client_id;
    int listener_index = 0;
    // The TLS client certificate's identity (identity_as_username listeners):
    // already verified by the handshake.
    std::optional<std::string_view> identity;
};

struct AuthVerdict {
    uint8_t reason = mqtt::rc::Success;   // else the CONNACK reason code
    // The user name was proven (a password checked, or a certificate):
    // only then do the ACL's `user` rules apply to it.
    bool user_verified = false;
};

class Authenticator {
public:
    virtual ~Authenticator() = default;
    // The verdict now, or nullopt when it comes later through
    // Broker::on_auth_result(req.conn, req.id, verdict).
    virtual std::optional<AuthVerdict> start(const AuthRequest& req) = 0;
    // The connection of a pending request is gone: its verdict is not wanted.
    virtual void cancel(ConnId /*conn*/, uint64_t /*id*/) {}
};

// The default when nothing is configured (embedding, tests): everyone may
// connect, and the user name is taken as given.
class AllowAll final : public Authenticator {
public:
    std::optional<AuthVerdict> start(const AuthRequest&) override {
        return AuthVerdict{mqtt::rc::Success, true};
    }
};

// --- Authorization (ACL) ---------------------------------------------------

// Per-session memo of ACL answers: owned by the broker (one per session),
// filled and invalidated by the Authorizer, so a topic costs one hash lookup
// after its first message. The broker empties it when a client (re)connects.
struct AclCache {
    struct Hash {
        using is_transparent = void;  // find() by string_view, no allocation
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    uint64_t generation = 0;  // the Authorizer's rules this memo was filled from
    std::unordered_map<std::string, uint8_t, Hash, std::equal_to<>> topics;
};

// Who is asking: the user name the session logged in with (or the TLS
// certificate identity) and the client id.
struct ClientInfo {
    std::optional<std::string_view> username;
    std::string_view client_id;
    AclCache* cache = nullptr;  // null: no memo
    // The listener of the session's latest CONNECT (a listener may have an
    // ACL of its own); -1 for a session not connected since the start.
    int listener_index = -1;
};

class Authorizer {
public:
    virtual ~Authorizer() = default;
    // PUBLISH from the client (and its will) to topic name `topic`.
    virtual bool can_publish(const ClientInfo& client, std::string_view topic) = 0;
    // SUBSCRIBE to `filter` (delivery is still checked per message).
    virtual bool can_subscribe(const ClientInfo& client, std::string_view filter) = 0;
    // Delivery of a message published to `topic` to this client.
    virtual bool can_receive(const ClientInfo& client, std::string_view topic) = 0;
};

}  // namespace hato::broker
