#include "app/access_control.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "app/bridge_runner.hpp"
#include "app/log.hpp"

namespace hato::app {

namespace {

bool any_listener_acl_file(const config::AppConfig& cfg) {
    for (const config::Listener& l : cfg.listeners)
        if (!l.acl_file.empty()) return true;
    return false;
}
bool any_listener_password_file(const config::AppConfig& cfg) {
    for (const config::Listener& l : cfg.listeners)
        if (!l.password_file.empty()) return true;
    return false;
}

void report_reload_errors(std::vector<std::string>& errors, const char* what, const std::string& path) {
    for (const std::string& e : errors) log_error("reload: %s", e.c_str());
    log_error("reload of %s%s%s failed: keeping the previous one", what, path.empty() ? "" : " ", path.c_str());
    errors.clear();
}

}  // namespace

AccessControl::AccessControl(net::Reactor& reactor, TlsLayer& tls, VerdictFn verdicts)
    : reactor_(reactor), tls_(tls), verdicts_(std::move(verdicts)) {}

AccessControl::~AccessControl() = default;

// Password file, ACL file and TLS contexts: any error stops the start.
bool AccessControl::open(const config::AppConfig& cfg) {
    std::vector<std::string> errors;
    std::vector<std::shared_ptr<net::TlsContext>> contexts;
    bool ok = load_auth_files(cfg.auth, auth_files_, errors);
    ok &= load_tls_contexts(cfg, contexts, errors);
    for (const std::string& e : errors) log_error("%s", e.c_str());
    if (!ok) return false;
    tls_.set_contexts(std::move(contexts));

    std::vector<bool> anonymous(cfg.listeners.size());
    for (size_t i = 0; i < cfg.listeners.size(); ++i) {
        const config::Listener& l = cfg.listeners[i];
        anonymous[i] = config::anonymous_allowed(cfg, i);
        if (anonymous[i] && !config::is_loopback_address(l.address))
            log_warn("anonymous access is open on %s:%u, which is not a loopback address "
                     "(set [auth] allow_anonymous = false and a password_file)",
                     l.address.c_str(), unsigned(l.port));
    }
    authenticator_.set_anonymous_allowed(std::move(anonymous));
    authenticator_.set_password_file(auth_files_.passwords);
    authorizer_.set_acl(auth_files_.acl);
    if (auth_files_.passwords)
        log_info("password file %s: %zu users", cfg.auth.password_file.c_str(), auth_files_.passwords->size());
    if (auth_files_.acl)
        log_info("acl file %s: %zu rules", cfg.auth.acl_file.c_str(), auth_files_.acl->rule_count());
    warn_unverifiable_acl_users(cfg);
    if (!open_listener_password_files(cfg) || !open_listener_acl_files(cfg)) return false;
    return (!auth_files_.passwords && !any_listener_password_file(cfg)) || open_hash_pool(cfg);
}

// [[listener]] password_file: loaded at start (an error stops it) and
// again on SIGHUP (an error keeps the previous ones).
bool AccessControl::open_listener_password_files(const config::AppConfig& cfg) {
    std::vector<std::string> errors;
    std::vector<std::shared_ptr<const auth::PasswordFile>> files;
    if (!load_listener_password_files(cfg, files, errors)) {
        for (const std::string& e : errors) log_error("%s", e.c_str());
        return false;
    }
    for (size_t i = 0; i < files.size(); ++i)
        if (files[i])
            log_info("listener %s:%u password file %s: %zu users", cfg.listeners[i].address.c_str(),
                     unsigned(cfg.listeners[i].port), cfg.listeners[i].password_file.c_str(), files[i]->size());
    authenticator_.set_listener_password_files(std::move(files));
    return true;
}

bool AccessControl::open_listener_acl_files(const config::AppConfig& cfg) {
    std::vector<std::string> errors;
    std::vector<std::shared_ptr<const auth::Acl>> acls;
    if (!load_listener_acl_files(cfg, acls, errors)) {
        for (const std::string& e : errors) log_error("%s", e.c_str());
        return false;
    }
    for (size_t i = 0; i < acls.size(); ++i)
        if (acls[i])
            log_info("listener %s:%u acl file %s: %zu rules", cfg.listeners[i].address.c_str(),
                     unsigned(cfg.listeners[i].port), cfg.listeners[i].acl_file.c_str(), acls[i]->rule_count());
    authorizer_.set_listener_acls(std::move(acls));
    return true;
}
// Password checks run on worker threads; their verdicts come back through
// an eventfd the reactor watches, and go to the broker on this thread.
// Started after open_signals: the workers inherit the blocked signal
// mask, so SIGINT/SIGTERM/SIGHUP still arrive only through the signalfd.
bool AccessControl::open_hash_pool(const config::AppConfig& cfg) {
    hash_pool_ = std::make_unique<auth::HashPool>(cfg.auth.hash_workers);
    if (!hash_pool_->ok()) {
        log_error("password check workers: eventfd: %s", std::strerror(errno));
        return false;
    }
    reactor_.watch_readable(hash_pool_->event_fd(), [this] { authenticator_.collect(); });
    authenticator_.set_pool(hash_pool_.get(), [this](broker::ConnId id, uint64_t request,
                                                     const broker::AuthVerdict& verdict) {
        verdicts_(id, request, verdict);
    });
    authenticator_.set_max_failed_per_minute(cfg.auth.max_failed_per_minute);
    authenticator_.set_refusal_log([](std::string_view address, uint32_t limit) {
        log_warn("refusing logins from %.*s for the rest of the minute: %u failed in it (max_failed_per_minute)",
                 int(address.size()), address.data(), unsigned(limit));
    });
    authenticator_.set_busy_log([this](bool begins, std::string_view address, uint64_t refused, bool queue_full) {
        if (begins && queue_full)
            log_warn("password checks: the queue is full (%zu waiting): refusing logins with server busy until "
                     "it drains (first from %.*s; hash_workers)",
                     hash_pool_->max_queued(), int(address.size()), address.data());
        else if (begins)
            log_warn("password checks: refusing logins from %.*s with server busy: its checks already waiting "
                     "reach its failure limit (max_failed_per_minute); other addresses are served",
                     int(address.size()), address.data());
        else
            log_info("password checks: the queue has drained; %llu logins were refused with server busy",
                     static_cast<unsigned long long>(refused));
    });
    return true;
}

// ACL rules for user names no client can prove are dead rules: say so once.
void AccessControl::warn_unverifiable_acl_users(const config::AppConfig& cfg) {
    std::vector<std::string> names = unverifiable_acl_users(cfg, auth_files_);
    if (names.empty()) return;
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    log_warn("acl file %s: user blocks that never apply (%s): no %s can verify these names, "
             "so clients giving them get the anonymous rules",
             cfg.auth.acl_file.c_str(), list.c_str(),
             auth_files_.passwords ? "password file entry or identity_as_username listener"
                                   : "password file or identity_as_username listener");
}

// SIGHUP: password files, ACL files and certificates are read again, at
// the paths of cfg (a reload may have changed them). Each one that fails
// to load keeps its previous version (errors logged with file:line);
// connected clients stay, TLS ones on their old context.
void AccessControl::reload(const config::AppConfig& cfg) {
    std::vector<std::string> errors;
    reload_auth_files(cfg, errors);
    reload_listener_files(cfg, errors);
    std::vector<bool> anonymous(cfg.listeners.size());
    for (size_t i = 0; i < cfg.listeners.size(); ++i) anonymous[i] = config::anonymous_allowed(cfg, i);
    authenticator_.set_anonymous_allowed(std::move(anonymous));
    authenticator_.set_max_failed_per_minute(cfg.auth.max_failed_per_minute);
    if ((auth_files_.passwords || any_listener_password_file(cfg)) && !hash_pool_) open_hash_pool(cfg);
}

// [auth] password_file and acl_file.
void AccessControl::reload_auth_files(const config::AppConfig& cfg, std::vector<std::string>& errors) {
    if (cfg.auth.password_file.empty()) {
        auth_files_.passwords = nullptr;
        authenticator_.set_password_file(nullptr);
    } else {
        std::shared_ptr<const auth::PasswordFile> passwords;
        if (load_password_file(cfg.auth.password_file, passwords, errors)) {
            auth_files_.passwords = passwords;
            authenticator_.set_password_file(passwords);
            log_info("reloaded password file %s: %zu users", cfg.auth.password_file.c_str(), passwords->size());
        } else {
            report_reload_errors(errors, "password file", cfg.auth.password_file);
        }
    }
    if (cfg.auth.acl_file.empty()) {
        auth_files_.acl = nullptr;
        authorizer_.set_acl(nullptr);
    } else {
        std::shared_ptr<const auth::Acl> acl;
        if (load_acl_file(cfg.auth.acl_file, acl, errors)) {
            auth_files_.acl = acl;
            authorizer_.set_acl(acl);   // every session's ACL memo refills lazily
            log_info("reloaded acl file %s: %zu rules", cfg.auth.acl_file.c_str(), acl->rule_count());
        } else {
            report_reload_errors(errors, "acl file", cfg.auth.acl_file);
        }
    }
}

// The listeners' own password and acl files, and their TLS contexts.
void AccessControl::reload_listener_files(const config::AppConfig& cfg, std::vector<std::string>& errors) {
    std::vector<std::shared_ptr<const auth::PasswordFile>> files;
    listener_passwords_loaded_ = load_listener_password_files(cfg, files, errors);
    if (listener_passwords_loaded_) {
        authenticator_.set_listener_password_files(std::move(files));
        if (any_listener_password_file(cfg)) log_info("reloaded the listeners' password files");
    } else {
        report_reload_errors(errors, "listener password files", "");
    }
    std::vector<std::shared_ptr<const auth::Acl>> acls;
    listener_acls_loaded_ = load_listener_acl_files(cfg, acls, errors);
    if (listener_acls_loaded_) {
        authorizer_.set_listener_acls(std::move(acls));   // memos refill lazily
        if (any_listener_acl_file(cfg)) log_info("reloaded the listeners' acl files");
    } else {
        report_reload_errors(errors, "listener acl files", "");
    }
    std::vector<std::shared_ptr<net::TlsContext>> contexts;
    tls_loaded_ = load_tls_contexts(cfg, contexts, errors);
    if (tls_loaded_) {
        const bool any = std::any_of(contexts.begin(), contexts.end(), [](const auto& c) { return c != nullptr; });
        tls_.set_contexts(std::move(contexts));
        if (any) log_info("reloaded TLS certificates (new connections use them)");
    } else {
        report_reload_errors(errors, "TLS certificates", "");
    }
}

// Which authenticator and authorizer the broker asks: the bridges' wrappers
// always, so that "$bridge/" client ids are the bridges' alone whether or
// not any is configured yet (one added later takes over such a session);
// no authorizer at all without any ACL file.
void AccessControl::install(const config::AppConfig& cfg, broker::Broker& broker) {
    if (!bridge_authn_) bridge_authn_ = std::make_unique<BridgeAuthenticator>(authenticator_);
    if (!bridge_authz_) bridge_authz_ = std::make_unique<BridgeAuthorizer>(authorizer_);
    broker.set_authenticator(bridge_authn_.get());
    const bool acl = auth_files_.acl || any_listener_acl_file(cfg);
    broker.set_authorizer(acl ? bridge_authz_.get() : nullptr);
}

}  // namespace hato::app
