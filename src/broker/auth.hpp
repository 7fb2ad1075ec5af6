// The authentication hook. The broker asks it once per CONNECT; the security
// layer plugs in a real implementation later. An enhanced-authentication
// (AUTH packet) exchange will be added beside check(); until then a CONNECT
// that names an Authentication Method is refused with 0x8C by the broker.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "mqtt/packet.hpp"

namespace hato::broker {

class Authenticator {
public:
    virtual ~Authenticator() = default;
    // Returns mqtt::rc::Success to accept, else a CONNACK reason code
    // (e.g. BadUserNameOrPassword, NotAuthorized).
    virtual uint8_t check(std::optional<std::string_view> username,
                          std::optional<std::span<const uint8_t>> password,
                          std::string_view client_id, int listener_index) = 0;
};

// The default: everyone may connect.
class AllowAll final : public Authenticator {
public:
    uint8_t check(std::optional<std::string_view>, std::optional<std::span<const uint8_t>>,
                  std::string_view, int) override {
        return mqtt::rc::Success;
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
