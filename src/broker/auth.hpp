// The authentication hook. The broker asks it once per CONNECT; the security
// layer plugs in a real implementation later. An enhanced-authentication
// (AUTH packet) exchange will be added beside check(); until then a CONNECT
// that names an Authentication Method is refused with 0x8C by the broker.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

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

}  // namespace hato::broker
