// Who may connect and what they may do, as the running configuration says:
// the password and ACL files ([auth] and per listener), the TLS contexts,
// anonymous access per listener, the password-check workers, and which
// authenticator and authorizer the broker asks (the bridges' wrappers once
// bridges run). Loaded at start (any error stops it) and again on SIGHUP
// (each file that fails to load keeps its previous version).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/security.hpp"
#include "app/tls_layer.hpp"
#include "auth/acl_authorizer.hpp"
#include "auth/authenticator.hpp"
#include "auth/hash_pool.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "net/reactor.hpp"

namespace hato::app {

class BridgeAuthenticator;
class BridgeAuthorizer;

class AccessControl {
public:
    // Where the workers' verdicts go (the broker), on the reactor thread.
    using VerdictFn = std::function<void(broker::ConnId, uint64_t request, const broker::AuthVerdict&)>;
    AccessControl(net::Reactor& reactor, TlsLayer& tls, VerdictFn verdicts);
    ~AccessControl();

    // At start; false (logged) on any error.
    bool open(const config::AppConfig& cfg);
    // SIGHUP: everything again at the paths of `cfg`; connected clients
    // stay, TLS ones on their old context.
    void reload(const config::AppConfig& cfg);
    // Which authenticator and authorizer `broker` asks; no authorizer at
    // all without any ACL file (the broker then skips every ACL check).
    void install(const config::AppConfig& cfg, broker::Broker& broker);

    // The peer address of a connection, for max_failed_per_minute.
    void note_peer(broker::ConnId id, const std::string& peer) {
        if (hash_pool_) authenticator_.note_peer(id, peer);
    }
    void forget_peer(broker::ConnId id) { authenticator_.forget_peer(id); }
    void on_tick() { authenticator_.on_tick(); }

    // Whether the last reload loaded everything listener `l` names of its
    // own (certificate, password file, ACL file). One that failed keeps the
    // previous lists, which have no entry for a listener the reload added:
    // opened anyway, it would take plain connections where TLS was asked
    // for, and allow what its ACL file would deny.
    bool ready_to_open(const config::Listener& l) const {
        return (!l.tls.enabled || tls_loaded_) && (l.password_file.empty() || listener_passwords_loaded_) &&
               (l.acl_file.empty() || listener_acls_loaded_);
    }

private:
    bool open_listener_password_files(const config::AppConfig& cfg);
    bool open_listener_acl_files(const config::AppConfig& cfg);
    bool open_hash_pool(const config::AppConfig& cfg);
    void reload_auth_files(const config::AppConfig& cfg, std::vector<std::string>& errors);
    void reload_listener_files(const config::AppConfig& cfg, std::vector<std::string>& errors);
    void warn_unverifiable_acl_users(const config::AppConfig& cfg);

    net::Reactor& reactor_;
    TlsLayer& tls_;
    bool tls_loaded_ = true, listener_passwords_loaded_ = true, listener_acls_loaded_ = true;   // ready_to_open
    VerdictFn verdicts_;
    AuthFiles auth_files_;
    std::unique_ptr<auth::HashPool> hash_pool_;   // null without a password file
    auth::PasswordAuthenticator authenticator_;
    auth::AclAuthorizer authorizer_;
    std::unique_ptr<BridgeAuthenticator> bridge_authn_;   // wrap the two above when bridges run
    std::unique_ptr<BridgeAuthorizer> bridge_authz_;
};

}  // namespace hato::app
