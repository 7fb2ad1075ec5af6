// The broker's CONNECT check over a Mosquitto-style password file, with
// anonymous access decided per listener and TLS client certificates standing
// in for a password (identity_as_username).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/password_file.hpp"
#include "broker/auth.hpp"

namespace hato::auth {

class PasswordAuthenticator final : public broker::Authenticator {
public:
    // Index = listener index; a listener beyond the list refuses anonymous clients.
    void set_anonymous_allowed(std::vector<bool> by_listener) { anonymous_ = std::move(by_listener); }
    // nullptr: no password file. Swapped whole on reload; a check never sees
    // a half-loaded file.
    void set_password_file(std::shared_ptr<const PasswordFile> file) { passwords_ = std::move(file); }

    // The verified client-certificate CN of the connection whose bytes the
    // wiring is about to hand to the broker, when its listener has
    // identity_as_username; nullopt otherwise. CONNECT is processed inside
    // that Broker::on_data call, on the same thread, so check() sees it.
    void set_current_identity(std::optional<std::string> cn) { identity_ = std::move(cn); }

    // Success, BadUserNameOrPassword (unknown user or wrong password: never
    // which one) or NotAuthorized (anonymous client where that is refused).
    uint8_t check(std::optional<std::string_view> username,
                  std::optional<std::span<const uint8_t>> password,
                  std::string_view client_id, int listener_index) override;

private:
    bool anonymous_allowed(int listener_index) const;

    std::vector<bool> anonymous_;
    std::shared_ptr<const PasswordFile> passwords_;
    std::optional<std::string> identity_;
};

}  // namespace hato::auth
