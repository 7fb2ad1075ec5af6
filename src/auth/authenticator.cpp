#include "auth/authenticator.hpp"

#include "mqtt/packet.hpp"

namespace hato::auth {

bool PasswordAuthenticator::anonymous_allowed(int listener_index) const {
    return listener_index >= 0 && size_t(listener_index) < anonymous_.size() && anonymous_[size_t(listener_index)];
}

uint8_t PasswordAuthenticator::check(std::optional<std::string_view> username,
                                     std::optional<std::span<const uint8_t>> password,
                                     std::string_view /*client_id*/, int listener_index) {
    // A certificate signed by the listener's CA already proved who this is.
    if (identity_) return identity_->empty() ? mqtt::rc::NotAuthorized : mqtt::rc::Success;

    if (!username) return anonymous_allowed(listener_index) ? mqtt::rc::Success : mqtt::rc::NotAuthorized;

    // A user name with no password file to check it against (Mosquitto does
    // the same): it counts as no credentials at all.
    if (!passwords_) return anonymous_allowed(listener_index) ? mqtt::rc::Success : mqtt::rc::NotAuthorized;

    std::string_view pw;
    if (password) pw = std::string_view(reinterpret_cast<const char*>(password->data()), password->size());
    // verify() costs the same for an unknown user as for a wrong password.
    return passwords_->verify(*username, pw) ? mqtt::rc::Success : mqtt::rc::BadUserNameOrPassword;
}

}  // namespace hato::auth
