// Loading what [auth] and the listeners' tls tables name: the password file,
// the ACL file and the TLS contexts. Used at start, by --check-config and on
// SIGHUP (where a failed load keeps the previous objects).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/acl.hpp"
#include "auth/password_file.hpp"
#include "config/config.hpp"
#include "net/tls.hpp"

namespace hato::app {

// Immutable once loaded: a reload builds new ones and swaps the pointers.
struct AuthFiles {
    std::shared_ptr<const auth::PasswordFile> passwords;  // null: no password_file
    std::shared_ptr<const auth::Acl> acl;                 // null: no acl_file
};

// Loads the password file; false with "file:line: message" errors.
bool load_password_file(const std::string& path, std::shared_ptr<const auth::PasswordFile>& out,
                        std::vector<std::string>& errors);
bool load_acl_file(const std::string& path, std::shared_ptr<const auth::Acl>& out,
                   std::vector<std::string>& errors);
// Both files of cfg.auth (those that are set).
bool load_auth_files(const config::AuthConfig& cfg, AuthFiles& out, std::vector<std::string>& errors);
// One entry per listener: its own password_file, or null. Errors name the file.
bool load_listener_password_files(const config::AppConfig& cfg,
                                  std::vector<std::shared_ptr<const auth::PasswordFile>>& out,
                                  std::vector<std::string>& errors);
// Likewise its own acl_file.
bool load_listener_acl_files(const config::AppConfig& cfg, std::vector<std::shared_ptr<const auth::Acl>>& out,
                             std::vector<std::string>& errors);

net::TlsSettings tls_settings(const config::ListenerTls& tls);
// One context per listener (null for plain listeners). Errors name the listener.
bool load_tls_contexts(const config::AppConfig& cfg, std::vector<std::shared_ptr<net::TlsContext>>& out,
                       std::vector<std::string>& errors);

// The ACL `user` blocks no client can ever be verified as: with no
// identity_as_username listener, every name missing from the password file
// (all of them without one). Such blocks never apply: an unverified user
// name gets the anonymous rules.
std::vector<std::string> unverifiable_acl_users(const config::AppConfig& cfg, const AuthFiles& files);

// --check-config: everything above, nothing kept.
bool check_security_files(const config::AppConfig& cfg, std::vector<std::string>& errors);

}  // namespace hato::app
